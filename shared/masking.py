"""Header values that carry credentials, masked wherever a job is shown.

A job's headers often hold the key its target wants (``Authorization``,
``X-Api-Key``). The API answers them masked, so a key given once is not read
back by everyone who can list jobs, and nothing logs them. A client that
sends a job back as it read it (GET, change a field, PUT) sends the mask; the
stored value is kept then, rather than replaced by the mask.
"""

from shared.errors import InvalidFields

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
