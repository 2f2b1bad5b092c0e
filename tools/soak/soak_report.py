"""The soak's numbers: /metrics parsing, /proc sampling, percentiles, the verdict, the text.

Everything here is a pure function of its arguments (except read_proc), so soak_test.py can
check it on canned inputs.
"""
import math
import os
import re

# Gauges that must read 0 once the load is gone and in-flight requests have finished.
# vlserve_kv_cache_usage_ratio counts KV blocks some sequence references; blocks kept only
# for prefix reuse are vlserve_kv_cache_cached_blocks, reported but allowed to stay.
ZERO_GAUGES = ("vlserve_requests_running", "vlserve_requests_waiting",
               "vlserve_kv_cache_usage_ratio")
# Also required to reach 0 when the server exposes them (names an in-flight count).
ZERO_GAUGE_PATTERN = re.compile(r"in_?flight")
# Gauges reported at the end without a requirement.
INFO_GAUGES = ("vlserve_kv_cache_cached_blocks", "vlserve_encoder_cache_bytes",
               "vlserve_encoder_cache_entries", "vlserve_response_cache_bytes")

_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{.*\})?\s+(\S+)(\s+-?\d+)?$")
_LABEL = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')


def parse_prometheus(text):
    """Prometheus text format -> {name: {labels: value}}, labels a sorted tuple of (k, v)
    pairs (() without labels). Comments and blank lines are skipped; a malformed sample
    line raises ValueError naming it."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            raise ValueError(f"malformed metrics line: {line!r}")
        name, braces, value = m.group(1), m.group(2), m.group(3)
        labels = ()
        if braces:
            inner, pos, pairs = braces[1:-1], 0, []
            while pos < len(inner):
                lm = _LABEL.match(inner, pos)
                if not lm or lm.end() == pos:
                    raise ValueError(f"malformed labels in metrics line: {line!r}")
                unescaped = re.sub(r"\\(.)", lambda e: "\n" if e.group(1) == "n" else e.group(1),
                                   lm.group(2))
                pairs.append((lm.group(1), unescaped))
                pos = lm.end()
            labels = tuple(sorted(pairs))
        try:
            number = float(value)  # also "+Inf", "-Inf", "NaN"
        except ValueError:
            raise ValueError(f"malformed value in metrics line: {line!r}") from None
        out.setdefault(name, {})[labels] = number
    return out


def metric(metrics, name, **labels):
    """One sample's value, or None when absent."""
    return metrics.get(name, {}).get(tuple(sorted(labels.items())))


def status_counts(metrics):
    """vlserve_requests_total by status -> {"200": n, ...}."""
    return {dict(k).get("status", "?"): v
            for k, v in metrics.get("vlserve_requests_total", {}).items()}


def cache_bytes(metrics):
    """Bytes held by the encoder and response caches (they fill up to their capacity by
    design, so the leak check subtracts them from the RSS)."""
    return sum(metric(metrics, n) or 0 for n in ("vlserve_encoder_cache_bytes",
                                                 "vlserve_response_cache_bytes"))


def zero_gauges(metrics):
    """The gauges that must be 0 at the end, with their values (absent ones left out)."""
    names = list(ZERO_GAUGES) + sorted(n for n in metrics if ZERO_GAUGE_PATTERN.search(n)
                                       and n not in ZERO_GAUGES)
    return {n: metric(metrics, n) for n in names if metric(metrics, n) is not None}


def read_proc(pid):
    """{rss_mib, fds, threads, cpu_s} of a live process from /proc, or None when gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            status = dict(line.split(":", 1) for line in f if ":" in line)
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read().rsplit(")", 1)[1].split()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, ValueError, IndexError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return {"rss_mib": int(status["VmRSS"].split()[0]) / 1024.0, "fds": fds,
            "threads": int(status["Threads"]),
            "cpu_s": (int(stat[11]) + int(stat[12])) / ticks}  # utime + stime


def percentile(values, p):
    """Linear interpolation between closest ranks (numpy's default): rank = p/100 (n-1)."""
    if not values:
        return None
    xs = sorted(values)
    rank = p / 100.0 * (len(xs) - 1)
    lo = math.floor(rank)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (rank - lo)


def nearest_sample(samples, t):
    """The sample whose t_s is closest to t (None for no samples)."""
    return min(samples, key=lambda s: abs(s["t_s"] - t)) if samples else None


def verdict(report, limits):
    """The reasons the soak failed ([] = passed). report: the dict build_report makes;
    limits: {rss_factor, rss_add_mib, max_fd_growth}."""
    why = []
    if report["unexplained_total"]:
        why.append(f"{report['unexplained_total']} unexplained response(s) in all phases "
                   "(see unexplained.jsonl)")
    if not report["classes"].get("ok", 0):
        why.append("no request was answered: nothing was tested")
    if report.get("in_flight_end"):
        why.append(f"{report['in_flight_end']} request(s) still open after --drain-s")
    if not report["server_alive"]:
        why.append("the server process is gone")
    for name, value in report["gauges_end"].items():
        if value != 0:
            why.append(f"{name} is {value:g} at the end, not 0")
    if report["gauges_missing"]:
        why.append("the server did not expose " + ", ".join(report["gauges_missing"]))
    for status, n in report["server_statuses"].items():
        if status.startswith("5") and status != "503" and n > 0:
            why.append(f"the server counted {n:g} responses with status {status}")
    # The caches' contents are not a leak: compare the RSS less them when it is known.
    label, rss = "RSS less cache contents", report["rss_less_caches_mib"]
    if rss.get("start") is None or rss.get("end") is None:
        label, rss = "RSS", report["rss_mib"]
    if rss.get("start") is not None and rss.get("end") is not None:
        limit = rss["start"] * limits["rss_factor"] + limits["rss_add_mib"]
        if rss["end"] > limit:
            why.append(f"{label} grew from {rss['start']:.1f} to {rss['end']:.1f} MiB "
                       f"(limit {limit:.1f} = start x {limits['rss_factor']:g} + "
                       f"{limits['rss_add_mib']:g})")
    fds = report["fds"]
    if fds.get("start") is not None and fds.get("end") is not None:
        if fds["end"] > fds["start"] + limits["max_fd_growth"]:
            why.append(f"open files grew from {fds['start']} to {fds['end']} "
                       f"(more than {limits['max_fd_growth']})")
    return why


def _fmt(v, spec=".1f"):
    return "n/a" if v is None else format(v, spec)


def format_report(r):
    """The report as text (r: the dict soak.py builds, with its verdict)."""
    lines = [f"vlserve soak: {r['url']}  pid {r['pid'] or 'n/a'}  seed {r['seed']}"]
    if r.get("server_command"):
        lines.append(f"server: {r['server_command']}")
    cal = r.get("calibration")
    if cal:
        lines.append(f"calibration: {cal['duration_s']:.1f} s closed loop, {cal['clients']} "
                     f"clients: {cal['finished']} finished, {cal['rate']:.2f} req/s sustainable "
                     f"({cal['classes'].get('503', 0)} x 503, "
                     f"{cal['classes'].get('unexplained', 0)} unexplained)")
    lines.append(f"soak: {r['duration_s']:.1f} s, Poisson at {r['rate_offered']:.2f} req/s "
                 f"offered ({r['rate_factor']:g} x {r['rate_base']:.2f}), drained in "
                 f"{r['drain_s']:.1f} s")
    c, sent = r["classes"], max(r["sent"], 1)
    lines.append(f"requests: sent {r['sent']}  finished {r['finished']}  "
                 f"not sent (client at --max-in-flight) {r['not_sent']}")
    notes = {"503": "overloaded, expected above the sustainable rate",
             "expected_4xx": "deliberately bad requests, 400 as they must be",
             "cancelled": "closed after the first event, by design",
             "disconnected": "left before the response, by design",
             "unexplained": "5xx, wrong status, malformed body/stream, transport error"}
    for cls in ("ok", "503", "expected_4xx", "cancelled", "disconnected", "unexplained"):
        n = c.get(cls, 0)
        note = f"  ({notes[cls]})" if cls in notes else ""
        lines.append(f"  {cls:<13}{n:>8}  {100.0 * n / sent:5.1f}%{note}")
    lines.append("by kind (ok / 503 / 4xx / cancelled / disconnected / unexplained):")
    for kind, kc in sorted(r["by_kind"].items()):
        lines.append(f"  {kind:<22}" + " ".join(f"{kc.get(k, 0):>6}" for k in
                                                 ("ok", "503", "expected_4xx", "cancelled",
                                                  "disconnected", "unexplained")))
    lat = r["latency_ms"]
    lines.append(f"latency of ok requests (ms): e2e p50 {_fmt(lat['e2e_p50'])} p99 "
                 f"{_fmt(lat['e2e_p99'])} max {_fmt(lat['e2e_max'])}; streamed first event "
                 f"p50 {_fmt(lat['first_event_p50'])} p99 {_fmt(lat['first_event_p99'])}")
    lines.append(f"client: arrival lag p99 {_fmt(r['lag_ms']['p99'])} ms, max "
                 f"{_fmt(r['lag_ms']['max'])} ms; CPU {_fmt(r['client_cpu_share'] * 100)}% "
                 f"of one core; server CPU {_fmt(r.get('server_cpu_cores'), '.2f')} cores")
    rss = r["rss_mib"]
    lines.append(f"RSS (MiB): after start-up {_fmt(rss.get('startup'))}, soak start "
                 f"{_fmt(rss.get('start'))}, middle {_fmt(rss.get('middle'))}, end "
                 f"{_fmt(rss.get('end'))}, max {_fmt(rss.get('max'))}")
    rss = r["rss_less_caches_mib"]
    lines.append(f"RSS less encoder/response cache contents (MiB): soak start "
                 f"{_fmt(rss.get('start'))}, middle {_fmt(rss.get('middle'))}, end "
                 f"{_fmt(rss.get('end'))}, max {_fmt(rss.get('max'))}")
    fds = r["fds"]
    lines.append(f"open files: soak start {_fmt(fds.get('start'), 'd')}, end "
                 f"{_fmt(fds.get('end'), 'd')}; threads {_fmt(r.get('threads_end'), 'd')}")
    lines.append("gauges at the end (must be 0): " + (", ".join(
        f"{k} {v:g}" for k, v in r["gauges_end"].items()) or "none read") +
        f" (after {r['settle_s']:.1f} s)")
    lines.append("gauges at the end (may stay): " + ", ".join(
        f"{k} {v:g}" for k, v in r["gauges_info"].items()))
    lines.append("server vlserve_requests_total during the soak: " + ", ".join(
        f"{k}: {v:g}" for k, v in sorted(r["server_statuses"].items())) +
        f"; cancelled by the server {r['server_cancelled']:g}")
    if r.get("server_log_problems"):
        lines.append(f"server log: {r['server_log_problems']['count']} warning/error lines, "
                     "first ones:")
        lines.extend("  " + ln for ln in r["server_log_problems"]["first"])
    reasons = sorted(r["unexplained_reasons"].items(), key=lambda kv: -kv[1])
    for reason, n in reasons[:10]:
        lines.append(f"UNEXPLAINED x{n} {reason}")
    lines.append("PASS" if not r["failures"] else "FAIL: " + "; ".join(r["failures"]))
    return "\n".join(lines)
