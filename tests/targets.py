"""A real local HTTP target that behaves as a test scripts it, and remembers.

Tests that deliver to a target take the ``target_server`` fixture::

    from tests.targets import Reply, target_server  # noqa: F401

    def test_something(target_server):
        target_server.reply("/hook", Reply(503), Reply(200, body=b"ok"))
        ...  # deliver to target_server.url("/hook")
        assert len(target_server.received("/hook")) == 2

Each path answers with its scripted replies in order, the last one again and
again; a path with no script answers 200 with an empty body. The server
speaks HTTP/1.1 with keep-alive, so clients can reuse their connections, and
it can misbehave on request: wait before answering, trickle the head or the
body one byte at a time, send a huge body, or a body that never ends.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from requests.structures import CaseInsensitiveDict

from shared.times import utcnow


@dataclass(frozen=True)
class Reply:
    """How the target answers one request."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    repeat: int = 1
    """The body is sent this many times: a 50 MB body from a 64 KiB block."""
    delay: float = 0
    """Seconds of silence before the status line."""
    trickle: float = 0
    """Seconds between the single bytes of the body; 0 sends it at once."""
    trickle_head: float = 0
    """Seconds between the single bytes of the status line and headers."""
    endless: bool = False
    """The body repeats until the client goes away (no Content-Length)."""


@dataclass(frozen=True)
class Received:
    """One request as the target saw it."""

    method: str
    path: str
    """With the query string, as sent."""
    headers: CaseInsensitiveDict[str]
    body: bytes
    at: datetime
    """Arrival on the wall clock, in UTC."""
    monotonic: float
    """Arrival on ``time.monotonic()``, for measuring waits."""
    client_port: int
    """The client's port: the same port means a reused connection."""


class TargetServer:
    """A ThreadingHTTPServer on 127.0.0.1 with a free port, in its own thread.

    With ``tls``, a context holding the server's certificate, it speaks HTTPS.
    """

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self._lock = threading.Condition()
        self._scripts: dict[str, list[Reply]] = {}
        self._received: list[Received] = []
        self.stopping = threading.Event()

        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.target = self
        self.scheme = "https" if tls else "http"
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.01},
            name="test-target",
            daemon=True,
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        host = self._server.server_address[0]
        return f"{self.scheme}://{host}:{self.port}"

    def url(self, path: str = "/") -> str:
        return self.base_url + path

    def reply(self, path: str, *replies: Reply) -> None:
        """Answer requests to ``path`` with ``replies`` in turn, the last for good."""
        with self._lock:
            self._scripts[path] = list(replies)

    def received(self, path: str | None = None) -> list[Received]:
        """The requests so far, oldest first; only those to ``path`` if given."""
        with self._lock:
            return [r for r in self._received if path is None or _bare(r.path) == path]

    def wait_for(
        self, count: int, path: str | None = None, timeout: float = 10
    ) -> list[Received]:
        """Block until ``count`` requests (to ``path``) have arrived."""
        end = time.monotonic() + timeout
        with self._lock:
            while len(self.received(path)) < count:
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"{len(self.received(path))} requests to {path or 'any path'} "
                        f"arrived, not {count}"
                    )
                self._lock.wait(left)
            return self.received(path)

    def close(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _record(self, request: Received) -> Reply:
        """Keep ``request`` and pick the reply it gets."""
        with self._lock:
            self._received.append(request)
            self._lock.notify_all()
            script = self._scripts.get(_bare(request.path))
            if not script:
                return Reply()
            return script.pop(0) if len(script) > 1 else script[0]


@pytest.fixture
def target_server() -> Iterator[TargetServer]:
    """A running target, closed after the test."""
    server = TargetServer()
    try:
        yield server
    finally:
        server.close()


class _Server(ThreadingHTTPServer):
    # Many test clients connect at once; the default backlog of 5 would make
    # some of them wait for a SYN retransmission, a whole second.
    request_queue_size = 128
    daemon_threads = True
    target: TargetServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the tests look at ``received`` instead."""

    def _serve(self) -> None:
        target = self.server.target
        reply = target._record(self._received())
        try:
            self._answer(reply, target.stopping)
        except OSError:
            # The client went away (as it should from an endless body).
            self.close_connection = True

    def _received(self) -> Received:
        return Received(
            method=self.command,
            path=self.path,
            headers=CaseInsensitiveDict(self.headers.items()),
            body=self._read_body(),
            at=utcnow(),
            monotonic=time.monotonic(),
            client_port=self.client_address[1],
        )

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes:
        body = bytearray()
        while size := int(self.rfile.readline().split(b";")[0], 16):
            body += self.rfile.read(size)
            self.rfile.readline()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass
        return bytes(body)

    def _answer(self, reply: Reply, stopping: threading.Event) -> None:
        if reply.delay and stopping.wait(reply.delay):
            return

        self._send(self._head(reply), reply.trickle_head, stopping)
        if self.command == "HEAD":
            return
        if reply.endless:
            self.close_connection = True
            while not stopping.is_set():
                self._send(reply.body or b"x" * 65536, reply.trickle, stopping)
            return
        for _ in range(reply.repeat):
            self._send(reply.body, reply.trickle, stopping)

    def _head(self, reply: Reply) -> bytes:
        try:
            phrase = HTTPStatus(reply.status).phrase
        except ValueError:
            phrase = "Whatever"

        headers = dict(reply.headers)
        if not reply.endless:
            headers.setdefault("Content-Length", str(len(reply.body) * reply.repeat))
        else:
            headers["Connection"] = "close"
        lines = [f"HTTP/1.1 {reply.status} {phrase}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _send(self, data: bytes, trickle: float, stopping: threading.Event) -> None:
        if not trickle:
            self.wfile.write(data)
            return

        for index in range(len(data)):
            if stopping.is_set():
                raise ConnectionAbortedError("the target is closing")
            self.wfile.write(data[index : index + 1])
            self.wfile.flush()
            if index + 1 < len(data):
                stopping.wait(trickle)


def _bare(path: str) -> str:
    """The path without its query string."""
    return path.split("?", 1)[0]
