"""One attempt against real local targets that misbehave in the known ways."""

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from shared.delivery import AttemptResult, OutgoingRequest, Sender
from shared.retry import RetryPolicy, decide
from shared.targets import TargetRule
from shared.times import utcnow
from tests import targets
from tests.targets import Reply, TargetServer

# The fixture, bound here so pytest finds it; an import of the name itself
# would make ruff report every test that takes it as a redefinition (F811).
target_server = targets.target_server

POLICY = RetryPolicy(max_attempts=4, backoff_seconds=2, jitter=0)
SECRET = "Bearer s3cr3t-token"

# The targets here listen on 127.0.0.1.
LOCAL = TargetRule(allow_private=True)


@pytest.fixture
def sender() -> Iterator[Sender]:
    with Sender(targets=LOCAL) as sender:
        yield sender


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port where nothing listens: bound, so no one else takes it meanwhile."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
def slow_tls_port() -> Iterator[int]:
    """A port whose server starts a TLS record, then sends a byte every 0.3 s."""
    stop = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)  # the ClientHello
            conn.sendall(b"\x16\x03\x03\x40\x00")  # a 16 KiB handshake record
            while not stop.wait(0.3):
                conn.sendall(b"\x02")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with listener:
        yield listener.getsockname()[1]
        stop.set()
        thread.join(timeout=2)


def post(
    url: str, *, body: bytes = b'{"message": "hi"}', timeout: float = 3
) -> OutgoingRequest:
    headers = {"Content-Type": "application/json", "Authorization": SECRET}
    return OutgoingRequest("POST", url, headers, body, timeout)


def outcome(result: AttemptResult, attempt: int = 1) -> str:
    return decide(result, attempt, POLICY, utcnow()).outcome


def test_200_succeeds_and_the_target_gets_the_payload(sender, target_server):
    target_server.reply("/hook", Reply(200, body=b'{"ok": true}'))

    result = sender.send(post(target_server.url("/hook")))

    assert result.status_code == 200
    assert result.excerpt == '{"ok": true}'
    assert (result.truncated, result.timed_out, result.error) == (False, False, None)
    assert 0 <= result.duration < 1
    assert outcome(result) == "succeeded"
    [received] = target_server.received("/hook")
    assert received.method == "POST"
    assert received.body == b'{"message": "hi"}'
    assert received.headers["Authorization"] == SECRET
    assert received.headers["Content-Type"] == "application/json"


def test_503_is_an_answer_to_retry(sender, target_server):
    target_server.reply("/hook", Reply(503, body=b"down for maintenance"))

    result = sender.send(post(target_server.url("/hook")))

    assert result.status_code == 503
    assert result.excerpt == "down for maintenance"
    assert result.error is None
    assert outcome(result) == "retry"


def test_429_with_retry_after_then_200(sender, target_server):
    limited = Reply(429, headers={"Retry-After": "5"})
    target_server.reply("/hook", limited, Reply(200))
    request = post(target_server.url("/hook"))

    first = sender.send(request)
    ended = utcnow()
    decision = decide(first, 1, POLICY, ended)
    second = sender.send(request)

    assert first.status_code == 429
    assert first.retry_after == "5"
    assert decision.retry_at == ended + timedelta(seconds=5)
    assert second.status_code == 200
    assert outcome(second, attempt=2) == "succeeded"


def test_retry_after_beyond_the_cap_fails_the_run(sender, target_server):
    target_server.reply("/hook", Reply(429, headers={"Retry-After": "86400"}))
    capped = RetryPolicy(max_attempts=4, max_backoff_seconds=300)

    result = sender.send(post(target_server.url("/hook")))
    decision = decide(result, 1, capped, utcnow())

    assert result.retry_after == "86400"
    assert decision.outcome == "failed"
    assert "asked to wait 86400 s" in decision.reason


@pytest.mark.parametrize("status", [400, 404, 410])
def test_4xx_fails_after_one_attempt(sender, target_server, status):
    target_server.reply("/hook", Reply(status, body=b"no such hook"))

    result = sender.send(post(target_server.url("/hook")))

    assert result.status_code == status
    assert outcome(result) == "failed"
    assert len(target_server.received()) == 1


def test_302_is_not_followed_and_keeps_the_location(sender, target_server):
    moved = Reply(302, headers={"Location": "/elsewhere"}, body=b"moved")
    target_server.reply("/hook", moved)

    result = sender.send(post(target_server.url("/hook")))

    assert result.status_code == 302
    assert result.location == "/elsewhere"
    assert result.error == "redirect to /elsewhere not followed"
    decision = decide(result, 1, POLICY, utcnow())
    assert decision.outcome == "failed"
    assert "/elsewhere" in decision.reason
    assert [r.path for r in target_server.received()] == ["/hook"]


def test_a_redirect_with_an_endless_body_is_not_read(sender, target_server):
    moved = Reply(307, headers={"Location": "/elsewhere"}, endless=True)
    target_server.reply("/hook", moved)

    result = sender.send(post(target_server.url("/hook")))

    assert result.status_code == 307
    assert result.truncated
    assert not result.timed_out
    assert result.duration < 1


def test_a_trickled_body_ends_at_the_deadline(sender, target_server):
    target_server.reply("/hook", Reply(200, body=b"abcdefghij", trickle=2))

    started = time.monotonic()
    result = sender.send(post(target_server.url("/hook"), timeout=3))
    elapsed = time.monotonic() - started

    assert 2.9 <= elapsed < 3.5
    assert result.timed_out
    assert result.error == "timed out after 3.0 s"
    assert result.status_code == 200
    assert result.excerpt == "ab"
    assert outcome(result) == "retry"


def test_trickled_headers_end_at_the_deadline(sender, target_server):
    target_server.reply("/hook", Reply(200, trickle_head=0.4))

    started = time.monotonic()
    result = sender.send(post(target_server.url("/hook"), timeout=1))
    elapsed = time.monotonic() - started

    assert 0.9 <= elapsed < 1.5
    assert result.timed_out
    assert result.status_code is None
    assert result.error == "timed out after 1.0 s"


def test_a_trickled_tls_handshake_ends_at_the_deadline(sender, slow_tls_port):
    started = time.monotonic()
    result = sender.send(post(f"https://127.0.0.1:{slow_tls_port}/", timeout=1))
    elapsed = time.monotonic() - started

    assert 0.9 <= elapsed < 1.5
    assert result.timed_out
    assert result.status_code is None


def test_a_silent_target_times_out(sender, target_server):
    target_server.reply("/hook", Reply(200, delay=5))

    result = sender.send(post(target_server.url("/hook"), timeout=0.5))

    assert result.timed_out
    assert result.status_code is None
    assert 0.45 <= result.duration < 1


def test_a_50_mb_body_is_cut_to_the_excerpt(sender, target_server):
    block = b"x" * 65536
    target_server.reply("/hook", Reply(200, body=block, repeat=800))

    result = sender.send(post(target_server.url("/hook")))

    assert result.status_code == 200
    assert result.truncated
    assert result.excerpt == "x" * 32768
    assert result.duration < 1
    assert outcome(result) == "succeeded"


def test_an_endless_body_is_cut_to_the_excerpt(sender, target_server):
    target_server.reply("/hook", Reply(200, endless=True))

    result = sender.send(post(target_server.url("/hook")))

    assert result.status_code == 200
    assert result.truncated
    assert len(result.excerpt) == 32768
    assert result.duration < 1
    assert outcome(result) == "succeeded"


def test_a_body_that_fills_the_excerpt_exactly_is_whole(target_server):
    target_server.reply("/hook", Reply(200, body=b"y" * 100))

    with Sender(max_excerpt_bytes=100, targets=LOCAL) as sender:
        result = sender.send(post(target_server.url("/hook")))

    assert result.excerpt == "y" * 100
    assert not result.truncated


def test_the_cut_never_splits_a_character(target_server):
    target_server.reply("/hook", Reply(200, body="é".encode() * 100))

    with Sender(max_excerpt_bytes=51, targets=LOCAL) as sender:
        result = sender.send(post(target_server.url("/hook")))

    assert result.excerpt == "é" * 25
    assert result.truncated


def test_bytes_that_are_not_utf8_become_valid_text_without_nul(sender, target_server):
    target_server.reply("/hook", Reply(200, body=b"ok \xff\xfe\x00 done\x00"))

    result = sender.send(post(target_server.url("/hook")))

    assert result.status_code == 200
    assert "\x00" not in result.excerpt
    assert result.excerpt.startswith("ok \ufffd")
    assert result.excerpt.endswith("done\ufffd")
    result.excerpt.encode("utf-8")
    assert outcome(result) == "succeeded"


def test_connection_refused_is_an_outcome(sender, closed_port):
    result = sender.send(post(f"http://127.0.0.1:{closed_port}/hook"))

    assert result.status_code is None
    assert result.error == "connection refused"
    assert not result.timed_out
    assert outcome(result) == "retry"


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("http://localhost../hook", "the request could not be encoded"),
        (f"http://{'a' * 64}.example/hook", "the request could not be encoded"),
        ("http://.example/hook", "the target URL is not valid"),
    ],
)
def test_a_request_that_cannot_be_made_fails_without_retry(sender, url, error):
    # A job stored before its target was checked as strictly as now would
    # otherwise fail the same way at every attempt.
    result = sender.send(post(url))

    assert result.error == error
    assert result.unsendable
    assert outcome(result) == "failed"


def test_a_network_error_is_not_taken_for_an_unsendable_request(sender, closed_port):
    result = sender.send(post(f"http://127.0.0.1:{closed_port}/hook"))

    assert not result.unsendable


def test_errors_never_quote_header_values(sender, target_server):
    headers = {"Authorization": SECRET + "\r\nX-Injected: 1"}
    request = OutgoingRequest("POST", target_server.url("/hook"), headers, None, 3)

    result = sender.send(request)

    assert result.status_code is None
    assert result.error == "a request header is not valid"
    assert target_server.received() == []


def test_a_connection_reused_after_a_timeout_still_works(sender, target_server):
    target_server.reply("/ok", Reply(200, body=b"fine"))
    target_server.reply("/slow", Reply(200, body=b"abcdef", trickle=0.4))

    before = sender.send(post(target_server.url("/ok")))
    slow = sender.send(post(target_server.url("/slow"), timeout=1))
    after = sender.send(post(target_server.url("/ok")))
    again = sender.send(post(target_server.url("/ok")))

    assert slow.timed_out
    assert (before.status_code, after.status_code, again.status_code) == (200,) * 3
    assert after.excerpt == "fine"
    ports = [r.client_port for r in target_server.received()]
    assert ports[1] == ports[0], "the first connection went back to the pool"
    assert ports[2] != ports[1], "the cut connection was not pooled again"
    assert ports[3] == ports[2]


def test_twenty_attempts_at_once_each_get_their_own_answer(target_server):
    for n in range(20):
        if n % 5 == 4:
            reply = Reply(200, body=b"slow", trickle=0.5)
        else:
            reply = Reply(200 if n % 2 else 503, body=f"answer {n}".encode())
        target_server.reply(f"/hook/{n}", reply)

    def attempt(n: int) -> AttemptResult:
        return sender.send(post(target_server.url(f"/hook/{n}"), timeout=1))

    with Sender(pool_size=20, targets=LOCAL) as sender, ThreadPoolExecutor(20) as pool:
        started = time.monotonic()
        results = list(pool.map(attempt, range(20)))
        elapsed = time.monotonic() - started

    assert elapsed < 2
    for n, result in enumerate(results):
        if n % 5 == 4:
            assert result.timed_out, n
        else:
            assert result.status_code == (200 if n % 2 else 503), n
            assert result.excerpt == f"answer {n}"
    assert len(target_server.received()) == 20


def test_a_closed_sender_refuses_to_send(target_server):
    sender = Sender(targets=LOCAL)
    sender.close()

    with pytest.raises(RuntimeError, match="closed"):
        sender.send(post(target_server.url("/hook")))


def test_server_helper_waits_for_requests(sender, target_server: TargetServer):
    sender.send(post(target_server.url("/hook?x=1")))

    [received] = target_server.wait_for(1, "/hook", timeout=1)

    assert received.path == "/hook?x=1"
    assert received.at.tzinfo is not None


def test_closing_the_sender_stops_its_watchdog(target_server):
    sender = Sender(targets=LOCAL)
    sender.send(post(target_server.url("/hook")))

    sender.close()

    names = [thread.name for thread in threading.enumerate()]
    assert "delivery-watchdog" not in names
