"""Signed one-tap decision links: a token bound to run, step, verdict and approver.

A token is `<payload>.<signature>`, both base64url: the payload is compact JSON naming the
run, the step, the verdict, the approver, the expiry (Unix seconds) and a random nonce; the
signature is HMAC-SHA256 over the payload under the approver's own secret
(aios/approvals/approvers.py). So a link cannot be altered (another step, the other verdict,
another approver) without its signature failing, and one approver's secret signs nothing
for another. Single use is the `aios_used_links` table: the nonce is its key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from psycopg import AsyncConnection

from aios.errors import LinkRefused

Verdict = Literal["approve", "reject"]
DOMAIN = b"aios-link-v1."
NONCE_BYTES = 12
MAX_TOKEN_CHARS = 2000

# Why a link is refused: what the page says and the audit row's outcome names.
FORGED = "forged"
EXPIRED = "expired"
USED = "used"
WRONG_STEP = "wrong_step"
MALFORMED = "malformed"

MARK_USED = """
INSERT INTO aios_used_links (token_id, run_id, step, verdict, approver) VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (token_id) DO NOTHING
"""
WAS_USED = "SELECT used_at FROM aios_used_links WHERE token_id = %s"


@dataclass(frozen=True)
class LinkClaim:
    """What a token says; believed only after `verify`."""

    run_id: str
    step: int
    verdict: Verdict
    approver: str
    expires: datetime
    token_id: str

    def payload(self) -> dict[str, Any]:
        return {
            "r": self.run_id,
            "s": self.step,
            "v": self.verdict,
            "a": self.approver,
            "e": int(self.expires.timestamp()),
            "n": self.token_id,
        }


def make_token(
    secret: bytes, *, run_id: str, step: int, verdict: Verdict, approver: str, expires: datetime
) -> str:
    nonce = base64.urlsafe_b64encode(os.urandom(NONCE_BYTES)).decode().rstrip("=")
    claim = LinkClaim(run_id, step, verdict, approver, expires, nonce)
    body = _b64(json.dumps(claim.payload(), separators=(",", ":"), sort_keys=True).encode())
    return f"{body}.{_b64(_sign(secret, body))}"


def read_claim(token: str) -> LinkClaim:
    """The token's claim, unverified (raises LinkRefused `malformed` when it is not a token)."""
    if len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
        raise LinkRefused(MALFORMED, "this is not an aios decision link (it may have been cut short)")
    body, _ = token.split(".")
    try:
        raw = json.loads(_unb64(body))
        verdict = raw["v"]
        if verdict not in ("approve", "reject"):
            raise ValueError(verdict)
        return LinkClaim(
            run_id=str(raw["r"]),
            step=int(raw["s"]),
            verdict=verdict,
            approver=str(raw["a"]),
            expires=datetime.fromtimestamp(int(raw["e"]), UTC),
            token_id=str(raw["n"]),
        )
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError) as error:
        raise LinkRefused(
            MALFORMED, "this is not an aios decision link (it may have been cut short)"
        ) from error


def verify(token: str, secret: bytes | None, *, now: datetime) -> LinkClaim:
    """The claim of a token signed with `secret` and not expired; else LinkRefused."""
    claim = read_claim(token)
    body, signature = token.split(".")
    try:
        given = _unb64(signature)
    except (ValueError, binascii.Error):
        given = b""
    if secret is None or not hmac.compare_digest(given, _sign(secret, body)):
        raise LinkRefused(
            FORGED, "this link's signature is not valid: it was not made by aios for this approver"
        )
    if now >= claim.expires:
        raise LinkRefused(
            EXPIRED, f"this link expired at {claim.expires.isoformat(timespec='minutes')}; use `aios inbox`"
        )
    return claim


async def mark_used(conn: AsyncConnection[Any], claim: LinkClaim) -> None:
    """Record the link's one use; a second use raises LinkRefused `used`."""
    cursor = await conn.execute(
        MARK_USED, (claim.token_id, claim.run_id, claim.step, claim.verdict, claim.approver)
    )
    if cursor.rowcount == 0:
        raise await _used(conn, claim)


async def ensure_unused(conn: AsyncConnection[Any], claim: LinkClaim) -> None:
    row = await (await conn.execute(WAS_USED, (claim.token_id,))).fetchone()
    if row is not None:
        raise await _used(conn, claim)


async def _used(conn: AsyncConnection[Any], claim: LinkClaim) -> LinkRefused:
    row = await (await conn.execute(WAS_USED, (claim.token_id,))).fetchone()
    when = row[0].isoformat(timespec="seconds") if row else "before"
    return LinkRefused(USED, f"this link was already used ({when}); a link decides once")


def _sign(secret: bytes, body: str) -> bytes:
    return hmac.new(secret, DOMAIN + body.encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
