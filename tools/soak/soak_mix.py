"""The soak's request mix and the classifier that judges every response.

Each request kind says what to send (a JSON body for a route), how the client behaves
(soak_http: read everything, cancel after the first event, leave early, half-close) and
what answer is expected; classify() turns an Outcome into one class:

  ok            200 with a well-formed body or SSE stream
  503           overloaded_error with Retry-After (expected above the sustainable rate)
  expected_4xx  the 400 that a deliberately bad request must get
  cancelled     a stream the client closed after its first event (by design)
  disconnected  the client left before the response (by design; nothing to check here)
  unexplained   anything else: 5xx, a wrong status, a malformed body or stream, an SSE
                error record, a transport error or a timeout

Images are generated here without Pillow: PNG and BMP written with zlib/struct, and a
small JPEG fixture made unique per request by a comment segment (the server's caches key
images by their bytes, so unique bytes mean a decode and an encode).
"""
import base64
import json
import random
import struct
import zlib
from dataclasses import dataclass

import soak_http

OK, OVERLOADED, REJECTED = "ok", "503", "expected_4xx"
CANCELLED, LEFT, UNEXPLAINED = "cancelled", "disconnected", "unexplained"
CLASSES = (OK, OVERLOADED, REJECTED, CANCELLED, LEFT, UNEXPLAINED)

# What a kind expects back.
ANSWER, BAD, CANCEL, LEAVE = "answer", "bad", "cancel", "leave"

CHAT, COMPLETIONS = "/v1/chat/completions", "/v1/completions"

# 48x32 JPEG (a blue ground, a yellow square, a red disc), quality 60, optimized Huffman
# tables: made once with Pillow (Image.new + ImageDraw, save(quality=60, optimize=True)).
JPEG_FIXTURE = base64.b64decode(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAA0JCgsKCA0LCgsODg0PEyAVExISEyccHhcgLikxMC4pLSwzOko+"
    "MzZGNywtQFdBRkxOUlNSMj5aYVpQYEpRUk//2wBDAQ4ODhMREyYVFSZPNS01T09PT09PT09PT09PT09PT09P"
    "T09PT09PT09PT09PT09PT09PT09PT09PT09PT09PT0//wAARCAAgADADASIAAhEBAxEB/8QAGwAAAQUBAQAA"
    "AAAAAAAAAAAABQECAwYHAAT/xAAsEAABAwEECAcBAAAAAAAAAAABAAIDBAURVNEGExQVIpOhohIhMWFxgZHB"
    "/8QAGAEBAAMBAAAAAAAAAAAAAAAABQIDBAD/xAAkEQAABgIBBAMBAAAAAAAAAAAAAQIDBBEFEiExYaHRE0GB"
    "8P/aAAwDAQACEQMRAD8ABojuO0sN3tzQ5aGpZWe5E0+MiO769q7iiKwl29voU3cdpYbvbmoKqz6qka11RGGB"
    "xuHG0k/QKvKqekMz5LTdG48MQAaPkAk9egR0fMyHV6mRefYRYxjTi6Mz/vwCvCkTkjknFmLU4SV82LZ+MaQy"
    "bjXBkGrQ1ni9O31uMqOY7Ndk8eqZrqdVfmvQIjPk1dl1F6QHSiBurhqvRwOrPuPMj+/qB7fW4yo5js1HLU1E"
    "zQ2aeWRoN9z3ki9YI+DW24SlLKhqLImjlBcht4TSb0i5Msw0NK2LkxCVk3ZCNDKiH//Z")

WORDS = ("the report lists red green blue yellow circles squares triangles codes for Oslo "
         "Bergen Lima Quito Perth cities each line has a key and value section page text "
         "server model answer token image cache queue stream request budget latency").split()
QUESTIONS = ("What does the image say?", "Describe the picture.", "What is in the image?",
             "What is the code for Oslo?", "Read the text in the image.")


# ---------------------------------------------------------------- images

def draw_rgb(width, height, rng):
    """RGB8 pixels [height, width, 3] as bytes: a flat ground and 1-4 rectangles."""
    px = bytearray(bytes(rng.randrange(256) for _ in range(3)) * (width * height))
    for _ in range(rng.randint(1, 4)):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        x1, y1 = rng.randint(x0 + 1, width), rng.randint(y0 + 1, height)
        run = bytes(rng.randrange(256) for _ in range(3)) * (x1 - x0)
        for y in range(y0, y1):
            px[(y * width + x0) * 3:(y * width + x1) * 3] = run
    return bytes(px)


def png(width, height, rgb):
    """A PNG (8-bit truecolour, filter 0 on every row) of RGB8 pixels."""
    def chunk(tag, data):
        return (struct.pack(">I", len(data)) + tag + data +
                struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))
    stride = width * 3
    raw = b"".join(b"\x00" + rgb[y * stride:(y + 1) * stride] for y in range(height))
    return (b"\x89PNG\r\n\x1a\n" +
            chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b""))


def bmp(width, height, rgb):
    """A 24-bit bottom-up BMP of RGB8 pixels (rows BGR, padded to 4 bytes)."""
    stride = (width * 3 + 3) & ~3
    rows = []
    for y in range(height - 1, -1, -1):
        row = bytearray(rgb[y * width * 3:(y + 1) * width * 3])
        row[0::3], row[2::3] = row[2::3], row[0::3]
        rows.append(bytes(row) + b"\x00" * (stride - width * 3))
    pixels = b"".join(rows)
    return (b"BM" + struct.pack("<IHHI", 54 + len(pixels), 0, 0, 54) +
            struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, len(pixels), 2835, 2835,
                        0, 0) + pixels)


def unique_jpeg(rng):
    """The JPEG fixture with a random COM segment after SOI: same pixels, new bytes."""
    note = bytes(rng.randrange(256) for _ in range(16))
    return JPEG_FIXTURE[:2] + b"\xff\xfe" + struct.pack(">H", len(note) + 2) + note + \
        JPEG_FIXTURE[2:]


def random_image(rng):
    """A fresh image (PNG, BMP or JPEG) as a data: URL."""
    fmt = rng.choice(("png", "png", "bmp", "jpeg"))
    if fmt == "jpeg":
        return "data:image/jpeg;base64," + base64.b64encode(unique_jpeg(rng)).decode()
    w, h = rng.choice((128, 96, 160, 256)), rng.choice((128, 64, 200))
    data = (png if fmt == "png" else bmp)(w, h, draw_rgb(w, h, rng))
    return f"data:image/{fmt};base64," + base64.b64encode(data).decode()


# ---------------------------------------------------------------- request kinds

@dataclass(frozen=True)
class Kind:
    name: str
    path: str
    behaviour: str   # soak_http.NORMAL / CANCEL / LEAVE / LEAVE_MID_BODY / HALF_CLOSE
    expect: str      # ANSWER / BAD / CANCEL / LEAVE
    vision: bool     # needs an mmproj (images or documents)


KINDS = {k.name: k for k in (
    Kind("chat_text", CHAT, soak_http.NORMAL, ANSWER, False),
    Kind("chat_text_stream", CHAT, soak_http.NORMAL, ANSWER, False),
    Kind("chat_image", CHAT, soak_http.NORMAL, ANSWER, True),
    Kind("chat_image_repeat", CHAT, soak_http.NORMAL, ANSWER, True),
    Kind("chat_document", CHAT, soak_http.NORMAL, ANSWER, True),
    Kind("chat_mixed", CHAT, soak_http.NORMAL, ANSWER, True),
    Kind("completions", COMPLETIONS, soak_http.NORMAL, ANSWER, False),
    Kind("completions_stream", COMPLETIONS, soak_http.NORMAL, ANSWER, False),
    Kind("cancel_stream", CHAT, soak_http.CANCEL, CANCEL, False),
    Kind("leave_before_response", CHAT, soak_http.LEAVE, LEAVE, False),
    Kind("leave_mid_body", CHAT, soak_http.LEAVE_MID_BODY, LEAVE, False),
    Kind("half_close", CHAT, soak_http.HALF_CLOSE, ANSWER, False),
    Kind("bad_json", CHAT, soak_http.NORMAL, BAD, False),
    Kind("bad_field", CHAT, soak_http.NORMAL, BAD, False),
)}

DEFAULT_MIX = {"chat_text": 12, "chat_text_stream": 12, "chat_image": 14,
               "chat_image_repeat": 6, "chat_document": 8, "chat_mixed": 4, "completions": 8,
               "completions_stream": 6, "cancel_stream": 10, "leave_before_response": 6,
               "leave_mid_body": 3, "half_close": 5, "bad_json": 3, "bad_field": 3}

# Requests that must be refused with a 400 (each names what is wrong with it).
BAD_FIELDS = (
    {"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"},
    {"messages": [{"role": "user", "content": "hi"}], "max_tokens": -5},
    {"messages": "hi"},
    {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,!!not-base64!!"}}]}]},
    {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,"
                                            + base64.b64encode(b"not an image").decode()}}]}]},
    {"messages": [{"role": "user", "content": [{"type": "document", "text": "   "}]}]},
)


def parse_mix(spec):
    """'chat_text=5,bad_json=1' -> {name: weight}; ValueError naming a bad entry."""
    mix = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, sep, weight = item.partition("=")
        if name not in KINDS:
            raise ValueError(f"unknown request kind '{name}'; known: {', '.join(KINDS)}")
        try:
            mix[name] = float(weight) if sep else 1.0
        except ValueError:
            raise ValueError(f"weight of '{name}' must be a number, got '{weight}'") from None
        if mix[name] < 0:
            raise ValueError(f"weight of '{name}' must be >= 0")
    if not any(mix.values()):
        raise ValueError("the mix has no request kind with a positive weight")
    return mix


def sentence(rng, n):
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def document_text(rng):
    sections = [f"Section {i + 1}\n" + " ".join(sentence(rng, rng.randint(5, 12))
                                                for _ in range(rng.randint(1, 3)))
                for i in range(rng.randint(1, 3))]
    return "\n\n".join(sections)


class Workload:
    """Draws request kinds by weight and builds their bodies (all from one seeded PRNG)."""

    def __init__(self, mix, seed, max_tokens, vision=True):
        self.rng = random.Random(seed)
        usable = {k: w for k, w in mix.items() if w > 0 and (vision or not KINDS[k].vision)}
        if not usable:
            raise ValueError("no request kind of the mix is usable (the server has no vision)")
        self.names, self.weights = list(usable), list(usable.values())
        self.max_tokens = max_tokens
        # A few images sent again and again: encoder-cache hits (and prefix-cache hits).
        self.repeat_images = [random_image(random.Random(seed * 7919 + i)) for i in range(4)]

    def draw(self):
        """-> (Kind, stream, body bytes)."""
        kind = KINDS[self.rng.choices(self.names, self.weights)[0]]
        return (kind,) + self.body(kind)

    def body(self, kind):
        rng = self.rng
        if kind.name == "bad_json":
            return False, rng.choice((b'{"messages": [', b"not json", b'{"messages": [}]}',
                                      b'{"max_tokens": 4,}'))
        if kind.name == "bad_field":
            return False, json.dumps(rng.choice(BAD_FIELDS)).encode()
        stream = kind.name.endswith("_stream") or (
            kind.expect == ANSWER and not kind.name.startswith(("chat_text", "completions"))
            and rng.random() < 0.5)
        req = {"max_tokens": rng.randint(4, self.max_tokens), "seed": rng.randrange(1 << 30)}
        if rng.random() < 0.3 or kind.name == "chat_image_repeat":
            req["temperature"] = 0
        if kind.path == COMPLETIONS:
            req["prompt"] = sentence(rng, rng.randint(3, 30))
        else:
            req["messages"] = [{"role": "user", "content": self.content(kind)}]
        if kind.expect == CANCEL:
            stream, req["max_tokens"] = True, self.max_tokens
        if stream:
            req["stream"] = True
            req["stream_options"] = {"include_usage": True}
        return stream, json.dumps(req).encode()

    def content(self, kind):
        rng = self.rng
        question = {"type": "text", "text": rng.choice(QUESTIONS)}
        if kind.name == "chat_image":
            return [{"type": "image_url", "image_url": {"url": random_image(rng)}}, question]
        if kind.name == "chat_image_repeat":
            url = rng.choice(self.repeat_images)
            return [{"type": "image_url", "image_url": {"url": url}}, question]
        if kind.name == "chat_document":
            doc = {"type": "document", "text": document_text(rng)}
            if rng.random() < 0.3:
                doc["render"] = {"dpi": rng.choice((48, 96)), "page": "auto"}
            return [doc, question]
        if kind.name == "chat_mixed":
            return [{"type": "document", "text": document_text(rng)},
                    {"type": "image_url", "image_url": {"url": random_image(rng)}},
                    {"type": "image_url", "image_url": {"url": rng.choice(self.repeat_images)}},
                    question]
        return " ".join(sentence(rng, rng.randint(3, 15)) for _ in range(rng.randint(1, 4)))


# ---------------------------------------------------------------- classification

def _json(data):
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None


def _error_type(out):
    doc = _json(out.body)
    if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
        return doc["error"].get("type")
    return None


def check_answer(path, out):
    """'' when a 200 response is a well-formed answer for path, else what is wrong."""
    chat = path == CHAT
    if out.headers.get("content-type", "").startswith("text/event-stream"):
        return check_stream(chat, out.events)
    doc = _json(out.body)
    if not isinstance(doc, dict):
        return f"body is not a JSON object: {out.body[:200]!r}"
    want = "chat.completion" if chat else "text_completion"
    if doc.get("object") != want:
        return f"object is {doc.get('object')!r}, not {want!r}"
    choices = doc.get("choices")
    if not isinstance(choices, list) or len(choices) != 1:
        return f"choices is not a list of one: {choices!r}"
    text = choices[0].get("message", {}).get("content") if chat else choices[0].get("text")
    if not isinstance(text, str):
        return "the choice has no text"
    if choices[0].get("finish_reason") not in ("stop", "length"):
        return f"finish_reason {choices[0].get('finish_reason')!r}"
    if not isinstance(doc.get("usage", {}).get("completion_tokens"), int):
        return "usage.completion_tokens missing"
    return ""


def check_stream(chat, events):
    """'' when the SSE payloads are chunks ending in a finish_reason, then [DONE]."""
    if not events or events[-1] != "[DONE]":
        return f"stream does not end with [DONE] ({len(events)} events)"
    want = "chat.completion.chunk" if chat else "text_completion"
    finished = False
    for i, payload in enumerate(events[:-1]):
        doc = _json(payload)
        if not isinstance(doc, dict):
            return f"event {i} is not a JSON object: {payload[:200]!r}"
        if "error" in doc:
            return f"SSE error record at event {i}: {payload[:300]}"
        if doc.get("object") != want:
            return f"event {i}: object is {doc.get('object')!r}, not {want!r}"
        for choice in doc.get("choices") or []:
            finished |= choice.get("finish_reason") in ("stop", "length")
    if not finished:
        return "no chunk has finish_reason stop or length"
    return ""


def classify(kind, out):
    """-> (class, reason); the reason says what was wrong when the class is UNEXPLAINED."""
    if kind.expect == LEAVE:
        if out.error:
            return UNEXPLAINED, f"transport before leaving: {out.error}"
        return LEFT, ""
    if out.status == 0 or (out.error and kind.expect != CANCEL):
        status = f" (after HTTP {out.status})" if out.status else ""
        return UNEXPLAINED, f"transport: {out.error or 'no response'}{status}"
    if out.status == 503:
        if _error_type(out) == "overloaded_error" and "retry-after" in out.headers:
            return OVERLOADED, ""
        return UNEXPLAINED, f"503 that is not overloaded_error + Retry-After: {out.body[:200]!r}"
    if kind.expect == BAD:
        if out.status == 400 and _error_type(out) == "invalid_request_error":
            return REJECTED, ""
        return UNEXPLAINED, f"a bad request got HTTP {out.status}: {out.body[:200]!r}"
    if out.status != 200:
        return UNEXPLAINED, f"HTTP {out.status}: {out.body[:300]!r}"
    if kind.expect == CANCEL:
        if out.error:
            return UNEXPLAINED, f"transport before the first event: {out.error}"
        if not out.headers.get("content-type", "").startswith("text/event-stream"):
            return UNEXPLAINED, "a streamed request got no event stream"
        first = _json(out.events[0]) if out.events else None
        if not isinstance(first, dict) or "error" in first:
            return UNEXPLAINED, f"first event is not a chunk: {out.events[:1]!r}"
        return CANCELLED, ""
    problem = check_answer(kind.path, out)
    return (UNEXPLAINED, problem) if problem else (OK, "")
