"""A small asyncio HTTP/1.1 client for the soak: one request, one behaviour, one Outcome.

Written on raw streams (not http.client) because the soak needs what a library hides: an
interim `100 Continue` the client never asked for (vlserve sends one to probe a half-closed
connection), closing the socket after the first SSE event, leaving before the response or
in the middle of the body, and half-closing after the request. One event loop carries
hundreds of requests in flight on one core, so the client stays far below the server's
cost. Stdlib only.
"""
import asyncio
import socket
import struct
import time
from dataclasses import dataclass, field

# What the client does with a request (soak_mix.Kind.behaviour).
NORMAL = "normal"              # send, read the whole response
CANCEL = "cancel"              # streamed: close the socket after the first SSE event
LEAVE = "leave"                # send the whole request, close before any response byte
LEAVE_MID_BODY = "leave_body"  # send the header and half the body, close
HALF_CLOSE = "half_close"      # send, shut down the write side, read the whole response


@dataclass
class Outcome:
    """What came back for one request; the classifier (soak_mix.classify) judges it."""
    status: int = 0                  # final status; 0 = no response head was read
    headers: dict = field(default_factory=dict)  # lower-case names
    body: bytes = b""                # non-streamed body (de-chunked)
    events: list = field(default_factory=list)   # SSE `data:` payloads, in order (str)
    complete: bool = False           # the whole response was read (or, for CANCEL, >= 1 event)
    interim: int = 0                 # 1xx responses read before the final one
    error: str = ""                  # transport error: "timeout", "connect: ...", "eof ..."
    sent_s: float = 0.0              # time.monotonic() when the request was written
    first_event_s: float = 0.0       # first SSE event with content (or any event)
    end_s: float = 0.0
    reused: bool = False             # went over a kept-alive connection


class ConnectionPool:
    """Idle keep-alive connections to one server, reused last-in first-out."""

    def __init__(self, host, port, max_idle=32):
        self.host, self.port, self.max_idle = host, port, max_idle
        self.idle = []

    async def open(self):
        return await asyncio.open_connection(self.host, self.port, limit=1 << 22)

    def take(self):
        while self.idle:
            reader, writer = self.idle.pop()
            if not writer.is_closing() and not reader.at_eof():
                return reader, writer
            writer.close()
        return None

    def give(self, reader, writer):
        if len(self.idle) < self.max_idle and not writer.is_closing():
            self.idle.append((reader, writer))
        else:
            writer.close()

    def close_all(self):
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


def build_request(method, path, body, host, keep_alive=True, content_length=None):
    """The request bytes. content_length overrides the header (to announce more than sent)."""
    n = len(body) if content_length is None else content_length
    head = (f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: vlserve-soak\r\n"
            f"Content-Type: application/json\r\nContent-Length: {n}\r\n"
            f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n")
    return head.encode() + body


def parse_head(raw):
    """Status line + header block -> (status, {lower name: value}). Raises ValueError."""
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ValueError(f"bad status line {lines[0]!r}")
    headers = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ValueError(f"bad header line {line!r}")
        headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


class SseSplitter:
    """Feeds bytes, yields the `data:` payload of each complete event (blank-line ended)."""

    def __init__(self):
        self.buf = b""

    def feed(self, data):
        self.buf += data
        out = []
        while True:
            cut = self.buf.find(b"\n\n")
            if cut < 0:
                return out
            block, self.buf = self.buf[:cut], self.buf[cut + 2:]
            lines = [ln for ln in block.split(b"\n") if ln.startswith(b"data:")]
            if lines:
                out.append(b"\n".join(ln[5:].lstrip(b" ") for ln in lines).decode(
                    "utf-8", errors="replace"))


async def _read_chunks(reader):
    """Yields the chunks of a chunked body; ends after the last (zero) chunk and trailer."""
    while True:
        line = await reader.readuntil(b"\r\n")
        size = int(line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass  # trailer fields
            return
        data = await reader.readexactly(size + 2)
        if data[-2:] != b"\r\n":
            raise ValueError("chunk not followed by CRLF")
        yield data[:-2]


async def _read_response(reader, out, stop_after_first_event):
    """Reads one response into out (skipping 1xx). Returns True when the connection may be
    reused (the body was delimited and the server did not say close)."""
    while True:
        head = await reader.readuntil(b"\r\n\r\n")
        out.status, out.headers = parse_head(head[:-4])
        if 100 <= out.status < 200:
            out.interim += 1
            continue
        break
    sse = out.headers.get("content-type", "").startswith("text/event-stream")
    if out.headers.get("transfer-encoding", "").lower() == "chunked":
        splitter = SseSplitter() if sse else None
        body = []
        async for chunk in _read_chunks(reader):
            if splitter is None:
                body.append(chunk)
                continue
            events = splitter.feed(chunk)
            if events and not out.events:
                out.first_event_s = time.monotonic()
            out.events.extend(events)
            if stop_after_first_event and out.events:
                out.complete = True
                return False
        out.body = b"".join(body)
        if splitter is not None and splitter.buf.strip():
            raise ValueError(f"stream ended inside an event: {splitter.buf[:200]!r}")
        delimited = True
    elif "content-length" in out.headers:
        out.body = await reader.readexactly(int(out.headers["content-length"]))
        delimited = True
    else:
        out.body = await reader.read()
        delimited = False
    if sse and not out.events and out.body:  # a stream not chunked: split it after the fact
        out.events = SseSplitter().feed(out.body)
    out.complete = True
    return delimited and out.headers.get("connection", "").lower() != "close"


async def _send_and_read(reader, writer, request, behaviour, out):
    if behaviour == LEAVE_MID_BODY:
        head_end = request.index(b"\r\n\r\n") + 4
        writer.write(request[:head_end + (len(request) - head_end) // 2])
        await writer.drain()
        return False
    writer.write(request)
    await writer.drain()
    out.sent_s = time.monotonic()
    if behaviour == LEAVE:
        return False
    if behaviour == HALF_CLOSE:
        writer.write_eof()
    return await _read_response(reader, out, stop_after_first_event=behaviour == CANCEL)


def _close(writer, reset):
    """Closes the connection: FIN, or with reset an RST (SO_LINGER 0), as a killed client."""
    if reset:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()


async def exchange(pool, request, behaviour, timeout_s, reset=False):
    """Runs one request with the given behaviour; never raises (errors go to Outcome.error).
    reset: a CANCEL, LEAVE or LEAVE_MID_BODY ends with an RST instead of a FIN.

    NORMAL requests reuse an idle connection when there is one; a reused connection that
    fails before any response byte (the server closed it while idle) is retried once on a
    new connection, as HTTP clients do. Every other behaviour gets a connection of its own.
    """
    out = Outcome()
    for attempt in (0, 1):
        conn = pool.take() if behaviour == NORMAL and attempt == 0 else None
        out.reused = conn is not None
        writer = None
        try:
            reader, writer = conn if conn else await asyncio.wait_for(pool.open(), timeout_s)
            keep = await asyncio.wait_for(
                _send_and_read(reader, writer, request, behaviour, out), timeout_s)
            out.end_s = time.monotonic()
            if keep and behaviour == NORMAL:
                pool.give(reader, writer)
            else:
                _close(writer, reset and behaviour in (CANCEL, LEAVE, LEAVE_MID_BODY))
            return out
        except asyncio.TimeoutError:
            out.error = f"timeout after {timeout_s:g} s"
        except (ConnectionError, OSError) as e:
            out.error = f"{type(e).__name__}: {e}"
        except asyncio.IncompleteReadError as e:
            out.error = f"connection closed after {len(e.partial)} bytes of a read"
        except asyncio.LimitOverrunError:
            out.error = "response head over 4 MiB"
        except ValueError as e:
            out.error = f"malformed response: {e}"
        out.end_s = time.monotonic()
        if writer is not None:
            writer.close()
        if not (out.reused and out.status == 0 and not out.error.startswith("timeout")):
            return out
        out = Outcome()  # stale keep-alive connection: once more on a fresh one
    return out


async def get(host, port, path, timeout_s=10.0):
    """A plain GET on a fresh connection -> (status, body bytes). Raises on transport errors."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, limit=1 << 22), timeout_s)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
                     .encode())
        out = Outcome()
        await asyncio.wait_for(_read_response(reader, out, False), timeout_s)
        return out.status, out.body
    finally:
        writer.close()
