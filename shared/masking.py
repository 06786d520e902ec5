"""Header values that carry credentials, masked wherever a job is shown.

A job's headers often hold the key its target wants (``Authorization``,
``X-Api-Key``). The API answers them masked, so a key given once is not read
back by everyone who can list jobs, and nothing logs them. A client that
sends a job back as it read it (GET, change a field, PUT) sends the mask; the
stored value is kept then, rather than replaced by the mask.
"""

from shared.errors import InvalidFields
from shared.targets import origin_of

MASK = "********"

#: A header whose lower-case name contains one of these is a credential.
_SENSITIVE_PARTS = (
    "auth",
    "cookie",
    "key",
    "token",
    "secret",
    "password",
    "passwd",
    "pass",
    "sig",
    "session",
    "signature",
    "credential",
)


def is_sensitive(name: str) -> bool:
    """True for a header whose value is likely a credential."""
    lowered = name.lower()
    return any(part in lowered for part in _SENSITIVE_PARTS)


def masked(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` with the value of every sensitive header replaced by MASK."""
    return {
        name: MASK if is_sensitive(name) else value for name, value in headers.items()
    }


def unmasked(sent: dict[str, str], stored: dict[str, str]) -> dict[str, str]:
    """``sent`` with each masked value replaced by the stored value it stands for.

    A mask for a header the job does not have stands for nothing: that is a
    422 rather than a job that would send the mask to its target.
    """
    current = {name.lower(): value for name, value in stored.items()}
    headers = {}
    for name, value in sent.items():
        if value == MASK and is_sensitive(name):
            if name.lower() not in current:
                raise InvalidFields(
                    [("headers", f"header {name!r} is masked; send its value", name)]
                )
            value = current[name.lower()]
        headers[name] = value
    return headers


def refuse_moving_credentials(
    stored_target: str,
    stored_headers: dict[str, str],
    new_target: str,
    sent_headers: dict[str, str] | None,
) -> None:
    """Refuse to carry stored credentials to a target on another origin.

    Masking keeps a credential from being read back through the API; if a
    change could move the target elsewhere and keep the stored credential,
    whoever may change jobs could have it sent to a server of theirs. So
    when the scheme, host or port changes, each credential that would be
    kept (not sent, or sent as the mask) must be sent again instead.
    ``sent_headers`` is None when the change does not touch the headers.

    Origins are read as the sender reads them: a check made with another
    parser would be no check of where the credentials go.
    """
    if origin_of(new_target) == origin_of(stored_target):
        return
    sent = {name.lower(): value for name, value in (sent_headers or {}).items()}
    kept = [
        name
        for name in stored_headers
        if is_sensitive(name)
        and (sent_headers is None or sent.get(name.lower()) == MASK)
    ]
    if kept:
        names = ", ".join(kept)
        message = f"the target moves to another host: send the value of {names} again"
        raise InvalidFields([("headers", message, None)])
