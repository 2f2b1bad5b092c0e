#!/usr/bin/python3
"""Soak test of vlserve: a long open-loop overload with a mixed workload, then checks that
nothing leaked (docs/soak.md).

  1. Starts `build/vlserve serve` on the demo model (models/demo, as scripts/run.sh does) on
     a free port, or uses --url (with --pid for the RSS and open files).
  2. Calibration (--calibrate-s): a closed loop of --calibrate-clients clients sending the
     mix; finished requests per second = the sustainable rate. Skipped with --rate.
  3. Soak (--duration-s): Poisson arrivals at --rate-factor x that rate, each request drawn
     from the mix (soak_mix.py: text, images, documents, completions, streaming, cancels,
     early disconnects, half-closes, bad requests); every response classified.
  4. Drain, then the end-of-run checks: no unexplained response, the in-flight gauges of
     /metrics back to 0, RSS not grown past --rss-factor x start + --rss-add-mib, open files
     not grown past --max-fd-growth, no 5xx other than 503 counted by the server, server
     alive. Exit 0 = pass, 1 = fail, 2 = could not run.

Samples of RSS, open files, threads, CPU and the /metrics gauges go to OUT_DIR/samples.csv
every --sample-s; unexplained responses to OUT_DIR/unexplained.jsonl; the server's log (when
started here) to OUT_DIR/server.log. Stdlib only: run with /usr/bin/python3 or any python3.

usage: tools/soak/soak.py [--duration-s 1800] [--calibrate-s 60] [--rate-factor 2]
       tools/soak/soak.py --url http://127.0.0.1:8080 --pid PID ...
       tools/soak/soak.py --duration-s 60 --calibrate-s 20      (a quick look)
"""
import argparse
import asyncio
import csv
import json
import os
import random
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import soak_http  # noqa: E402
import soak_mix  # noqa: E402
import soak_report  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
CSV_FIELDS = ("t_s", "phase", "rss_mib", "cache_mib", "rss_less_caches_mib", "fds", "threads",
              "server_cpu_cores", "in_flight", "sent", "ok", "503", "unexplained",
              "vlserve_requests_running", "vlserve_requests_waiting",
              "vlserve_kv_cache_usage_ratio", "vlserve_kv_cache_cached_blocks",
              "vlserve_encoder_cache_bytes")


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="a running server (default: start build/vlserve here)")
    ap.add_argument("--pid", type=int, help="the running server's process id (RSS, files)")
    ap.add_argument("--vlserve", default=os.path.join(ROOT, "build", "vlserve"),
                    help="the binary to start (without --url)")
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "demo", "text.gguf"),
                    help="-m of the server started here (default: the demo model)")
    ap.add_argument("--mmproj", default=os.path.join(ROOT, "models", "demo", "mmproj.gguf"),
                    help="'' for a text-only server")
    ap.add_argument("--server-args", default="", help="extra `vlserve serve` flags")
    ap.add_argument("--duration-s", type=float, default=1800, help="the overload phase")
    ap.add_argument("--calibrate-s", type=float, default=60,
                    help="the closed-loop phase that measures the sustainable rate")
    ap.add_argument("--calibrate-clients", type=int, default=16,
                    help="concurrent clients of the calibration")
    ap.add_argument("--rate", type=float, help="sustainable rate, req/s (skips calibration)")
    ap.add_argument("--rate-factor", type=float, default=2.0,
                    help="offered rate = this x the sustainable rate")
    ap.add_argument("--mix", help="kind=weight,... (default: %s)" % ",".join(
                    f"{k}={v}" for k, v in soak_mix.DEFAULT_MIX.items()))
    ap.add_argument("--max-tokens", type=int, default=32, help="max_tokens drawn from 4..N")
    ap.add_argument("--max-in-flight", type=int, default=400,
                    help="arrivals beyond this many open requests are not sent (counted)")
    ap.add_argument("--timeout-s", type=float, default=120, help="one request, whole")
    ap.add_argument("--sample-s", type=float, default=10,
                    help="seconds between samples of RSS and /metrics")
    ap.add_argument("--drain-s", type=float, default=120,
                    help="how long the requests in flight at the end get to finish")
    ap.add_argument("--settle-s", type=float, default=15,
                    help="after the drain, how long the gauges get to reach 0")
    ap.add_argument("--rss-factor", type=float, default=1.5,
                    help="fail when the end RSS (less cache contents) > start x this + "
                    "--rss-add-mib")
    ap.add_argument("--rss-add-mib", type=float, default=50)
    ap.add_argument("--max-fd-growth", type=int, default=16,
                    help="fail when the server's open files grew by more")
    ap.add_argument("--seed", type=int, default=0, help="request mix, bodies and arrivals")
    ap.add_argument("--out-dir", default=os.path.join(ROOT, "out", "soak"),
                    help="samples.csv, unexplained.jsonl, server.log")
    ap.add_argument("--json", help="also write the report as JSON here")
    ap.add_argument("--quiet", "-q", action="store_true", help="no progress lines")
    args = ap.parse_args(argv)
    try:
        args.mix = soak_mix.parse_mix(args.mix) if args.mix else dict(soak_mix.DEFAULT_MIX)
    except ValueError as e:
        ap.error(str(e))
    if args.url and urllib.parse.urlparse(args.url).scheme != "http":
        ap.error("--url must be http://HOST:PORT (the client has no TLS)")
    if args.duration_s <= 0 or args.sample_s <= 0 or args.rate_factor <= 0:
        ap.error("--duration-s, --sample-s and --rate-factor must be > 0")
    if args.rate is None and args.calibrate_s <= 0:
        ap.error("give --rate or a --calibrate-s above 0")
    return args


class ServerProcess:
    """`vlserve serve` on a free loopback port; its log goes to log_path."""

    def __init__(self, args, log_path):
        self.cmd = [args.vlserve, "serve", "--host", "127.0.0.1", "--port", "0",
                    "-m", args.model] + (["--mmproj", args.mmproj] if args.mmproj else []) + \
            shlex.split(args.server_args)
        self.log_path = log_path
        self.log = open(log_path, "w")
        try:
            self.proc = subprocess.Popen(self.cmd, stdout=self.log, stderr=subprocess.STDOUT)
        except OSError as e:
            raise RuntimeError(f"cannot start {args.vlserve} (build it: ninja -C build "
                               f"vlserve, or give --vlserve / --url): {e}") from None
        self.pid = self.proc.pid

    def url(self, timeout_s=120):
        """Waits for `ready: URL` in the log."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"vlserve exited with {self.proc.returncode} during start-up;"
                                   f" see {self.log_path}")
            with open(self.log_path) as f:
                m = re.search(r"ready: (http://[0-9.:]+)", f.read())
            if m:
                return m.group(1)
            time.sleep(0.1)
        raise RuntimeError(f"vlserve was not ready in {timeout_s} s; see {self.log_path}")

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class Tally:
    """Counts by class and kind, latencies of ok requests, unexplained details."""

    def __init__(self, unexplained_log):
        self.classes, self.by_kind = {}, {}
        self.e2e_ms, self.first_event_ms = [], []
        self.sent = self.finished = self.in_flight = 0
        self.unexplained_first = []
        self.unexplained_reasons = {}  # "kind: reason" (first 160 characters) -> count
        self.unexplained_log = unexplained_log

    def snapshot(self):
        return (self.sent, dict(self.classes), {k: dict(v) for k, v in self.by_kind.items()},
                len(self.e2e_ms), len(self.first_event_ms))

    def since(self, snap):
        """The report's request figures counted after snapshot() (the soak phase); the
        unexplained total covers every phase."""
        sent0, classes0, kinds0, e2e0, first0 = snap
        classes = {k: v - classes0.get(k, 0) for k, v in self.classes.items()}
        ok_e2e, ok_first = self.e2e_ms[e2e0:], self.first_event_ms[first0:]
        return {
            "sent": self.sent - sent0, "finished": sum(classes.values()), "classes": classes,
            "by_kind": {k: {c: n - kinds0.get(k, {}).get(c, 0) for c, n in v.items()}
                        for k, v in self.by_kind.items()},
            "unexplained_total": self.classes.get(soak_mix.UNEXPLAINED, 0),
            "unexplained_first": self.unexplained_first,
            "unexplained_reasons": self.unexplained_reasons,
            "latency_ms": {"e2e_p50": soak_report.percentile(ok_e2e, 50),
                           "e2e_p99": soak_report.percentile(ok_e2e, 99),
                           "e2e_max": max(ok_e2e) if ok_e2e else None,
                           "first_event_p50": soak_report.percentile(ok_first, 50),
                           "first_event_p99": soak_report.percentile(ok_first, 99)}}

    def add(self, kind, stream, out, t0):
        cls, reason = soak_mix.classify(kind, out)
        self.finished += 1
        self.classes[cls] = self.classes.get(cls, 0) + 1
        per_kind = self.by_kind.setdefault(kind.name, {})
        per_kind[cls] = per_kind.get(cls, 0) + 1
        if cls == soak_mix.OK and out.sent_s:
            self.e2e_ms.append((out.end_s - out.sent_s) * 1000)
            if stream and out.first_event_s:
                self.first_event_ms.append((out.first_event_s - out.sent_s) * 1000)
        elif cls == soak_mix.UNEXPLAINED:
            entry = {"t_s": round(time.monotonic() - t0, 3), "kind": kind.name,
                     "reason": reason, "status": out.status, "error": out.error,
                     "headers": out.headers, "body": out.body[:1000].decode("utf-8", "replace"),
                     "events_first": out.events[:3], "events_last": out.events[-2:],
                     "reused_connection": out.reused, "interim_responses": out.interim}
            self.unexplained_log.write(json.dumps(entry) + "\n")
            self.unexplained_log.flush()
            if len(self.unexplained_first) < 10:
                self.unexplained_first.append(entry)
            key = f"{kind.name}: {reason}"[:160]
            if key in self.unexplained_reasons or len(self.unexplained_reasons) < 100:
                self.unexplained_reasons[key] = self.unexplained_reasons.get(key, 0) + 1


class Soak:
    def __init__(self, args, url, pid, alive, out_dir):
        self.args = args
        u = urllib.parse.urlparse(url)
        self.url, self.host, self.port = url, u.hostname, u.port or 80
        self.pid, self.alive = pid, alive
        self.pool = soak_http.ConnectionPool(self.host, self.port)
        self.unexplained_log = open(os.path.join(out_dir, "unexplained.jsonl"), "w")
        self.tally = Tally(self.unexplained_log)
        self.samples, self.phase = [], "startup"
        self.t0 = time.monotonic()
        self.csv_file = open(os.path.join(out_dir, "samples.csv"), "w", newline="")
        self.csv = csv.DictWriter(self.csv_file, CSV_FIELDS)
        self.csv.writeheader()
        self.last_cpu = None

    async def connect(self):
        """Checks the server is ready -> the Workload (no image kinds without vision)."""
        try:
            status, body = await soak_http.get(self.host, self.port, "/health")
            if status != 200:
                raise RuntimeError(f"{self.url} is not ready: GET /health answered {status}")
            status, body = await soak_http.get(self.host, self.port, "/v1/models")
        except (OSError, asyncio.TimeoutError) as e:
            raise RuntimeError(f"cannot reach {self.url}: {e}") from None
        models = json.loads(body) if status == 200 else {}
        vision = any(m.get("meta", {}).get("vision") for m in models.get("data", []))
        return soak_mix.Workload(self.args.mix, self.args.seed, self.args.max_tokens, vision)

    async def drain_and_settle(self, tasks):
        """Waits for the requests in flight, then for the zero gauges to read 0.
        -> (drain seconds, settle seconds, the last /metrics read or {})."""
        self.phase = "drain"
        t_drain = time.monotonic()
        if tasks:
            await asyncio.wait(tasks, timeout=self.args.drain_s)
        drain_s = time.monotonic() - t_drain
        self.pool.close_all()
        self.phase = "settle"
        t_settle = time.monotonic()
        while True:
            await asyncio.sleep(0.5)
            try:
                m = await self.metrics()
            except (OSError, RuntimeError, ValueError, asyncio.TimeoutError):
                m = {}
            if m and all(v == 0 for v in soak_report.zero_gauges(m).values()):
                break
            if time.monotonic() - t_settle > self.args.settle_s:
                break
        settle_s = time.monotonic() - t_settle
        await asyncio.sleep(1.0)  # let the server close the sockets the client just closed
        return drain_s, settle_s, m

    def close(self):
        self.csv_file.close()
        self.unexplained_log.close()

    async def metrics(self):
        status, body = await soak_http.get(self.host, self.port, "/metrics")
        if status != 200:
            raise RuntimeError(f"GET /metrics answered {status}")
        return soak_report.parse_prometheus(body.decode())

    async def sample(self):
        """One row: /proc of the server, the gauges, the client's counters."""
        now = time.monotonic() - self.t0
        row = {"t_s": round(now, 2), "phase": self.phase, "in_flight": self.tally.in_flight,
               "sent": self.tally.sent, "ok": self.tally.classes.get("ok", 0),
               "503": self.tally.classes.get("503", 0),
               "unexplained": self.tally.classes.get("unexplained", 0)}
        proc = soak_report.read_proc(self.pid) if self.pid else None
        if proc:
            row.update(rss_mib=round(proc["rss_mib"], 1), fds=proc["fds"],
                       threads=proc["threads"])
            prev = self.last_cpu  # two samples back to back (a phase change) rate no CPU
            if prev is None or now - prev[0] >= 1.0:
                if prev:
                    row["server_cpu_cores"] = round((proc["cpu_s"] - prev[1]) / (now - prev[0]),
                                                    2)
                self.last_cpu = (now, proc["cpu_s"])
        try:
            m = await self.metrics()
            row["metrics"] = m
            for name in CSV_FIELDS:
                if name.startswith("vlserve_"):
                    row[name] = soak_report.metric(m, name)
            if proc:
                row["cache_mib"] = round(soak_report.cache_bytes(m) / 2**20, 1)
                row["rss_less_caches_mib"] = round(proc["rss_mib"] - row["cache_mib"], 1)
        except (OSError, RuntimeError, ValueError, asyncio.TimeoutError) as e:
            row["metrics_error"] = str(e)
        self.samples.append(row)
        self.csv.writerow({k: v for k, v in row.items() if k in CSV_FIELDS})
        self.csv_file.flush()
        if not self.args.quiet:
            print(f"[{now:7.1f} s {self.phase:<9}] sent {self.tally.sent} ok "
                  f"{row['ok']} 503 {row['503']} unexplained {row['unexplained']} in flight "
                  f"{row['in_flight']} RSS {row.get('rss_mib', 'n/a')} MiB running "
                  f"{row.get('vlserve_requests_running')} waiting "
                  f"{row.get('vlserve_requests_waiting')}", file=sys.stderr, flush=True)
        return row

    async def sampler(self):
        while True:
            await asyncio.sleep(self.args.sample_s)
            await self.sample()

    async def one(self, workload):
        kind, stream, body = workload.draw()
        reset = workload.rng.random() < 0.5  # half the clients that leave are killed (RST)
        request = soak_http.build_request("POST", kind.path, body, self.host)
        self.tally.sent += 1
        self.tally.in_flight += 1
        try:
            out = await soak_http.exchange(self.pool, request, kind.behaviour,
                                           self.args.timeout_s, reset)
        finally:
            self.tally.in_flight -= 1
        self.tally.add(kind, stream, out, self.t0)

    async def calibrate(self, workload):
        """Closed loop: finished requests per second with calibrate_clients clients."""
        before = dict(self.tally.classes)
        finished0 = self.tally.finished
        end = time.monotonic() + self.args.calibrate_s
        start = time.monotonic()

        async def client():
            while time.monotonic() < end:
                await self.one(workload)
        await asyncio.gather(*(client() for _ in range(self.args.calibrate_clients)))
        elapsed = time.monotonic() - start
        finished = self.tally.finished - finished0
        return {"duration_s": elapsed, "clients": self.args.calibrate_clients,
                "finished": finished, "rate": finished / elapsed,
                "classes": {k: v - before.get(k, 0) for k, v in self.tally.classes.items()}}

    async def open_loop(self, workload, rate, duration_s):
        """Poisson arrivals; returns (not_sent, lags_ms, tasks)."""
        rng = random.Random(self.args.seed + 1)
        tasks, lags, not_sent = set(), [], 0
        start = time.monotonic()
        t_next = start
        while True:
            t_next += rng.expovariate(rate)
            if t_next - start >= duration_s:
                break
            delay = t_next - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            lags.append(max(0.0, time.monotonic() - t_next) * 1000)
            if self.tally.in_flight >= self.args.max_in_flight:
                not_sent += 1
                continue
            task = asyncio.ensure_future(self.one(workload))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        return not_sent, lags, tasks


async def run(args, url, pid, alive, out_dir, server_command, log_path):
    """The three phases and the end-of-run checks -> the report dict (soak_report)."""
    soak = Soak(args, url, pid, alive, out_dir)
    workload = await soak.connect()
    startup = await soak.sample()
    sampler = asyncio.ensure_future(soak.sampler())
    calibration, rate_base = None, args.rate
    if args.rate is None:
        soak.phase = "calibrate"
        calibration = await soak.calibrate(workload)
        rate_base = calibration["rate"]
        if rate_base <= 0:
            raise RuntimeError("calibration finished no request; is the server answering?")
    soak.phase = "soak"
    start_row = await soak.sample()
    before = soak.tally.snapshot()
    cpu0, t_soak = os.times(), time.monotonic()
    not_sent, lags, tasks = await soak.open_loop(workload, rate_base * args.rate_factor,
                                                 args.duration_s)
    soak_s = time.monotonic() - t_soak
    cpu1 = os.times()
    drain_s, settle_s, m_last = await soak.drain_and_settle(tasks)
    soak.phase = "end"
    end_row = await soak.sample()
    sampler.cancel()
    report = {
        "url": url, "pid": pid, "seed": args.seed, "server_command": server_command,
        "calibration": calibration, "rate_base": rate_base, "rate_factor": args.rate_factor,
        "rate_offered": rate_base * args.rate_factor, "duration_s": soak_s, "drain_s": drain_s,
        "settle_s": settle_s, "not_sent": not_sent, "in_flight_end": soak.tally.in_flight,
        "lag_ms": {"p99": soak_report.percentile(lags, 99), "max": max(lags) if lags else None},
        "client_cpu_share": ((cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)) / soak_s,
        "server_alive": alive(),
        "server_log_problems": _log_problems(log_path) if log_path else None,
        "limits": {"rss_factor": args.rss_factor, "rss_add_mib": args.rss_add_mib,
                   "max_fd_growth": args.max_fd_growth},
    }
    report.update(soak.tally.since(before))
    report.update(_server_figures(soak.samples, startup, start_row, end_row,
                                  end_row.get("metrics") or m_last, args.duration_s))
    report["failures"] = soak_report.verdict(report, report["limits"])
    soak.close()
    return report


def _server_figures(samples, startup, start_row, end_row, m_end, duration_s):
    """RSS, files, CPU and /metrics figures of the soak phase (from the samples)."""
    soak_rows = [s for s in samples if s["phase"] in ("soak", "drain")] or [start_row]
    middle = soak_report.nearest_sample(soak_rows, start_row["t_s"] + duration_s / 2)
    m_start = start_row.get("metrics", {})
    statuses_start = soak_report.status_counts(m_start)
    cancelled = "vlserve_requests_cancelled_total"
    return {
        "server_cpu_cores": _mean([s.get("server_cpu_cores") for s in soak_rows]),
        "rss_mib": _series(startup, start_row, middle, end_row, samples, "rss_mib"),
        "rss_less_caches_mib": _series(startup, start_row, middle, end_row, samples,
                                       "rss_less_caches_mib"),
        "fds": {"start": start_row.get("fds"), "end": end_row.get("fds")},
        "threads_end": end_row.get("threads"),
        "gauges_end": soak_report.zero_gauges(m_end),
        "gauges_missing": [] if m_end else ["/metrics at the end"],
        "gauges_info": {n: soak_report.metric(m_end, n) for n in soak_report.INFO_GAUGES
                        if soak_report.metric(m_end, n) is not None},
        "server_statuses": {s: n - statuses_start.get(s, 0)
                            for s, n in soak_report.status_counts(m_end).items()
                            if n - statuses_start.get(s, 0)},
        "server_cancelled": (soak_report.metric(m_end, cancelled) or 0) -
                            (soak_report.metric(m_start, cancelled) or 0),
    }


def _series(startup, start, middle, end, samples, key):
    """A sampled value after start-up, at the soak's start, middle and end, and its max."""
    values = [s[key] for s in samples if s.get(key) is not None]
    return {"startup": startup.get(key), "start": start.get(key),
            "middle": middle.get(key) if middle else None, "end": end.get(key),
            "max": max(values) if values else None}


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def _log_problems(path):
    """Warning and error lines of the server log (count, first 8)."""
    first, count = [], 0
    with open(path, errors="replace") as f:
        for line in f:
            if re.match(r"^\S+Z [WE] ", line):
                count += 1
                if len(first) < 8:
                    first.append(line.rstrip()[:300])
    return {"count": count, "first": first} if count else None


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    server, log_path, command = None, None, None
    try:
        if args.url:
            url, pid = args.url.rstrip("/"), args.pid
            alive = (lambda: os.path.exists(f"/proc/{pid}")) if pid else (lambda: True)
        else:
            log_path = os.path.join(args.out_dir, "server.log")
            server = ServerProcess(args, log_path)
            command = " ".join(server.cmd)
            url, pid, alive = server.url(), server.pid, server.alive
        report = asyncio.run(run(args, url, pid, alive, args.out_dir, command, log_path))
    except (OSError, RuntimeError, ValueError) as e:
        print(f"soak: {e}", file=sys.stderr)
        return 2
    finally:
        if server:
            server.stop()
    print(soak_report.format_report(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
