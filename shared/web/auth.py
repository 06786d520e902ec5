"""API keys: who may use the API.

Clients send ``Authorization: Bearer <key>``. ``API_KEYS`` holds several keys
at once so that they can be rotated (add the new key, move the clients over,
drop the old one), each as the key itself or as ``sha256:<hex digest>``, so
that configuration need not hold the keys. A presented key is hashed once and
its digest compared in constant time with every configured digest: neither
the answer's timing nor its text tells which key came close.

The check is an ASGI middleware around the whole application, so every path
needs a key, including routes and mounted apps added later, except the paths
in ``OPEN_PATHS``. A browser cannot add a header to a plain link, so under
the dashboard's path the key may come instead from the cookie its sign-in
form sets; nowhere else, so that no other site can act on the API with it.
"""

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable, Iterable
from ipaddress import ip_address
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.responses import JSONResponse, RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.settings import Settings

log = logging.getLogger("pingpay.auth")

#: The dashboard's pages, where a browser sends the key as a cookie.
DASHBOARD_PATH = "/ui"
DASHBOARD_COOKIE = "pingpay_api_key"

#: Paths anyone may reach: the health check says nothing secret, and the
#: dashboard's sign-in form is where a browser gives its key.
OPEN_PATHS = frozenset({"/health", "/ui/login", "/ui/logout"})

HASH_PREFIX = "sha256:"


class AuthNotConfigured(Exception):
    """The API would serve without keys, and nobody said that is wanted."""

    def __init__(self) -> None:
        super().__init__(
            "no API_KEYS are set, so anyone who reaches the API could use it: "
            "set API_KEYS (`pingpay-scheduler api-key` makes one), or set "
            "ALLOW_NO_AUTH=true to serve without authentication"
        )


class KeyRing:
    """The configured keys, kept as SHA-256 digests only."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._digests = tuple(_digest_of(key) for key in keys)

    def __bool__(self) -> bool:
        return bool(self._digests)

    @classmethod
    def from_settings(cls, settings: Settings) -> "KeyRing":
        return cls(key.get_secret_value() for key in settings.api_keys)

    def accepts(self, presented: str) -> bool:
        """True if ``presented`` is one of the keys; the same work either way."""
        # Header values arrive decoded as Latin-1; this gives back their bytes.
        digest = hashlib.sha256(presented.encode("latin-1")).digest()
        matched = False
        for known in self._digests:
            matched |= hmac.compare_digest(digest, known)
        return matched


def require_keys_or_opt_out(settings: Settings, local_only: bool = False) -> None:
    """Refuse to serve an API without keys, unless that is wanted or harmless.

    ``local_only`` says the API listens on a loopback address, where only this
    machine's own users reach it.
    """
    if settings.api_keys or local_only:
        return
    if not settings.allow_no_auth:
        raise AuthNotConfigured()
    log.warning("ALLOW_NO_AUTH is set: anyone who reaches the API can use it")


def new_key() -> str:
    """A fresh random key: 256 bits, URL-safe."""
    return secrets.token_urlsafe(32)


def hashed_key(key: str) -> str:
    """The form of ``key`` to put in API_KEYS instead of the key itself."""
    return HASH_PREFIX + hashlib.sha256(key.encode()).hexdigest()


def _digest_of(entry: str) -> bytes:
    if entry.startswith(HASH_PREFIX):
        return bytes.fromhex(entry.removeprefix(HASH_PREFIX))
    return hashlib.sha256(entry.encode()).digest()


class ApiKeyMiddleware:
    """Answers 401 without a key and 403 with a wrong one, before any route runs."""

    def __init__(
        self, app: ASGIApp, keys: KeyRing, open_paths: frozenset[str] = OPEN_PATHS
    ) -> None:
        self.app = app
        self.keys = keys
        self.open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" or _path(scope) in self.open_paths:
            await self.app(scope, receive, send)
            return

        presented = _presented_key(scope)
        if presented is not None and self.keys.accepts(presented):
            await self.app(scope, receive, send)
            return
        if presented is None:
            log.info("refused %s: no API key", _request_line(scope))
            answer = _refuse(401, "an API key is required")
        else:
            log.warning("refused %s: wrong API key", _request_line(scope))
            answer = _refuse(403, "the API key is not valid")
        if _dashboard_page(scope):
            answer = RedirectResponse(f"{DASHBOARD_PATH}/login", status_code=303)
        await answer(scope, receive, send)


def _dashboard_page(scope: Scope) -> bool:
    """A browser asking for a dashboard page, which the sign-in page serves
    better than a JSON refusal."""
    accept = Headers(scope=scope).get("accept", "")
    path = _path(scope)
    on_dashboard = path == DASHBOARD_PATH or path.startswith(DASHBOARD_PATH + "/")
    return on_dashboard and scope.get("method") == "GET" and "text/html" in accept


def _presented_key(scope: Scope) -> str | None:
    """The key of the Authorization header, or on the dashboard its cookie."""
    headers = Headers(scope=scope)
    key = _bearer(headers.get("authorization"))
    path = _path(scope)
    on_dashboard = path == DASHBOARD_PATH or path.startswith(DASHBOARD_PATH + "/")
    if key is None and on_dashboard:
        key = cookie_parser(headers.get("cookie", "")).get(DASHBOARD_COOKIE) or None
    return key


def _bearer(value: str | None) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header, if there is one."""
    scheme, _, key = (value or "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        return None
    return key


def _refuse(status: int, detail: str) -> JSONResponse:
    return JSONResponse(
        {"detail": detail}, status_code=status, headers={"WWW-Authenticate": "Bearer"}
    )


def _path(scope: Scope) -> str:
    """The path within the application, whatever prefix it is served under."""
    path, root = scope["path"], scope.get("root_path", "")
    return path.removeprefix(root) if root and path.startswith(root) else path


def _request_line(scope: Scope) -> str:
    """Method, path and client, the path quoted and cut short: anyone can
    send a path, and a raw one could forge log lines."""
    client = scope.get("client") or ("unknown", 0)
    path = repr(_path(scope)[:200])
    return f"{scope.get('method', scope['type'])} {path} from {client[0]}"


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class LoopbackOnly:
    """Guards a service without keys that listens on this machine only.

    Listening on loopback keeps other machines out, but not web pages in
    this machine's browser: a page whose name was made to resolve to
    127.0.0.1 sends its own Host, and any page can post a form. So requests
    for another host name, and changes sent from another origin, are
    refused.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not _from_this_machine(scope):
            log.warning("refused %s: not from this machine", _request_line(scope))
            await _refuse(403, "this service answers this machine only")(
                scope, receive, send
            )
            return
        await self.app(scope, receive, send)


def _from_this_machine(scope: Scope) -> bool:
    host = _host_name(Headers(scope=scope).get("host", ""))
    return _is_loopback(host) and _origin_allowed(scope, _is_loopback)


def sent_by_another_site(scope: Scope) -> bool:
    """True for a change posted by a page of another host than the service's.

    The dashboard's sign-in needs this: it takes no key, so a page elsewhere
    could otherwise post its own key and sign the browser in as that key.
    The service's host is the request's Host; a proxy in front must pass the
    Host the browser sent.
    """
    own = _host_name(Headers(scope=scope).get("host", ""))
    return not _origin_allowed(scope, lambda host: bool(host) and host == own)


def _is_loopback(host: str) -> bool:
    """True for ``localhost`` and every loopback address (127.0.0.0/8, ::1).

    Whichever of them the service listens on, only this machine reaches it
    there; a page whose name was made to resolve to it sends that name.
    """
    if host == "localhost":
        return True
    try:
        return ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _origin_allowed(scope: Scope, allowed: Callable[[str], bool]) -> bool:
    """False for a change sent by a page whose host is not ``allowed``.

    Browsers send Origin with every cross-origin POST; a request without
    one, or one that changes nothing, was not sent by another site's page.
    """
    origin = Headers(scope=scope).get("origin")
    if origin is None or scope.get("method") in _SAFE_METHODS:
        return True
    return allowed(_host_name(urlsplit(origin).netloc))


def _host_name(host: str) -> str:
    """``host`` without its port, in lower case: ``[::1]:3000`` is ``[::1]``."""
    host = host.lower()
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if ":" in host else host
