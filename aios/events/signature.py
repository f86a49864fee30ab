"""The signature of an inbound event, Stripe-like, so a forged or replayed request is refused.

The sender adds the header

    Aios-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>

with the secret both sides hold (`AIOS_EVENTS_SECRET`). The receiver recomputes the HMAC over
the raw body, compares in constant time, and refuses a timestamp further than the tolerance
(5 minutes) from its clock: a captured request cannot be replayed later, and one replayed
within the window carries an event id already kept, which starts nothing. Several `v1=`
values may be given (a secret being rotated); one match is enough.

In a shell:

    t=$(date +%s)
    sig=$(printf '%s.%s' "$t" "$body" | openssl dgst -sha256 -hmac "$SECRET" -r | cut -d' ' -f1)
    curl -H "Aios-Signature: t=$t,v1=$sig" -d "$body" http://127.0.0.1:8235/events
"""

from __future__ import annotations

import hashlib
import hmac

from aios.errors import AiosError

HEADER = "aios-signature"


class SignatureRefused(AiosError):
    """An inbound event's signature is missing, malformed, wrong or too old."""


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The header value for `body` sent at `timestamp`."""
    return f"t={timestamp},v1={_digest(secret, body, timestamp)}"


def verify(secret: str, body: bytes, header: str | None, *, now: float, tolerance: int) -> None:
    """Return if `header` signs `body` within the tolerance; SignatureRefused says why not."""
    if not header:
        raise SignatureRefused("no Aios-Signature header: sign the body (see aios/events/signature.py)")
    timestamp, candidates = _parse(header)
    if abs(now - timestamp) > tolerance:
        raise SignatureRefused(
            f"the signature's timestamp is {abs(now - timestamp):.0f}s from this server's clock, "
            f"over the tolerance of {tolerance}s: sign with the current time"
        )
    expected = _digest(secret, body, timestamp)
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise SignatureRefused(
            "the signature does not match the body: check the secret and sign the raw body"
        )


def _parse(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        raise SignatureRefused("malformed Aios-Signature header: expected t=<unix seconds>,v1=<hex hmac>")
    return timestamp, candidates


def _digest(secret: str, body: bytes, timestamp: int) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
