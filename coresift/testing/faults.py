"""A fault-injecting HTTP proxy for object-store tests: what a flaky network and a throttling
store do to requests, in front of a real server (with rate=0, a meter of what is read).

About `rate` of the requests fail, each in one of these ways: 500 InternalError, 503 SlowDown,
429 TooManyRequests, a connection reset, a stall (the connection hangs, then is reset), or,
for a GET with a body, a short body (the full Content-Length is announced, half is sent).
Requests that change something fail before they reach the server, so a fault never applies
a write the client was told failed; reads fail after the server answered.
"""

from __future__ import annotations

import http.client
import random
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

FAULTS = ("500", "503", "429", "reset", "stall", "short")
_ERRORS = {
    "500": (500, "InternalError", "We encountered an internal error. Please try again."),
    "503": (503, "SlowDown", "Please reduce your request rate."),
    "429": (429, "TooManyRequests", "Please reduce your request rate."),
}
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}


class FaultStats:
    """What the proxy did: requests seen, faults injected by kind, and the body bytes that
    GETs received, by path (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.faults: Counter[str] = Counter()
        self.bytes_read: Counter[str] = Counter()

    def count_read(self, path: str, size: int) -> None:
        with self._lock:
            self.bytes_read[urlsplit(path).path] += size

    def draw(self, rng: random.Random, rate: float, kinds: tuple[str, ...]) -> str | None:
        """Count a request and decide its fault (None: it goes through)."""
        with self._lock:
            self.requests += 1
            fault = rng.choice(kinds) if rng.random() < rate else None
            if fault:
                self.faults[fault] += 1
            return fault


def _handler(
    upstream: str, rate: float, stall_s: float, rng: random.Random, stats: FaultStats
) -> type[BaseHTTPRequestHandler]:
    target = urlsplit(upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if self.headers.get("Transfer-Encoding"):
                raise NotImplementedError("chunked request bodies are not proxied")
            body = self.rfile.read(length) if length else None
            reading = self.command in ("GET", "HEAD")
            kinds = FAULTS if self.command == "GET" else FAULTS[:-1]  # short: bodies only
            fault = stats.draw(rng, rate, kinds)
            if fault and not reading:
                return self._fail(fault)  # before the server sees a write
            connection = http.client.HTTPConnection(target.netloc, timeout=120)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
            finally:
                connection.close()
            if fault and fault != "short":
                return self._fail(fault)
            self.send_response(response.status, response.reason)
            for key, value in response.getheaders():
                if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                    self.send_header(key, value)
            announced = response.getheader("Content-Length") if self.command == "HEAD" else None
            self.send_header("Content-Length", announced or str(len(data)))
            self.end_headers()
            if self.command == "HEAD":
                return None
            if fault == "short" and len(data) > 1:
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                return self._reset()
            self.wfile.write(data)
            if self.command == "GET":
                stats.count_read(self.path, len(data))
            return None

        def _fail(self, fault: str) -> None:
            if fault == "stall":
                time.sleep(stall_s)
                return self._reset()
            if fault == "reset":
                return self._reset()
            status, code, message = _ERRORS[fault]
            payload = (
                f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                f"<Message>{message}</Message></Error>"
            ).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(payload)))
            if status != 500:
                self.send_header("Retry-After", "0")
            self.end_headers()
            self.wfile.write(payload)
            return None

        def _reset(self) -> None:
            """Close with RST instead of FIN, as a dropped connection does."""
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()

        do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _forward

    return Handler


@contextmanager
def fault_proxy(
    upstream: str, rate: float = 0.2, stall_s: float = 2.0, seed: int = 0
) -> Iterator[tuple[str, FaultStats]]:
    """Run the proxy on a free loopback port; yields its URL and its statistics."""
    stats = FaultStats()
    handler = _handler(upstream, rate, stall_s, random.Random(seed), stats)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="fault-proxy", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", stats
    finally:
        server.shutdown()
        server.server_close()
