"""Approvers as records: a name, where to reach them, and the secret that signs their links.

The secret is 32 random bytes sealed with the project's payload keyring (AES-GCM, the
approver's name as associated data), so a copy of the database alone cannot forge a link.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from cryptography.exceptions import InvalidTag
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from aios.errors import ApproverInvalid, ApproverNotFound
from aios.settings import Settings
from aios.temporal.codec import NONCE_BYTES, Keyring, load_keyring

SECRET_BYTES = 32
UNSEALED = ""  # `sealed_by` of a secret stored as is (payload encryption off)
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,199}$")
QUIET = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")

UPSERT = """
INSERT INTO aios_approvers (name, email, webhook, quiet_hours, secret, sealed_by)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (name) DO UPDATE SET email = EXCLUDED.email, webhook = EXCLUDED.webhook,
    quiet_hours = EXCLUDED.quiet_hours
RETURNING (xmax = 0)
"""
SELECT = "SELECT name, email, webhook, quiet_hours, secret, sealed_by FROM aios_approvers"


@dataclass(frozen=True)
class Approver:
    name: str
    email: str | None
    webhook: str | None
    quiet_hours: str | None
    secret: bytes

    def quiet_until(self, moment: datetime) -> datetime | None:
        """When this approver's quiet hours end, if `moment` falls in them; else None."""
        if not self.quiet_hours:
            return None
        start, end = parse_quiet_hours(self.quiet_hours)
        now = moment.astimezone(UTC)
        clock = now.time()
        inside = start <= clock < end if start <= end else clock >= start or clock < end
        if not inside:
            return None
        until = datetime.combine(now.date(), end, tzinfo=UTC)
        return until if until > now else until + timedelta(days=1)

    def public(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "email": self.email,
            "webhook": self.webhook,
            "quiet_hours": self.quiet_hours,
        }


def parse_quiet_hours(text: str) -> tuple[time, time]:
    match = QUIET.match(text)
    if match is None:
        raise ApproverInvalid(f"quiet hours must look like 22:00-07:00 (UTC), not {text!r}")
    h1, m1, h2, m2 = (int(group) for group in match.groups())
    return time(h1, m1), time(h2, m2)


class ApproverBook:
    """The approvers in Postgres; secrets sealed with `keyring` (None: stored as is)."""

    def __init__(self, keyring: Keyring | None) -> None:
        self._keyring = keyring

    @classmethod
    def for_settings(cls, settings: Settings) -> ApproverBook:
        return cls(load_keyring(settings) if settings.payload_encryption else None)

    async def add(
        self,
        conn: AsyncConnection[Any],
        name: str,
        *,
        email: str | None,
        webhook: str | None,
        quiet_hours: str | None = None,
    ) -> bool:
        """Add an approver (True) or change where to reach one (False: the secret stays)."""
        check_approver(name, email, webhook, quiet_hours)
        sealed, sealed_by = self._seal(name, os.urandom(SECRET_BYTES))
        cursor = await conn.execute(UPSERT, (name, email, webhook, quiet_hours, sealed, sealed_by))
        row = await cursor.fetchone()
        return bool(row and row[0])

    async def remove(self, conn: AsyncConnection[Any], name: str) -> None:
        cursor = await conn.execute("DELETE FROM aios_approvers WHERE name = %s", (name,))
        if cursor.rowcount == 0:
            raise ApproverNotFound(f"no approver named {name!r}; see `aios approvers list`")

    async def remove_if_present(self, pool: AsyncConnectionPool, name: str) -> None:
        async with pool.connection() as conn:
            await conn.execute("DELETE FROM aios_approvers WHERE name = %s", (name,))

    async def all(self, conn: AsyncConnection[Any]) -> list[Approver]:
        cursor = await conn.execute(SELECT + " ORDER BY name")
        return [self._approver(row) for row in await cursor.fetchall()]

    async def find(self, conn: AsyncConnection[Any], names: list[str]) -> dict[str, Approver]:
        cursor = await conn.execute(SELECT + " WHERE name = ANY(%s)", (names,))
        return {approver.name: approver for approver in map(self._approver, await cursor.fetchall())}

    async def get(self, conn: AsyncConnection[Any], name: str) -> Approver | None:
        return (await self.find(conn, [name])).get(name)

    def _approver(self, row: Any) -> Approver:
        name, email, webhook, quiet_hours, sealed, sealed_by = row
        return Approver(name, email, webhook, quiet_hours, self._open(name, bytes(sealed), sealed_by))

    def _seal(self, name: str, secret: bytes) -> tuple[bytes, str]:
        if self._keyring is None:
            return secret, UNSEALED
        key_id = self._keyring.current
        cipher = self._keyring.cipher(key_id)
        assert cipher is not None
        nonce = os.urandom(NONCE_BYTES)
        return nonce + cipher.encrypt(nonce, secret, _aad(name, key_id)), key_id

    def _open(self, name: str, sealed: bytes, sealed_by: str) -> bytes:
        if sealed_by == UNSEALED:
            return sealed
        cipher = self._keyring.cipher(sealed_by) if self._keyring else None
        if cipher is None:
            raise ApproverInvalid(
                f"approver {name!r}'s secret was sealed with payload key {sealed_by!r}, "
                "which this process does not have: keep every old key in the keyring"
            )
        try:
            return cipher.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], _aad(name, sealed_by))
        except InvalidTag:
            raise ApproverInvalid(
                f"approver {name!r}'s secret does not open with payload key {sealed_by!r}"
            ) from None


def _aad(name: str, key_id: str) -> bytes:
    return f"aios-approver-secret-v1:{key_id}:{name}".encode()


def check_approver(name: str, email: str | None, webhook: str | None, quiet_hours: str | None) -> None:
    if not NAME.match(name):
        raise ApproverInvalid(f"approver name {name!r} must be letters, digits, . _ @ - (at most 200)")
    if email is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+", email):
        raise ApproverInvalid(f"--email {email!r} is not an address like alice@example.com")
    if webhook is not None and not re.match(r"^https?://[^\s/]+", webhook):
        raise ApproverInvalid(f"--webhook {webhook!r} must be an http(s) URL")
    if email is None and webhook is None:
        raise ApproverInvalid("an approver needs --email or --webhook (or both) to be reached")
    if quiet_hours is not None:
        parse_quiet_hours(quiet_hours)
