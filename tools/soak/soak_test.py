#!/usr/bin/python3
"""Fast checks of the soak tool's pieces (no vlserve needed, < 2 s, stdlib only).

The image writers are decoded here by hand (struct/zlib, hand-computed pixels) and, when
Pillow is installed, by Pillow too; the classifier, the Prometheus parser, the percentile
and the verdict run on canned inputs with hand-written expectations; the HTTP client talks
to a fake server on loopback that sends what vlserve sends (an unasked-for 100 Continue,
chunked SSE split across writes, a keep-alive connection closed while idle).

usage: /usr/bin/python3 tools/soak/soak_test.py [-v]
"""
import asyncio
import base64
import json
import os
import random
import struct
import sys
import unittest
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import soak_http  # noqa: E402
import soak_mix  # noqa: E402
import soak_report  # noqa: E402
from soak_http import Outcome  # noqa: E402

try:
    from PIL import Image
except ImportError:
    Image = None

# 2x2 pixels: red, green / blue, white (row-major RGB8).
PIXELS = bytes([255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255])


def png_chunks(data):
    """[(tag, payload)] with every CRC checked."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, out = 8, []
    while pos < len(data):
        n, = struct.unpack(">I", data[pos:pos + 4])
        tag, payload = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        crc, = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])
        assert crc == zlib.crc32(tag + payload) & 0xFFFFFFFF, tag
        out.append((tag, payload))
        pos += 12 + n
    return out


class ImageTest(unittest.TestCase):
    def test_png_decodes_to_the_pixels(self):
        chunks = png_chunks(soak_mix.png(2, 2, PIXELS))
        self.assertEqual([t for t, _ in chunks], [b"IHDR", b"IDAT", b"IEND"])
        self.assertEqual(struct.unpack(">IIBBBBB", chunks[0][1]), (2, 2, 8, 2, 0, 0, 0))
        raw = zlib.decompress(chunks[1][1])
        # Each 2-pixel row: filter byte 0, then 6 bytes.
        self.assertEqual(raw, b"\x00\xff\x00\x00\x00\xff\x00" b"\x00\x00\x00\xff\xff\xff\xff")

    def test_bmp_is_bottom_up_bgr_with_padded_rows(self):
        data = soak_mix.bmp(2, 2, PIXELS)
        self.assertEqual(data[:2], b"BM")
        size, _, _, offset = struct.unpack("<IHHI", data[2:14])
        self.assertEqual((size, offset, len(data)), (54 + 16, 54, 70))
        w, h, planes, bpp = struct.unpack("<iiHH", data[18:30])
        self.assertEqual((w, h, planes, bpp), (2, 2, 1, 24))
        # File row 0 = the image's bottom row (blue, white), BGR, 2 bytes of padding.
        self.assertEqual(data[54:62], bytes([255, 0, 0, 255, 255, 255, 0, 0]))
        self.assertEqual(data[62:70], bytes([0, 0, 255, 0, 255, 0, 0, 0]))

    def test_unique_jpeg_adds_a_comment_segment_only(self):
        a, b = soak_mix.unique_jpeg(random.Random(1)), soak_mix.unique_jpeg(random.Random(2))
        self.assertNotEqual(a, b)
        self.assertEqual(a[:4], b"\xff\xd8\xff\xfe")
        n, = struct.unpack(">H", a[4:6])
        self.assertEqual(a[4 + n:], soak_mix.JPEG_FIXTURE[2:])
        self.assertEqual(soak_mix.JPEG_FIXTURE[-2:], b"\xff\xd9")

    @unittest.skipIf(Image is None, "Pillow not installed")
    def test_pillow_reads_every_generated_format(self):
        import io
        rng = random.Random(5)
        rgb = soak_mix.draw_rgb(37, 11, rng)
        for data in (soak_mix.png(37, 11, rgb), soak_mix.bmp(37, 11, rgb)):
            self.assertEqual(Image.open(io.BytesIO(data)).convert("RGB").tobytes(), rgb)
        a = Image.open(io.BytesIO(soak_mix.unique_jpeg(rng))).convert("RGB")
        b = Image.open(io.BytesIO(soak_mix.JPEG_FIXTURE)).convert("RGB")
        self.assertEqual(a.size, (48, 32))
        self.assertEqual(a.tobytes(), b.tobytes())


class PrometheusTest(unittest.TestCase):
    TEXT = (
        "# HELP vlserve_requests_total HTTP requests.\n"
        "# TYPE vlserve_requests_total counter\n"
        'vlserve_requests_total{status="200"} 875\n'
        'vlserve_requests_total{status="503"} 7.92e+02\n'
        "vlserve_requests_running 0\n"
        "\n"
        "vlserve_kv_cache_usage_ratio 0.25 1700000000000\n"
        'vlserve_ttft_seconds_bucket{le="+Inf"} 12\n'
        'x_labels{b="q\\"uo,te",a="sp ace"} -Inf\n'
        "vlserve_http_inflight_bodies 3\n")

    def test_parses_samples_labels_and_specials(self):
        m = soak_report.parse_prometheus(self.TEXT)
        self.assertEqual(soak_report.metric(m, "vlserve_requests_total", status="503"), 792.0)
        self.assertEqual(soak_report.status_counts(m), {"200": 875.0, "503": 792.0})
        self.assertEqual(soak_report.metric(m, "vlserve_kv_cache_usage_ratio"), 0.25)
        self.assertEqual(soak_report.metric(m, "vlserve_ttft_seconds_bucket", le="+Inf"), 12)
        self.assertEqual(m["x_labels"], {(("a", "sp ace"), ("b", 'q"uo,te')): float("-inf")})
        self.assertIsNone(soak_report.metric(m, "vlserve_requests_waiting"))
        # Absent gauges are left out; a gauge named in-flight is required too.
        self.assertEqual(soak_report.zero_gauges(m),
                         {"vlserve_requests_running": 0.0, "vlserve_kv_cache_usage_ratio": 0.25,
                          "vlserve_http_inflight_bodies": 3.0})

    def test_malformed_lines_raise(self):
        for bad in ("vlserve_x", "vlserve_x abc", 'vlserve_x{a=1} 2', "1abc 2"):
            with self.assertRaises(ValueError, msg=bad):
                soak_report.parse_prometheus(bad + "\n")


def sse(*payloads):
    return [json.dumps(p) if not isinstance(p, str) else p for p in payloads]


CHUNK = {"object": "chat.completion.chunk", "choices": [{"delta": {"content": "a"},
                                                         "finish_reason": None}]}
LAST = {"object": "chat.completion.chunk", "choices": [{"delta": {}, "finish_reason": "stop"}]}
JSON_HDR = {"content-type": "application/json"}
SSE_HDR = {"content-type": "text/event-stream"}
ANSWER = json.dumps({"object": "chat.completion", "usage": {"completion_tokens": 3},
                     "choices": [{"message": {"content": "hi"}, "finish_reason": "length"}]})
OVERLOADED = json.dumps({"error": {"type": "overloaded_error", "code": 503}}).encode()


class ClassifyTest(unittest.TestCase):
    K = soak_mix.KINDS

    def cls(self, kind, **out):
        return soak_mix.classify(self.K[kind], Outcome(**out))[0]

    def test_answers(self):
        self.assertEqual(self.cls("chat_text", status=200, headers=JSON_HDR,
                                  body=ANSWER.encode(), complete=True), "ok")
        self.assertEqual(self.cls("chat_text_stream", status=200, headers=SSE_HDR,
                                  events=sse(CHUNK, LAST, "[DONE]")), "ok")
        # A chat answer on the completions route has the wrong object.
        self.assertEqual(self.cls("completions", status=200, headers=JSON_HDR,
                                  body=ANSWER.encode()), "unexplained")
        done = {"object": "text_completion", "choices": [{"text": "", "finish_reason": "stop"}]}
        self.assertEqual(self.cls("completions_stream", status=200, headers=SSE_HDR,
                                  events=sse(done, "[DONE]")), "ok")

    def test_broken_answers_are_unexplained(self):
        bad_streams = (sse(CHUNK, LAST),                                  # no [DONE]
                       sse(CHUNK, {"error": {"code": 500}}, "[DONE]"),   # error record
                       sse(CHUNK, "[DONE]"),                              # no finish_reason
                       sse("{not json", LAST, "[DONE]"))
        for events in bad_streams:
            self.assertEqual(self.cls("chat_text_stream", status=200, headers=SSE_HDR,
                                      events=events), "unexplained", events)
        self.assertEqual(self.cls("chat_text", status=500, body=b"{}"), "unexplained")
        self.assertEqual(self.cls("chat_text", status=200, headers=JSON_HDR, body=b"{"),
                         "unexplained")
        self.assertEqual(self.cls("chat_image", error="timeout after 120 s"), "unexplained")
        self.assertEqual(self.cls("half_close", status=200, error="connection closed after 3 "
                                  "bytes of a read"), "unexplained")

    def test_overload_needs_its_type_and_retry_after(self):
        self.assertEqual(self.cls("chat_image", status=503, body=OVERLOADED,
                                  headers={"retry-after": "1"}), "503")
        self.assertEqual(self.cls("chat_image", status=503, body=OVERLOADED), "unexplained")
        loading = json.dumps({"error": {"type": "unavailable_error"}}).encode()
        self.assertEqual(self.cls("chat_image", status=503, body=loading,
                                  headers={"retry-after": "1"}), "unexplained")

    def test_bad_requests_must_get_400(self):
        err = json.dumps({"error": {"type": "invalid_request_error"}}).encode()
        self.assertEqual(self.cls("bad_json", status=400, body=err), "expected_4xx")
        self.assertEqual(self.cls("bad_field", status=200, body=ANSWER.encode()), "unexplained")
        self.assertEqual(self.cls("bad_field", status=500, body=err), "unexplained")

    def test_cancel_and_leave(self):
        self.assertEqual(self.cls("cancel_stream", status=200, headers=SSE_HDR,
                                  events=sse(CHUNK), complete=True), "cancelled")
        self.assertEqual(self.cls("cancel_stream", status=200, headers=SSE_HDR,
                                  error="connection closed after 0 bytes of a read"),
                         "unexplained")
        self.assertEqual(self.cls("cancel_stream", status=200, headers=SSE_HDR,
                                  events=sse({"error": {"code": 500}})), "unexplained")
        self.assertEqual(self.cls("leave_before_response"), "disconnected")
        self.assertEqual(self.cls("leave_mid_body", error="ConnectionRefusedError: x"),
                         "unexplained")


class WorkloadTest(unittest.TestCase):
    def test_bodies(self):
        w = soak_mix.Workload(soak_mix.DEFAULT_MIX, seed=3, max_tokens=32)
        seen = set()
        for _ in range(400):
            kind, stream, body = w.draw()
            seen.add(kind.name)
            if kind.name == "bad_json":
                with self.assertRaises(ValueError):
                    json.loads(body)
                continue
            req = json.loads(body)
            if kind.name == "bad_field":
                continue
            self.assertEqual(stream, req.get("stream", False))
            self.assertTrue(4 <= req["max_tokens"] <= 32)
            for part in req.get("messages", [{}])[0].get("content", []):
                if isinstance(part, dict) and part["type"] == "image_url":
                    url = part["image_url"]["url"]
                    data = base64.b64decode(url.split(",", 1)[1])
                    self.assertTrue(data[:8] == b"\x89PNG\r\n\x1a\n" or data[:2] in
                                    (b"BM", b"\xff\xd8"), url[:40])
        self.assertEqual(seen, set(soak_mix.DEFAULT_MIX))
        text_only = soak_mix.Workload(soak_mix.DEFAULT_MIX, 0, 8, vision=False)
        self.assertFalse(any(soak_mix.KINDS[n].vision for n in text_only.names))

    def test_parse_mix(self):
        self.assertEqual(soak_mix.parse_mix("chat_text=2, bad_json"),
                         {"chat_text": 2.0, "bad_json": 1.0})
        for bad in ("nope=1", "chat_text=x", "chat_text=-1", "chat_text=0", ""):
            with self.assertRaises(ValueError, msg=bad):
                soak_mix.parse_mix(bad)


class ReportTest(unittest.TestCase):
    LIMITS = {"rss_factor": 1.5, "rss_add_mib": 50, "max_fd_growth": 16}

    def passing(self):
        return {"unexplained_total": 0, "classes": {"ok": 10, "503": 5}, "server_alive": True,
                "gauges_end": {"vlserve_requests_running": 0.0}, "gauges_missing": [],
                "server_statuses": {"200": 10, "503": 5, "0": 2},
                "rss_mib": {"start": 100.0, "end": 400.0},
                "rss_less_caches_mib": {"start": 80.0, "end": 170.0},
                "fds": {"start": 20, "end": 36}}

    def full_report(self):
        r = self.passing()
        series = {"startup": 40.0, "start": 80.0, "middle": None, "end": 90.0, "max": 95.0}
        r.update(url="http://h:1", pid=7, seed=0, server_command="vlserve serve",
                 calibration={"duration_s": 20, "clients": 16, "finished": 100, "rate": 5.0,
                              "classes": {"ok": 100}},
                 rate_base=5.0, rate_factor=2.0, rate_offered=10.0, duration_s=60, drain_s=1,
                 settle_s=0.5, sent=15, not_sent=0, finished=15,
                 by_kind={"chat_text": {"ok": 10, "503": 5}},
                 latency_ms={"e2e_p50": 1.0, "e2e_p99": 2.0, "e2e_max": 3.0,
                             "first_event_p50": None, "first_event_p99": None},
                 lag_ms={"p99": 1.0, "max": 2.0}, client_cpu_share=0.1, server_cpu_cores=None,
                 rss_mib=series, rss_less_caches_mib=series, threads_end=None,
                 gauges_info={}, server_cancelled=0, server_log_problems=None,
                 unexplained_reasons={"chat_text: HTTP 500": 3}, failures=[])
        return r

    def test_percentile_matches_hand_values(self):
        self.assertEqual(soak_report.percentile([4, 1, 3, 2], 50), 2.5)
        self.assertAlmostEqual(soak_report.percentile([1, 2, 3, 4], 99), 3.97)
        self.assertEqual(soak_report.percentile([7], 99), 7)
        self.assertIsNone(soak_report.percentile([], 50))

    def test_verdict(self):
        # RSS less caches 170 = 80 x 1.5 + 50 exactly, fds +16: both at the limit, pass
        # (the raw RSS quadrupled: cache contents).
        self.assertEqual(soak_report.verdict(self.passing(), self.LIMITS), [])
        cases = {
            "unexplained": ("unexplained_total", 1),
            "nothing was tested": ("classes", {"503": 3}),
            "server process is gone": ("server_alive", False),
            "still open after --drain-s": ("in_flight_end", 2),
            "vlserve_requests_running is 2": ("gauges_end", {"vlserve_requests_running": 2.0}),
            "did not expose": ("gauges_missing", ["/metrics at the end"]),
            "status 500": ("server_statuses", {"500": 1}),
            "RSS less cache contents grew": ("rss_less_caches_mib",
                                             {"start": 80.0, "end": 170.5}),
            "open files grew": ("fds", {"start": 20, "end": 37}),
        }
        for want, (key, value) in cases.items():
            r = self.passing()
            r[key] = value
            why = soak_report.verdict(r, self.LIMITS)
            self.assertEqual(len(why), 1, (want, why))
            self.assertIn(want, why[0])
        # The text names the failures, or says PASS.
        r = self.full_report()
        self.assertTrue(soak_report.format_report(r).endswith("\nPASS"))
        r["failures"] = ["x is 2 at the end, not 0"]
        text = soak_report.format_report(r)
        self.assertIn("FAIL: x is 2", text)
        self.assertIn("UNEXPLAINED x3 chat_text: HTTP 500", text)
        # Without cache figures the raw RSS is judged.
        r = self.passing()
        r["rss_less_caches_mib"] = {"start": None, "end": None}
        self.assertIn("RSS grew from 100.0 to 400.0", soak_report.verdict(r, self.LIMITS)[0])


class FakeServer:
    """Loopback HTTP server answering by path with canned bytes (what vlserve sends)."""

    SSE_BODY = b"".join(b"data: " + json.dumps(p).encode() + b"\n\n"
                        for p in (CHUNK, LAST)) + b"data: [DONE]\n\n"

    async def handle(self, reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ")[1].decode()
                n = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                await reader.readexactly(n)
                self.requests += 1
                if path == "/sse":
                    # An interim 100 first; the stream's chunks split mid-event.
                    body = self.SSE_BODY
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"
                                 b"Content-Type: text/event-stream\r\n"
                                 b"Transfer-Encoding: chunked\r\n\r\n")
                    for part in (body[:10], body[10:120], body[120:]):
                        writer.write(b"%x\r\n%s\r\n" % (len(part), part))
                        await writer.drain()
                    writer.write(b"0\r\n\r\n")
                elif path == "/close-idle":
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    await writer.drain()
                    writer.close()  # a keep-alive connection the server then drops
                    return
                else:
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def __aenter__(self):
        self.requests = 0
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc):
        self.server.close()


class HttpClientTest(unittest.TestCase):
    def test_parse_head_and_sse_splitter(self):
        self.assertEqual(soak_http.parse_head(b"HTTP/1.1 503 Service Unavailable\r\n"
                                              b"Retry-After: 1"), (503, {"retry-after": "1"}))
        with self.assertRaises(ValueError):
            soak_http.parse_head(b"HTTP/2 200")
        s = soak_http.SseSplitter()
        self.assertEqual(s.feed(b"data: {\"a\":"), [])
        self.assertEqual(s.feed(b" 1}\n\n: comment\n\ndata: [DONE]\n\n"), ['{"a": 1}', "[DONE]"])

    def test_against_a_fake_server(self):
        async def go():
            async with FakeServer() as srv:
                pool = soak_http.ConnectionPool("127.0.0.1", srv.port)
                req = soak_http.build_request("POST", "/sse", b"{}", "h")
                out = await soak_http.exchange(pool, req, soak_http.NORMAL, 5)
                self.assertEqual((out.status, out.interim, out.error), (200, 1, ""))
                self.assertEqual(out.events[-1], "[DONE]")
                self.assertEqual(soak_mix.classify(soak_mix.KINDS["chat_text_stream"], out),
                                 ("ok", ""))
                # Closed (FIN, then RST) after the write holding the first event: the rest
                # is unread.
                for reset in (False, True):
                    out = await soak_http.exchange(pool, req, soak_http.CANCEL, 5, reset)
                    self.assertEqual((len(out.events), out.complete, out.error), (1, True, ""))
                out = await soak_http.exchange(pool, req, soak_http.HALF_CLOSE, 5)
                self.assertEqual(out.events[-1], "[DONE]")
                # Keep-alive: the second request reuses the first one's connection; after
                # the server drops an idle connection the next request is retried once.
                plain = soak_http.build_request("POST", "/close-idle", b"{}", "h")
                out = await soak_http.exchange(pool, plain, soak_http.NORMAL, 5)
                self.assertEqual((out.status, out.body), (200, b"ok"))
                await asyncio.sleep(0.05)
                out = await soak_http.exchange(pool, plain, soak_http.NORMAL, 5)
                self.assertEqual((out.status, out.error), (200, ""))
                before = srv.requests
                ok = soak_http.build_request("POST", "/ok", b"{}", "h")
                await soak_http.exchange(pool, ok, soak_http.NORMAL, 5)
                out = await soak_http.exchange(pool, ok, soak_http.NORMAL, 5)
                self.assertTrue(out.reused)
                self.assertEqual(srv.requests - before, 2)
                pool.close_all()
        asyncio.run(go())


if __name__ == "__main__":
    unittest.main()
