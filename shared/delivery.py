"""One HTTP attempt of a run, bounded in time and in size.

A :class:`Sender` sends an :class:`OutgoingRequest` and always answers with an
:class:`AttemptResult`: a target that is down, slow or hostile is an outcome
to record on the run, never an exception. Redirects are not followed, and at
most ``max_excerpt_bytes`` of the response body are read.

How the total deadline is kept
------------------------------
A socket timeout bounds each read, not the exchange: a target that sends one
byte every 2 s satisfies every read and could hold the worker for as long as
it liked. So each attempt gets a deadline, and one watchdog thread per sender
keeps a heap of them. When a deadline passes, the watchdog shuts the
attempt's socket down (``shutdown(SHUT_RDWR)``); the worker's blocked
``recv`` or ``send`` returns at once, the exchange fails, and the attempt is
reported as timed out because its deadline fired.

To reach the socket of a pooled connection, the sender mounts an adapter
whose urllib3 pools make connections of the classes below. When such a
connection opens a socket, or is about to send a request over one it already
has, it registers with the deadline of the current attempt, found in a
thread-local (requests runs the whole exchange in the calling thread). The
deadline keeps a duplicate of the socket's descriptor: shutting that down
ends the connection even in the middle of a TLS handshake, and it can never
hit an unrelated socket that reused a closed descriptor number. When a pool
takes a connection back, the connection leaves its deadline, and a
connection the deadline cut is discarded instead of pooled.

Where the connection goes
-------------------------
The same connection classes resolve the host name themselves, check every
address it resolves to against the target rule (``shared.targets``), and
connect to a checked address. There is no second lookup for a rebinding name
to answer differently, and the request still names the host: the Host header,
the TLS server name and the certificate check all use it. A refused attempt
sends nothing and fails without retry. A pooled connection is reused only for
its own host, to the address that was checked when it opened.

Requests go through the adapter rather than ``Session.send``, because even
with ``allow_redirects=False`` the session reads the whole body of a 3xx
answer to prepare the next hop, and a redirect with an endless body would
hold the worker until the deadline.

Limits
------
* Redirects are never followed, so no hop other than the target is reached.
* Resolving the host name (``getaddrinfo``) cannot be interrupted, so a slow
  DNS server can make an attempt overrun its deadline by the resolver's own
  timeout.
* Connecting is bounded by the attempt's timeout per address: a name with
  several addresses that all drop packets may take that long for each. An
  attempt whose deadline passed meanwhile is cut as soon as its socket exists.
* The response body is decoded as UTF-8 whatever charset the target declares.
* A finished attempt's deadline stays in the watchdog's heap until it would
  have expired, so the heap holds the attempts of the last ``timeout``
  seconds.
"""

from __future__ import annotations

import codecs
import contextlib
import heapq
import http.client
import itertools
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from ipaddress import ip_address
from types import TracebackType
from typing import Any, TypeVar

import requests
import requests.exceptions
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.util.connection import allowed_gai_family
from urllib3.util.timeout import _DEFAULT_TIMEOUT

from shared.targets import TargetRefused, TargetRule

USER_AGENT = "pingpay-scheduler"

_E = TypeVar("_E", bound=BaseException)

AddressInfo = tuple[socket.AddressFamily, socket.SocketKind, int, str, tuple[Any, ...]]
Resolver = Callable[[str, int], list[AddressInfo]]
"""Host name and port to ``getaddrinfo`` entries: the address lookup delivery uses."""

_READ_SIZE = 8192

# Header values are stored on the attempt; a target must not be able to make
# a row as large as it likes.
_MAX_HEADER_CHARS = 2048
_MAX_LOCATION_IN_ERROR = 200

# What a failed exchange may raise. requests' own exceptions are OSErrors;
# UnicodeError covers header values that cannot be encoded as Latin-1.
_EXCHANGE_ERRORS = (
    OSError,
    http.client.HTTPException,
    urllib3.exceptions.HTTPError,
    UnicodeError,
)

# Failures to make the request at all, before anything is sent: the URL or
# a header cannot be encoded. Every attempt of the job would fail alike.
_UNSENDABLE = (
    UnicodeError,
    requests.exceptions.InvalidURL,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.InvalidHeader,
    urllib3.exceptions.LocationParseError,
)

_TIMEOUTS = (
    TimeoutError,
    urllib3.exceptions.TimeoutError,
    requests.exceptions.Timeout,
)

# Root causes first: the wrappers around them say less.
_DESCRIPTIONS: tuple[tuple[type[BaseException], str], ...] = (
    (socket.gaierror, "could not resolve the host name"),
    (urllib3.exceptions.NameResolutionError, "could not resolve the host name"),
    (ConnectionRefusedError, "connection refused"),
    (
        http.client.RemoteDisconnected,
        "the target closed the connection without answering",
    ),
    (ConnectionResetError, "connection reset by the target"),
    (ssl.SSLError, "TLS error"),
    (urllib3.exceptions.SSLError, "TLS error"),
    (requests.exceptions.InvalidHeader, "a request header is not valid"),
    (requests.exceptions.InvalidURL, "the target URL is not valid"),
    (requests.exceptions.MissingSchema, "the target URL is not valid"),
    (requests.exceptions.InvalidSchema, "the target URL is not valid"),
    (urllib3.exceptions.LocationParseError, "the target URL is not valid"),
    (UnicodeError, "the request could not be encoded"),
    (urllib3.exceptions.DecodeError, "the response body could not be decoded"),
    (http.client.IncompleteRead, "the response broke off before its end"),
    (urllib3.exceptions.ProtocolError, "the connection broke off"),
    (requests.exceptions.ChunkedEncodingError, "the response broke off"),
)


@dataclass(frozen=True)
class OutgoingRequest:
    """One attempt's HTTP request, as the target will receive it."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None
    timeout: float
    """One deadline in seconds for the whole exchange, connect to last byte."""


@dataclass(frozen=True)
class AttemptResult:
    """What one attempt got back; every field is safe to store as text."""

    status_code: int | None
    """None when no response arrived."""
    duration: float
    """Seconds the attempt took, on the monotonic clock."""
    excerpt: str
    """The start of the response body as text, without NUL characters."""
    truncated: bool
    """True when the body went on beyond the excerpt (and was not read)."""
    error: str | None
    """What went wrong, in a few words; never a request header's value."""
    timed_out: bool
    retry_after: str | None
    """The raw ``Retry-After`` header, if the target sent one."""
    location: str | None
    """The raw ``Location`` header of a 3xx answer."""
    refused: bool = False
    """True when the target rule forbade the address: nothing was sent."""
    unsendable: bool = False
    """True when the request could not be made from the job (its URL or a
    header cannot be encoded): nothing was sent, and nothing would be later."""


def system_resolver(host: str, port: int) -> list[AddressInfo]:
    """The host's addresses from the system resolver, as a connection would get them."""
    return socket.getaddrinfo(host, port, allowed_gai_family(), socket.SOCK_STREAM)


class Sender:
    """Sends attempts over one pooled requests.Session; thread-safe, one per process.

    Worker threads share the pool, so connections to a target are reused
    across runs. Call :meth:`close` when done (or use it as a context manager).
    """

    def __init__(
        self,
        max_excerpt_bytes: int = 32768,
        pool_size: int = 10,
        targets: TargetRule | None = None,
        resolver: Resolver = system_resolver,
    ) -> None:
        self._max_excerpt_bytes = max_excerpt_bytes
        self._session = _new_session(pool_size)
        self._watchdog = _Watchdog()
        self._guard = _Guard(targets or TargetRule(), resolver)

    def send(self, request: OutgoingRequest) -> AttemptResult:
        """Make one attempt; network and HTTP problems come back as its result."""
        started = time.monotonic()
        deadline = self._watchdog.start(request.timeout)
        exchange = _Exchange()

        _current.deadline, _current.guard = deadline, self._guard
        try:
            self._exchange(request, exchange)
        finally:
            _current.deadline = _current.guard = None
            # The deadline must let go of the connection before the response
            # hands it back to the pool, or the watchdog could cut it there.
            expired = deadline.finish()
            exchange.close()

        return _result(request, exchange, expired, time.monotonic() - started)

    def close(self) -> None:
        """Stop the watchdog and close every pooled connection.

        Attempts still in flight then keep only their socket timeouts, so
        close the sender after its workers have stopped.
        """
        self._watchdog.stop()
        self._session.close()

    def __enter__(self) -> Sender:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _exchange(self, request: OutgoingRequest, exchange: _Exchange) -> None:
        try:
            exchange.response = self._open(request)
            exchange.truncated = _read_excerpt(
                exchange.response.raw, self._max_excerpt_bytes, exchange.body
            )
        except TargetRefused as refusal:
            exchange.refusal = str(refusal)
        except _EXCHANGE_ERRORS as exc:
            exchange.failure = exc

    def _open(self, request: OutgoingRequest) -> requests.Response:
        prepared = self._session.prepare_request(
            requests.Request(
                request.method, request.url, headers=request.headers, data=request.body
            )
        )
        adapter = self._session.get_adapter(prepared.url or "")

        # The socket timeouts are only a backstop; the watchdog keeps the
        # deadline. No proxies: the target is reached directly.
        return adapter.send(
            prepared,
            stream=True,
            timeout=(request.timeout, request.timeout),
            verify=True,
            proxies={},
        )


@dataclass
class _Exchange:
    """What one attempt has got so far, kept even when it fails halfway."""

    response: requests.Response | None = None
    body: bytearray = field(default_factory=bytearray)
    truncated: bool = False
    failure: BaseException | None = None
    refusal: str | None = None
    """Why the target rule forbade the address, when it did."""

    def close(self) -> None:
        # Closing without reading the rest drops the connection instead of
        # draining a body that may never end.
        if self.response is not None:
            self.response.close()


def _new_session(pool_size: int) -> requests.Session:
    session = requests.Session()

    # Targets are arbitrary URLs: no proxy settings or .netrc credentials
    # from the worker's environment may apply to them.
    session.trust_env = False
    session.headers["User-Agent"] = USER_AGENT

    adapter = _WatchedAdapter(pool_connections=pool_size, pool_maxsize=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _read_excerpt(raw: Any, limit: int, into: bytearray) -> bool:
    """Read at most ``limit`` bytes of the body into ``into``; True if more."""
    # One byte beyond the limit tells a body that fills it exactly from one
    # that goes on; nothing after that is read. read1 returns what has
    # arrived, so a body cut off by the deadline still shows its start.
    while len(into) <= limit:
        wanted = min(_READ_SIZE, limit + 1 - len(into))
        chunk = raw.read1(wanted, decode_content=True)
        if not chunk:
            return False
        into += chunk

    del into[limit:]
    return True


def _result(
    request: OutgoingRequest, exchange: _Exchange, expired: bool, duration: float
) -> AttemptResult:
    response = exchange.response
    status = response.status_code if response is not None else None
    timed_out = expired or _is_timeout(exchange.failure)
    whole = not (exchange.truncated or timed_out or exchange.failure)
    location = _header(response, "Location") if _is_redirect(status) else None

    return AttemptResult(
        status_code=status,
        duration=duration,
        excerpt=_to_text(bytes(exchange.body), whole),
        truncated=exchange.truncated,
        error=_error(request, exchange, timed_out, location),
        timed_out=timed_out,
        retry_after=_header(response, "Retry-After"),
        location=location,
        refused=exchange.refusal is not None,
        unsendable=response is None and _is_unsendable(exchange.failure),
    )


def _error(
    request: OutgoingRequest,
    exchange: _Exchange,
    timed_out: bool,
    location: str | None,
) -> str | None:
    if exchange.refusal is not None:
        return f"target refused: {exchange.refusal}"
    if timed_out:
        return f"timed out after {_seconds(request.timeout)} s"
    if exchange.failure is not None:
        return _describe(exchange.failure)

    response = exchange.response
    if response is not None and _is_redirect(response.status_code):
        if location is None:
            return f"redirect (HTTP {response.status_code}) without a Location"
        return f"redirect to {location[:_MAX_LOCATION_IN_ERROR]} not followed"
    return None


def _describe(failure: BaseException) -> str:
    """A few words on why an exchange failed.

    Exception messages are not used as they are: they can quote the URL or a
    request header, and either may carry a secret.
    """
    certificate = _first(failure, ssl.SSLCertVerificationError)
    if certificate is not None:
        return f"TLS certificate not accepted: {certificate.verify_message}"

    for kind, text in _DESCRIPTIONS:
        if _first(failure, kind) is not None:
            return text

    system = next((e for e in _causes(failure) if _has_strerror(e)), None)
    if system is not None:
        return f"network error: {system.strerror}"  # type: ignore[attr-defined]
    return f"request failed ({type(failure).__name__})"


def _has_strerror(error: BaseException) -> bool:
    return isinstance(error, OSError) and bool(error.strerror)


def _is_unsendable(failure: BaseException | None) -> bool:
    return failure is not None and any(
        isinstance(error, _UNSENDABLE) for error in _causes(failure)
    )


def _is_timeout(failure: BaseException | None) -> bool:
    if failure is None:
        return False

    # urllib3 derives NewConnectionError from its timeout error for old
    # callers' sake; a refused connection is no timeout.
    return any(
        isinstance(error, _TIMEOUTS)
        and not isinstance(error, urllib3.exceptions.NewConnectionError)
        for error in _causes(failure)
    )


def _first(failure: BaseException, kind: type[_E]) -> _E | None:
    return next((e for e in _causes(failure) if isinstance(e, kind)), None)


def _causes(failure: BaseException) -> Iterator[BaseException]:
    """The failure and everything it wraps, outermost first.

    requests and urllib3 wrap the root cause in their own exceptions, as the
    cause, as an argument, or (MaxRetryError) as ``reason``.
    """
    seen: set[int] = set()
    pending = [failure]
    while pending:
        error = pending.pop(0)
        if id(error) in seen:
            continue

        seen.add(id(error))
        yield error
        inner = (error.__cause__, error.__context__, getattr(error, "reason", None))
        pending.extend(e for e in (*inner, *error.args) if isinstance(e, BaseException))


def _to_text(data: bytes, whole: bool) -> str:
    """Body bytes as text a PostgreSQL ``text`` column accepts."""
    # On a cut-off body, a character split by the cut is left out rather
    # than shown as a replacement character.
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    text = decoder.decode(data, final=whole)
    return text.replace("\x00", "\ufffd")


def _header(response: requests.Response | None, name: str) -> str | None:
    if response is None:
        return None

    value = response.headers.get(name)
    if value is None:
        return None
    return value[:_MAX_HEADER_CHARS].replace("\x00", "\ufffd")


def _is_redirect(status: int | None) -> bool:
    return status is not None and 300 <= status <= 399


def _seconds(value: float) -> str:
    """Seconds as in "timed out after 5.0 s" or "0.25 s"."""
    text = f"{value:.3f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


# The deadline machinery -------------------------------------------------------

_current = threading.local()
"""``deadline`` and ``guard`` of the attempt this thread is making, if any."""


def _current_deadline() -> _Deadline | None:
    return getattr(_current, "deadline", None)


def _current_guard() -> _Guard:
    # Outside an attempt (never, through a Sender), the default rule applies.
    return getattr(_current, "guard", None) or _DEFAULT_GUARD


class _Deadline:
    """The end of one attempt, and a handle on the socket to cut when it comes.

    The attempt's own thread registers and releases connections; the
    watchdog thread calls :meth:`expire`. One lock keeps them apart.
    """

    def __init__(self, expires_at: float) -> None:
        self.expires_at = expires_at
        self._lock = threading.Lock()
        self._expired = False
        self._finished = False
        self._connection: _WatchedHTTPConnection | None = None
        self._handle: socket.socket | None = None

    def watch(self, connection: _WatchedHTTPConnection, sock: socket.socket) -> None:
        """Cut ``sock`` at the deadline; it now carries ``connection``."""
        handle = socket.fromfd(sock.fileno(), sock.family, sock.type)
        with self._lock:
            stale, self._handle = self._handle, handle
            self._connection = connection
            connection.attempt_deadline = self
            if self._expired:
                _shut_down(handle)
        _close_quietly(stale)

    def release(self, connection: _WatchedHTTPConnection) -> bool:
        """Let go of ``connection``; True if it was cut and must not be reused."""
        with self._lock:
            connection.attempt_deadline = None
            if connection is not self._connection:
                return False

            handle, self._handle, self._connection = self._handle, None, None
            cut = self._expired
        _close_quietly(handle)
        return cut

    def expire(self) -> None:
        """Cut the attempt's connection, unless the attempt already ended."""
        with self._lock:
            if self._finished:
                return
            self._expired = True
            if self._handle is not None:
                _shut_down(self._handle)

    def finish(self) -> bool:
        """End the attempt; True if the deadline passed before it ended."""
        # The connection stays attached, so that the pool still learns
        # whether it was cut when the response hands it back.
        with self._lock:
            self._finished = True
            handle, self._handle = self._handle, None
            expired = self._expired
        _close_quietly(handle)
        return expired


class _Watchdog:
    """One thread that expires deadlines on time, started on first use."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, _Deadline]] = []
        self._order = itertools.count()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def start(self, seconds: float) -> _Deadline:
        """A deadline ``seconds`` from now, already being watched."""
        deadline = _Deadline(time.monotonic() + seconds)
        with self._changed:
            if self._stopped:
                raise RuntimeError("the sender is closed")

            entry = (deadline.expires_at, next(self._order), deadline)
            heapq.heappush(self._heap, entry)
            self._ensure_thread()
            # The thread sleeps until the earliest deadline; it needs waking
            # only when this one comes first.
            if self._heap[0] is entry:
                self._changed.notify()
        return deadline

    def stop(self) -> None:
        with self._changed:
            self._stopped = True
            self._changed.notify()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="delivery-watchdog", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._changed:
                due = self._wait_for_due()
            if due is None:
                return
            for deadline in due:
                deadline.expire()

    def _wait_for_due(self) -> list[_Deadline] | None:
        """Block until some deadlines have passed and pop them; None on stop."""
        while not self._stopped:
            now = time.monotonic()
            if self._heap and self._heap[0][0] <= now:
                return self._pop_until(now)

            wait = self._heap[0][0] - now if self._heap else None
            self._changed.wait(wait)
        return None

    def _pop_until(self, now: float) -> list[_Deadline]:
        due = []
        while self._heap and self._heap[0][0] <= now:
            due.append(heapq.heappop(self._heap)[2])
        return due


def _shut_down(handle: socket.socket) -> None:
    # The peer may have closed the connection already; that is fine too.
    with contextlib.suppress(OSError):
        handle.shutdown(socket.SHUT_RDWR)


def _close_quietly(handle: socket.socket | None) -> None:
    if handle is not None:
        handle.close()


# The address guard -----------------------------------------------------------


@dataclass(frozen=True)
class _Guard:
    """Resolves a target's host and lets through only addresses the rule allows."""

    rule: TargetRule
    resolver: Resolver

    def addresses(self, host: str, port: int) -> list[AddressInfo]:
        """Every address of ``host``, each checked; TargetRefused if one is not.

        One forbidden address refuses the whole name: a name that also
        resolves inside the network is not one to trust with a choice.
        """
        found = self.resolver(host, port)
        for *_, sockaddr in found:
            self.rule.check_address(host, ip_address(sockaddr[0]))
        return found


_DEFAULT_GUARD = _Guard(TargetRule(), system_resolver)


def _connect_first(
    addresses: list[AddressInfo],
    timeout: float | None | object,
    source_address: tuple[str, int] | None,
    options: list[tuple[int, int, int | bytes]] | None,
) -> socket.socket:
    """A socket connected to the first of ``addresses`` that answers."""
    error: OSError = OSError("the host name has no address")
    for family, kind, proto, _, sockaddr in addresses:
        sock = socket.socket(family, kind, proto)
        try:
            for option in options or ():
                sock.setsockopt(*option)
            if timeout is not _DEFAULT_TIMEOUT:
                sock.settimeout(timeout)  # type: ignore[arg-type]
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error


class _WatchedHTTPConnection(HTTPConnection):
    """A connection to a checked address that the attempt's deadline can cut."""

    attempt_deadline: _Deadline | None = None

    def _new_conn(self) -> socket.socket:
        sock = self._connect_checked()
        deadline = _current_deadline()
        if deadline is None:
            return sock

        try:
            deadline.watch(self, sock)
        except OSError:
            # Out of descriptors for the duplicate: fail the attempt rather
            # than run it without a deadline, and leak nothing.
            sock.close()
            raise
        return sock

    def _connect_checked(self) -> socket.socket:
        """Resolve, check every address, connect to one: no second lookup."""
        # The lookup uses the host as written, final dot and all (it keeps the
        # resolver from trying search domains); errors read as urllib3's own.
        host = self._dns_host.strip("[]")
        try:
            addresses = _current_guard().addresses(host, self.port)
        except socket.gaierror as exc:
            raise urllib3.exceptions.NameResolutionError(self.host, self, exc) from exc

        try:
            return _connect_first(
                addresses, self.timeout, self.source_address, self.socket_options
            )
        except TimeoutError as exc:
            raise urllib3.exceptions.ConnectTimeoutError(
                self, f"connecting to {self.host} timed out"
            ) from exc
        except OSError as exc:
            raise urllib3.exceptions.NewConnectionError(
                self, f"failed to connect: {exc}"
            ) from exc

    def request(self, *args: Any, **kwargs: Any) -> None:
        # A pooled connection already has its socket: join this attempt now.
        deadline = _current_deadline()
        reused = self.sock is not None and self.attempt_deadline is not deadline
        if deadline is not None and reused:
            deadline.watch(self, self.sock)
        super().request(*args, **kwargs)


class _WatchedHTTPSConnection(_WatchedHTTPConnection, HTTPSConnection):
    """The TLS form of :class:`_WatchedHTTPConnection`."""


def _unless_cut(connection: Any) -> Any:
    """The connection to pool again, or None when its deadline cut it."""
    deadline = getattr(connection, "attempt_deadline", None)
    if deadline is None or not deadline.release(connection):
        return connection

    connection.close()
    return None


class _WatchedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection

    def _put_conn(self, conn: Any) -> None:
        super()._put_conn(_unless_cut(conn))


class _WatchedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection

    def _put_conn(self, conn: Any) -> None:
        super()._put_conn(_unless_cut(conn))


class _WatchedAdapter(HTTPAdapter):
    """An adapter whose pools make deadline-aware connections."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _WatchedHTTPConnectionPool,
            "https": _WatchedHTTPSConnectionPool,
        }
