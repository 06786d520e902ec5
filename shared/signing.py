"""Request signatures: HMAC-SHA256 over a timestamp and the exact body.

Each attempt carries ``X-PingPay-Signature: t=<unix seconds>,v1=<hex>`` where
the hex is HMAC-SHA256, keyed with the signing secret, of
``<t>.`` followed by the body's bytes. With a second (next) secret set, the
header holds one ``v1=`` per secret, so a target can switch to the new
secret before the service stops signing with the old one, and no request
fails verification during a rotation.
"""

import hashlib
import hmac

HEADER = "X-PingPay-Signature"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``<timestamp>.<body>`` under ``secret``."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secrets: list[str], timestamp: int, body: bytes) -> str:
    """The header value signing ``body`` at ``timestamp`` with each secret."""
    parts = [f"t={timestamp}"]
    parts += [f"v1={signature(secret, timestamp, body)}" for secret in secrets]
    return ",".join(parts)


def verify(
    header: str, body: bytes, secret: str, now: int, tolerance: int = 300
) -> bool:
    """What a target does: check one of the header's signatures and its age.

    The tolerance refuses a captured request replayed later.
    """
    fields = [part.split("=", 1) for part in header.split(",") if "=" in part]
    timestamps = [value for key, value in fields if key == "t"]
    if len(timestamps) != 1 or not timestamps[0].isdigit():
        return False
    timestamp = int(timestamps[0])
    if abs(now - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, body)
    return any(
        hmac.compare_digest(expected, value) for key, value in fields if key == "v1"
    )
