"""Where a target may point: by default, nowhere inside the service's network.

A scheduler that sends requests wherever its API is told is a relay into the
network it runs in: the cloud's metadata service at 169.254.169.254, a
database's admin port on 10.0.0.5, the service's own loopback. So a target's
address must be publicly routable unless the operator says otherwise
(``ALLOW_PRIVATE_TARGETS``, or exceptions in ``TARGET_ALLOWLIST``).

The rule applies twice. When a job is defined, a target written as a literal
address is checked in whatever spelling a resolver accepts (``127.1``,
``2130706433``, ``0x7f000001``, ``0177.0.0.1``, IPv4 inside IPv6). At every
attempt, ``shared.delivery`` resolves the host name, checks every address it
resolves to, and connects to a checked address, so a name that starts
resolving to 10.0.0.5 after the job was created is refused then.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    ip_address,
    ip_network,
)
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import requests
from urllib3.util import parse_url

if TYPE_CHECKING:
    from shared.settings import Settings

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network

_CARRIER_GRADE_NAT = ip_network("100.64.0.0/10")
_UNIQUE_LOCAL = ip_network("fc00::/7")
_NAT64 = ip_network("64:ff9b::/96")
_LOCAL_NAT64 = ip_network("64:ff9b:1::/48")
# IPv4-compatible IPv6 (deprecated, but a stack may still route it as IPv4).
_IPV4_COMPATIBLE = ip_network("::/96")

# One part of an address as inet_aton reads it: hex, octal or decimal.
_INET_ATON_PART = re.compile(r"0x[0-9a-f]*|0[0-7]*|[1-9][0-9]*", re.IGNORECASE)
_LABEL = r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_NAME = re.compile(rf"{_LABEL}(\.{_LABEL})*")
_MAX_NAME_LENGTH = 253
_DEFAULT_PORTS = {"http": 80, "https": 443}


class TargetRefused(Exception):
    """A target the rule does not allow; the message says why, with no secret."""


@dataclass(frozen=True)
class TargetRule:
    """Which addresses a target may point at. The default allows public ones only."""

    allow_private: bool = False
    allowed_hosts: frozenset[str] = frozenset()
    """Host names allowed whatever they resolve to, lower case, no final dot."""
    allowed_networks: tuple[Network, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> TargetRule:
        entries = [allowlist_entry(entry) for entry in settings.target_allowlist]
        return cls(
            allow_private=settings.allow_private_targets,
            allowed_hosts=frozenset(e for e in entries if isinstance(e, str)),
            allowed_networks=tuple(e for e in entries if not isinstance(e, str)),
        )

    def check_url(self, url: str) -> None:
        """Refuse a URL whose host is, literally, an address the rule forbids.

        Host names are left to the check at each attempt, except ``localhost``
        and its subdomains, which always mean this machine.
        """
        host = host_of(url)
        address = literal_address(host)
        if address is not None:
            self.check_address(host, address)
        elif _is_localhost(host) and not self._allows_name(host):
            raise TargetRefused(f"{host} is this machine (a loopback name)")

    def check_address(self, host: str, address: Address) -> None:
        """Refuse connecting to ``address`` for a target whose host is ``host``."""
        if self._allows_name(host) or self._allows_network(address):
            return

        kind = forbidden_kind(address)
        if kind is None:
            return
        if literal_address(host) is not None:
            raise TargetRefused(f"{host} is {kind}")
        raise TargetRefused(f"{host} resolves to {kind}")

    def _allows_name(self, host: str) -> bool:
        return self.allow_private or _normalised(host) in self.allowed_hosts

    def _allows_network(self, address: Address) -> bool:
        inner = embedded_ipv4(address)
        return any(
            candidate in network
            for candidate in (address, inner)
            if candidate is not None
            for network in self.allowed_networks
            if candidate.version == network.version
        )


def forbidden_kind(address: Address) -> str | None:
    """What makes ``address`` internal ("a loopback address"), or None if public."""
    inner = embedded_ipv4(address)
    if inner is not None:
        kind = forbidden_kind(inner)
        return kind and f"{kind} ({inner}) written as IPv6"
    if address.version == 6 and address in _LOCAL_NAT64:
        return "a local-use NAT64 address"
    return _kind(address)


def _kind(address: Address) -> str | None:
    if address.is_loopback:
        return "a loopback address"
    if address.is_unspecified:
        return "the unspecified address (this machine)"
    if address.is_link_local:
        return "a link-local address"
    if address in _CARRIER_GRADE_NAT:
        return "a carrier-grade NAT address"
    if address.version == 6 and address in _UNIQUE_LOCAL:
        return "a unique-local address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_private:
        return "a private address"
    if address.version == 6 and address.is_site_local:
        return "a site-local address"
    if address.is_reserved or not address.is_global:
        return "a reserved address"
    return None


def embedded_ipv4(address: Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, NAT64, 6to4), if any."""
    if address.version == 4:
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return IPv4Address(int(address) & 0xFFFF_FFFF)
    return address.sixtofour


def literal_address(host: str) -> Address | None:
    """The address ``host`` spells in any form a resolver accepts; None for a name.

    Besides the standard forms this reads what inet_aton reads, since that is
    what the system resolver does with a numeric host: ``127.1``,
    ``2130706433``, ``0x7f000001``, ``0177.0.0.1``.
    """
    text = host.strip("[]").removesuffix(".")
    try:
        return ip_address(text)
    except ValueError:
        return _inet_aton(text)


def _inet_aton(text: str) -> IPv4Address | None:
    parts = text.split(".")
    if len(parts) > 4 or not all(_INET_ATON_PART.fullmatch(p) for p in parts):
        return None

    *leading, last = (_number(part) for part in parts)
    if any(value > 255 for value in leading) or last >= 256 ** (5 - len(parts)):
        return None
    number = sum(value << (24 - 8 * index) for index, value in enumerate(leading))
    return IPv4Address(number + last)


def _number(part: str) -> int:
    if part[:2].lower() == "0x":
        return int(part[2:] or "0", 16)
    if part.startswith("0"):
        return int(part, 8)
    return int(part)


def host_of(url: str) -> str:
    """The host an HTTP request to ``url`` goes to, as the sender will read it.

    The URL goes through the same preparation as at delivery (IDNA, escaping),
    because another parser may see another host: ``http://127.0.0.1\\@x.com/``
    is x.com to ``urlsplit`` and 127.0.0.1 to the HTTP client.
    """
    return origin_of(url)[1]


def origin_of(url: str) -> tuple[str, str, int]:
    """Scheme, host and port a request to ``url`` goes to, as the sender reads them.

    The port is filled in when the URL leaves it out, so that
    ``http://x.com/`` and ``http://x.com:80/`` are one origin.
    """
    prepared = requests.PreparedRequest()
    prepared.prepare_url(url, None)
    parts = parse_url(prepared.url)
    scheme = (parts.scheme or "").lower()
    host = (parts.host or "").strip("[]").lower()
    port = parts.port if parts.port is not None else _DEFAULT_PORTS.get(scheme, 0)
    return scheme, host, port


def check_one_reading(url: str) -> None:
    """Raise ValueError unless every URL parser reads the same origin in ``url``.

    The sender is not the only reader of a target: code that checks it with
    ``urlsplit``, and whoever reads the job, may see another host or port in
    the same text, and a check made with one parser is no check of where the
    other sends. A backslash is where they differ most (the sender ends
    the host there, ``urlsplit`` does not), so it is refused anywhere; a
    backslash meant for the path is written ``%5C``.
    """
    if "\\" in url:
        raise ValueError("must not contain a backslash (write %5C in a path)")
    try:
        same = origin_of(_as_urlsplit_reads_it(url)) == origin_of(url)
    except ValueError:  # what urlsplit read, the sender cannot even parse
        same = False
    if not same:
        raise ValueError("names a host or port that URL parsers read differently")


def _as_urlsplit_reads_it(url: str) -> str:
    """The origin of ``url`` as ``urlsplit`` reads it, written as a URL again."""
    split = urlsplit(url)
    host = split.hostname or ""
    authority = f"[{host}]" if ":" in host else host
    if split.port is not None:
        authority += f":{split.port}"
    return urlunsplit((split.scheme, authority, "/", "", ""))


def check_host_name(host: str) -> None:
    """Raise ValueError for a host that no resolver could look up.

    ``host`` is as the sender reads it (lower case, IDNA applied). An address
    passes; a name needs what DNS allows: labels of 1 to 63 letters, digits,
    hyphens or underscores (no hyphen at either end), 253 characters in all.
    Otherwise every attempt would fail, and be retried, for a fault of the
    job's own.
    """
    if literal_address(host) is not None:
        return
    name = host.removesuffix(".")
    if len(name) > _MAX_NAME_LENGTH or not _HOST_NAME.fullmatch(name):
        raise ValueError(
            "must name a valid host: dot-separated labels of 1 to 63 letters, "
            "digits or hyphens, 253 characters at most"
        )


def allowlist_entry(entry: str) -> str | Network:
    """A ``TARGET_ALLOWLIST`` entry: a network (or address), or a host name."""
    text = entry.strip().lower()
    try:
        return ip_network(text, strict=False)
    except ValueError:
        pass

    name = _normalised(text)
    if not _HOST_NAME.fullmatch(name):
        raise ValueError(f"{entry!r} is neither a host name nor an IP network")
    return name


def _normalised(host: str) -> str:
    return host.lower().removesuffix(".")


def _is_localhost(host: str) -> bool:
    name = _normalised(host)
    return name == "localhost" or name.endswith(".localhost")
