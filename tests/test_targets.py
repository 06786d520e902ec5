"""Where a target may point: literal addresses at create, resolved ones at attempts."""

import signal
import socket
import ssl
from collections.abc import Iterator
from ipaddress import ip_address, ip_network

import pytest
import requests.adapters
import trustme
from fastapi.testclient import TestClient

from shared.delivery import OutgoingRequest, Sender
from shared.runtime import build_runtime
from shared.settings import Settings
from shared.targets import TargetRule, forbidden_kind, literal_address
from shared.web.app import create_app
from tests.helpers import wait_for
from tests.targets import Reply, TargetServer
from tests.test_api import EXAMPLE, problems

# Every spelling of an internal address that a resolver accepts, and what it is.
REFUSED_AT_CREATE = [
    ("http://127.0.0.1/", "loopback"),
    ("http://127.1/", "loopback"),
    ("http://2130706433/", "loopback"),
    ("http://0x7f000001/", "loopback"),
    ("http://0x7f.1/", "loopback"),
    ("http://0177.0.0.1/", "loopback"),
    ("http://0177.1/", "loopback"),
    ("http://[::1]/", "loopback"),
    ("http://[0:0:0:0:0:0:0:1]/", "loopback"),
    ("http://localhost:8080/", "loopback name"),
    ("http://api.localhost/", "loopback name"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://0/", "unspecified"),
    ("http://[::]/", "unspecified"),
    ("http://10.0.0.5/", "private"),
    ("http://172.16.3.4/", "private"),
    ("http://192.168.1.1/", "private"),
    ("http://10.0.0.5./", "private"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://2852039166/", "link-local"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[fe80::1%25eth0]/", "link-local"),
    ("http://100.64.0.1/", "carrier-grade NAT"),
    ("http://[fd00::5]/", "unique-local"),
    ("http://[fc00::5]/", "unique-local"),
    ("http://[::ffff:127.0.0.1]/", "loopback address (127.0.0.1) written as IPv6"),
    ("http://[::ffff:169.254.169.254]/", "link-local address (169.254.169.254)"),
    ("http://[::ffff:a9fe:a9fe]/", "link-local address (169.254.169.254)"),
    ("http://[::127.0.0.1]/", "loopback address (127.0.0.1) written as IPv6"),
    ("http://[64:ff9b::10.0.0.5]/", "private address (10.0.0.5) written as IPv6"),
    ("http://[64:ff9b::a9fe:a9fe]/", "link-local address (169.254.169.254)"),
    ("http://[64:ff9b:1::1]/", "NAT64"),
    ("http://[2002:7f00:1::]/", "loopback address (127.0.0.1) written as IPv6"),
    ("http://224.0.0.1/", "multicast"),
    ("http://240.0.0.1/", "private"),
    ("https://user:pw@127.0.0.1:8443/x", "loopback"),
]

PUBLIC = [
    "https://example.com/hook",
    "http://93.184.215.14/",
    "http://1.1.1.1:8080/x",
    "http://[2606:4700:4700::1111]/",
    "http://[64:ff9b::808:808]/",
    "http://[2002:808:808::1]/",
    "http://100.128.0.1/",
]


@pytest.mark.parametrize(("host", "expected"), [
    ("127.0.0.1", "127.0.0.1"),
    ("127.1", "127.0.0.1"),
    ("127.0.1", "127.0.0.1"),
    ("2130706433", "127.0.0.1"),
    ("0x7f000001", "127.0.0.1"),
    ("0X7F.0.0.1", "127.0.0.1"),
    ("0177.0.0.01", "127.0.0.1"),
    ("0", "0.0.0.0"),
    ("10.0.0.5.", "10.0.0.5"),
    ("[::1]", "::1"),
    ("::ffff:10.1.2.3", "::ffff:a01:203"),
    ("example.com", None),
    ("1.2.3.4.5", None),
    ("256.1.1.1", None),
    ("4294967296", None),
    ("08.0.0.1", None),
    ("0x", "0.0.0.0"),
    ("1e3", None),
])  # fmt: skip
def test_literal_addresses_are_read_as_a_resolver_reads_them(host, expected):
    address = literal_address(host)
    assert (str(address) if address else None) == expected


@pytest.mark.parametrize("host", [
    "127.1", "127.0.1", "2130706433", "0x7f000001", "0X7F.0.0.1", "0x7f.1",
    "0177.0.0.1", "0177.1", "0177.0.0.01", "0", "2852039166", "0xa9.0376.43518",
    "08.0.0.1", "256.1.1.1", "4294967296", "1.2.3.4.5", "1e3", "0x1g",
])  # fmt: skip
def test_numeric_hosts_are_read_as_the_system_reads_them(host):
    try:
        system = ip_address(socket.inet_aton(host))
    except OSError:
        system = None

    assert literal_address(host) == system


def test_internal_targets_are_refused_at_create(make_client):
    client = make_client(allow_private_targets=False)

    for url, words in REFUSED_AT_CREATE:
        found = problems(client.post("/jobs", json=EXAMPLE | {"target": url}))
        assert words in found["target"], url
        assert "not allowed" in found["target"]


def test_replace_and_change_are_checked_as_create(make_client):
    client = make_client(allow_private_targets=False)
    job = client.post("/jobs", json=EXAMPLE).json()
    url = "http://[::ffff:169.254.169.254]/latest/meta-data/"

    replaced = client.put(f"/jobs/{job['id']}", json=EXAMPLE | {"target": url})
    changed = client.patch(f"/jobs/{job['id']}", json={"target": url})

    assert "link-local" in problems(replaced)["target"]
    assert "link-local" in problems(changed)["target"]
    assert client.get(f"/jobs/{job['id']}").json()["target"] == EXAMPLE["target"]


def test_public_targets_are_accepted(make_client):
    client = make_client(allow_private_targets=False)

    for url in PUBLIC:
        response = client.post("/jobs", json=EXAMPLE | {"target": url})
        assert response.status_code == 201, response.text


def test_the_allowlist_makes_exceptions_by_network_and_by_name(make_client):
    client = make_client(
        allow_private_targets=False,
        target_allowlist="10.20.0.0/16, hooks.localhost, 192.168.7.7",
    )

    def status(url: str) -> int:
        return client.post("/jobs", json=EXAMPLE | {"target": url}).status_code

    assert status("http://10.20.3.4/") == 201
    assert status("http://[::ffff:10.20.3.4]/") == 201
    assert status("http://hooks.localhost:9000/") == 201
    assert status("http://192.168.7.7/") == 201
    assert status("http://10.21.0.1/") == 422
    assert status("http://192.168.7.8/") == 422
    assert status("http://other.localhost/") == 422


def test_allow_private_targets_lifts_the_rule(make_client):
    client = make_client(allow_private_targets=True)

    response = client.post("/jobs", json=EXAMPLE | {"target": "http://127.1:9/"})

    assert response.status_code == 201, response.text


@pytest.mark.parametrize(("url", "words"), [
    ("http://127.0.0.1\\@example.com/", "backslash"),
    ("http://127.0.0.1:21999\\@127.0.0.1:21998/", "backslash"),
    ("https://example.com\\.evil.example/", "backslash"),
    ("https://example.com/a\\b", "backslash"),
    ("http://a]@example.com/", "read differently"),
    ("http://x:y[@example.com:8080/", "read differently"),
])  # fmt: skip
def test_targets_url_parsers_read_differently_are_refused(make_client, url, words):
    # The sender ends the host at a backslash where urlsplit does not, so a
    # check made with one would not be a check of where the other sends.
    client = make_client(allow_private_targets=True)

    found = problems(client.post("/jobs", json=EXAMPLE | {"target": url}))

    assert words in found["target"]


@pytest.mark.parametrize("url", [
    "http://localhost../",
    "http://hooks..example.com/",
    "http://ex%2e.com/",
    f"http://{'a' * 64}.example.com/",
    f"http://{'a.' * 127}a/",
    "http://-hooks.example.com/",
])  # fmt: skip
def test_host_names_no_resolver_could_look_up_are_refused(make_client, url):
    client = make_client(allow_private_targets=True)

    found = problems(client.post("/jobs", json=EXAMPLE | {"target": url}))

    assert "valid host" in found["target"]


def test_host_names_at_the_limits_of_dns_are_accepted(make_client):
    client = make_client(allow_private_targets=False)
    longest_label = f"https://{'a' * 63}.example.com/"
    longest_name = f"https://{'a.' * 125}com/"

    for url in (longest_label, longest_name, "https://hooks.example.com./"):
        response = client.post("/jobs", json=EXAMPLE | {"target": url})
        assert response.status_code == 201, response.text


def test_a_bad_allowlist_entry_is_a_settings_error():
    with pytest.raises(ValueError, match="target_allowlist"):
        Settings(_env_file=None, target_allowlist="10.0.0.0/8, not a host")


@pytest.mark.parametrize(("address", "words"), [
    ("127.0.0.53", "loopback"),
    ("169.254.169.254", "link-local"),
    ("100.127.255.255", "carrier-grade NAT"),
    ("192.0.2.1", "private"),
    ("198.18.0.1", "private"),
    ("255.255.255.255", "private"),
    ("fec0::1", "site-local"),
    ("2001:db8::1", "private"),
    ("ff02::1", "multicast"),
    ("::ffff:100.64.0.1", "carrier-grade NAT address (100.64.0.1) written as IPv6"),
    ("64:ff9b::7f00:1", "loopback address (127.0.0.1) written as IPv6"),
])  # fmt: skip
def test_each_internal_range_is_named(address, words):
    assert words in forbidden_kind(ip_address(address))


# At each attempt ---------------------------------------------------------------


class Names:
    """A resolver for tests: names map to addresses the test changes at will."""

    def __init__(self, **names: list[str]) -> None:
        self.names = {name.replace("_", "."): list(a) for name, a in names.items()}
        self.lookups: list[str] = []

    def __call__(self, host: str, port: int):
        self.lookups.append(host)
        if host not in self.names:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))
            for address in self.names[host]
        ]


# 127.0.0.1 is where the test targets listen; 127.0.0.2 stands for an internal
# address (nothing listens there, so a wrong connection fails harmlessly).
ONLY_LOCAL_TARGETS = TargetRule(allowed_networks=(ip_network("127.0.0.1/32"),))


@pytest.fixture
def target() -> Iterator[TargetServer]:
    server = TargetServer()
    yield server
    server.close()


def post(url: str, **headers: str) -> OutgoingRequest:
    return OutgoingRequest("POST", url, headers, b"{}", timeout=5)


def test_a_name_is_resolved_once_and_the_checked_address_connected(target):
    names = Names(hooks_example_test=["127.0.0.1"])
    with Sender(targets=ONLY_LOCAL_TARGETS, resolver=names) as sender:
        result = sender.send(post(f"http://hooks.example.test:{target.port}/in"))

    [request] = target.received("/in")
    assert result.status_code == 200, result.error
    assert request.headers["Host"] == f"hooks.example.test:{target.port}"
    assert names.lookups == ["hooks.example.test"]


def test_a_name_that_rebinds_between_attempts_is_refused_then(target):
    # The target closes each connection, so every attempt connects anew.
    target.reply("/in", Reply(200, headers={"Connection": "close"}))
    names = Names(hooks_example_test=["127.0.0.1"])
    url = f"http://hooks.example.test:{target.port}/in"

    with Sender(targets=ONLY_LOCAL_TARGETS, resolver=names) as sender:
        first = sender.send(post(url))
        names.names["hooks.example.test"] = ["127.0.0.2"]
        second = sender.send(post(url))

    assert first.status_code == 200
    assert second.refused and second.status_code is None
    assert second.error == (
        "target refused: hooks.example.test resolves to a loopback address"
    )
    assert len(target.received("/in")) == 1
    assert names.lookups == ["hooks.example.test"] * 2


def test_one_internal_address_among_public_ones_refuses_the_name(target):
    names = Names(mixed_example_test=["93.184.215.14", "127.0.0.2"])
    with Sender(resolver=names) as sender:
        result = sender.send(post(f"http://mixed.example.test:{target.port}/"))

    assert result.refused
    assert "mixed.example.test resolves to a loopback address" in result.error
    assert target.received() == []


def test_a_literal_internal_target_is_refused_at_the_attempt_too(target):
    # A job created while ALLOW_PRIVATE_TARGETS was on, sent after it went off.
    with Sender() as sender:
        result = sender.send(post(target.url("/in")))

    assert result.refused
    assert result.error == "target refused: 127.0.0.1 is a loopback address"
    assert target.received() == []


def test_an_unknown_name_is_a_resolution_error_not_a_refusal():
    with Sender(resolver=Names()) as sender:
        result = sender.send(post("http://nowhere.example.test/"))

    assert not result.refused
    assert result.error == "could not resolve the host name"


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


def tls_target(authority: trustme.CA, name: str) -> TargetServer:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert(name).configure_cert(context)
    return TargetServer(tls=context)


@pytest.fixture
def trusted(authority, tmp_path, monkeypatch) -> None:
    """The sender trusts the test authority instead of the public ones."""
    bundle = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    monkeypatch.setattr(requests.adapters, "DEFAULT_CA_BUNDLE_PATH", str(bundle))


def test_tls_checks_the_certificate_against_the_name_not_the_address(
    authority, trusted
):
    right = tls_target(authority, "hooks.example.test")
    wrong = tls_target(authority, "other.example.test")
    names = Names(hooks_example_test=["127.0.0.1"])
    try:
        with Sender(targets=ONLY_LOCAL_TARGETS, resolver=names) as sender:
            accepted = sender.send(post(f"https://hooks.example.test:{right.port}/"))
            refused = sender.send(post(f"https://hooks.example.test:{wrong.port}/"))
    finally:
        right.close()
        wrong.close()

    assert accepted.status_code == 200, accepted.error
    assert right.received()[0].headers["Host"].startswith("hooks.example.test")
    assert refused.status_code is None
    assert refused.error.startswith("TLS certificate not accepted")
    assert "hostname" in refused.error.lower()


@pytest.fixture
def resolving_client(backend) -> Iterator[tuple[TestClient, Names]]:
    """A client of a service whose deliveries resolve names with ``Names``."""
    settings = backend.settings(allow_private_targets=False)
    names = Names()
    runtime = build_runtime(settings)
    runtime.sender.close()
    runtime.sender = Sender(targets=TargetRule.from_settings(settings), resolver=names)
    consumer = runtime.queue.consumer(2)
    runtime.start()
    consumer.start()
    # The consumer takes over SIGINT; give it back to pytest.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with TestClient(create_app(runtime)) as client:
            yield client, names
    finally:
        consumer.stop(graceful=True)
        runtime.close()


def test_a_run_whose_name_turns_internal_fails_without_retry(resolving_client, target):
    client, names = resolving_client
    url = f"http://hooks.example.test:{target.port}/in"
    job = client.post("/jobs", json=EXAMPLE | {"target": url}).json()

    names.names["hooks.example.test"] = ["127.0.0.2"]
    run = client.post(f"/jobs/{job['id']}/trigger").json()
    done = wait_for(lambda: _finished(client.get(f"/runs/{run['id']}").json()))

    assert done["status"] == "failed"
    assert done["attempt_count"] == 1
    assert done["last_error"] == (
        "target refused: hooks.example.test resolves to a loopback address"
    )
    assert target.received() == []


def _finished(run: dict) -> dict | None:
    return run if run["status"] in ("succeeded", "failed") else None
