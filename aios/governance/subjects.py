"""Per-subject keys: what is recorded about a subject is sealed with a key `forget` destroys.

An agent run serves a subject: its task's `subject`, else its `customer` (the field `forget`
and recall already go by). What the run records about it outside Temporal (audit detail and
rationale, effect responses and errors, webhook events) is sealed with AES-256-GCM under the
key of its (agent, subject), created on first use in `aios_subject_keys` (migration 0010).
`aios memory forget --subject X` deletes X's keys: every value sealed with them stays where
it is, as ciphertext nobody can open, and readers show FORGOTTEN in its place. Nothing is
rewritten, so the audit chain, which covers the ciphertext, still verifies.

Why random keys kept in Postgres rather than keys derived from the project key: a derived key
cannot be destroyed without destroying the project key (and every other subject with it).
Each key is stored wrapped by the project's payload keyring (aios/temporal/codec.py), so a copy of the
database without the key file opens nothing; the wrapping key's id is kept beside it, so a
rotated keyring still unwraps. With payload encryption off, keys are stored unwrapped: the
only copy still goes with `forget`.

No process-wide cache of keys: a worker cannot learn that another process forgot a subject,
and a cached key would let it keep reading (and re-recording into Temporal) what was
forgotten. Instead a writer gets its key in the statement that creates it if missing, one
round trip per transaction, and a reader fetches every key a batch of rows needs at once
(`Opener`), one round trip per read however many rows.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from psycopg import AsyncConnection

from aios.errors import AiosError
from aios.settings import Settings
from aios.temporal.codec import KEY_BYTES, NONCE_BYTES, Keyring, load_keyring

FORGOTTEN = "[forgotten]"
SEALED_FIELD = "aios_sealed"  # a sealed JSON value: {"aios_sealed": "v1", "key": id, "data": b64}
SEALED_VERSION = "v1"
TEXT_PREFIX = "aios-sealed:v1:"  # a sealed text: aios-sealed:v1:<key id>:<b64>
UNWRAPPED = ""  # `wrapped_by` of a key stored as is (payload encryption off)

# The subject a run serves, as `forget` and recall find it.
RUN_SUBJECT = "COALESCE(NULLIF(task->>'subject', ''), NULLIF(task->>'customer', ''))"
# Get or create the key of (agent, subject) for one statement's source of (agent, subject):
# a conflicting key already there is read by the second branch (the statement's snapshot
# has it; a key committed by a concurrent writer during the statement is found on a retry).
GET_OR_CREATE = """
WITH wanted AS ({source}),
created AS (
    INSERT INTO aios_subject_keys (key_id, agent, subject, wrapped, wrapped_by)
    SELECT %(key_id)s, agent, subject, %(wrapped)s, %(wrapped_by)s FROM wanted WHERE subject IS NOT NULL
    ON CONFLICT (agent, subject) DO NOTHING
    RETURNING key_id, wrapped, wrapped_by
)
SELECT key_id, wrapped, wrapped_by FROM created
UNION ALL
SELECT k.key_id, k.wrapped, k.wrapped_by FROM aios_subject_keys AS k JOIN wanted AS w USING (agent, subject)
UNION ALL
SELECT NULL, NULL, NULL WHERE NOT EXISTS (SELECT FROM wanted WHERE subject IS NOT NULL)
"""
BY_NAME = "SELECT %(agent)s::text AS agent, %(subject)s::text AS subject"
BY_RUN = f"SELECT agent, {RUN_SUBJECT} AS subject FROM aios_runs WHERE run_id = %(run_id)s"
BY_EFFECT = f"""
SELECT r.agent, {RUN_SUBJECT.replace("task", "r.task")} AS subject
FROM aios_effects AS e JOIN aios_runs AS r ON r.run_id = e.run_id WHERE e.effect_key = %(effect_key)s
"""
KEYS = "SELECT key_id, wrapped, wrapped_by FROM aios_subject_keys WHERE key_id = ANY(%s::text[])"
FORGET = """
DELETE FROM aios_subject_keys WHERE subject = %s AND (%s::text IS NULL OR agent = %s) RETURNING key_id
"""


def run_subject(task: Mapping[str, Any]) -> str:
    """The subject a run's task names ('' for none): its `subject`, else its `customer`."""
    subject = task.get("subject") or task.get("customer")
    return str(subject) if subject else ""


class SubjectKeyUnavailable(AiosError):
    """A subject key could not be unwrapped: the project key that wrapped it is missing."""


@dataclass(frozen=True)
class SubjectKey:
    """One subject's key, unwrapped: seals values for it."""

    key_id: str
    cipher: AESGCM

    def seal(self, value: Any) -> dict[str, Any]:
        """A JSON value sealed: what goes where the value would have gone."""
        return {SEALED_FIELD: SEALED_VERSION, "key": self.key_id, "data": self._encrypt(json.dumps(value))}

    def seal_text(self, text: str) -> str:
        return f"{TEXT_PREFIX}{self.key_id}:{self._encrypt(text)}" if text else text

    def _encrypt(self, text: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self.cipher.encrypt(nonce, text.encode(), _associated_data(self.key_id))
        return base64.b64encode(nonce + sealed).decode()


def _associated_data(key_id: str) -> bytes:
    # Binds the key id into the tag: a value relabelled with another subject's key fails.
    return b"aios-subject-v1:" + key_id.encode()


# -- recognising sealed values ------------------------------------------------------------------


def sealed_key_id(value: Any) -> str | None:
    """The key id a sealed value (JSON or text) names; None when it is not sealed."""
    if isinstance(value, Mapping) and value.get(SEALED_FIELD) == SEALED_VERSION:
        key_id = value.get("key")
        return key_id if isinstance(key_id, str) else None
    if isinstance(value, str) and value.startswith(TEXT_PREFIX):
        key_id, sep, _ = value[len(TEXT_PREFIX) :].partition(":")
        return key_id if sep else None
    return None


def key_ids(values: Iterable[Any]) -> set[str]:
    return {key_id for value in values if (key_id := sealed_key_id(value)) is not None}


# -- the vault ----------------------------------------------------------------------------------


class SubjectVault:
    """Subject keys in Postgres, wrapped by the project keyring (None: stored unwrapped)."""

    def __init__(self, keyring: Keyring | None) -> None:
        self._keyring = keyring

    @classmethod
    def for_settings(cls, settings: Settings) -> SubjectVault:
        return cls(load_keyring(settings) if settings.payload_encryption else None)

    # -- writers --------------------------------------------------------------------------------

    async def key_for_run(self, conn: AsyncConnection[Any], run_id: str) -> SubjectKey | None:
        """The key of the subject this run serves (None: the run has no subject, or no mirror)."""
        return await self._get_or_create(conn, BY_RUN, {"run_id": run_id})

    async def key_for_effect(self, conn: AsyncConnection[Any], effect_key: str) -> SubjectKey | None:
        """The key of the subject served by the run that asked for this effect."""
        return await self._get_or_create(conn, BY_EFFECT, {"effect_key": effect_key})

    async def key_for(self, conn: AsyncConnection[Any], agent: str, subject: str) -> SubjectKey | None:
        if not subject:
            return None
        return await self._get_or_create(conn, BY_NAME, {"agent": agent, "subject": subject})

    async def _get_or_create(
        self, conn: AsyncConnection[Any], source: str, params: dict[str, Any]
    ) -> SubjectKey | None:
        fresh = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
        wrapped, wrapped_by = self._wrap(fresh)
        query = GET_OR_CREATE.format(source=source)
        values = {**params, "key_id": f"s-{uuid.uuid4().hex}", "wrapped": wrapped, "wrapped_by": wrapped_by}
        for _ in range(2):  # the second try sees a key a concurrent writer committed meanwhile
            cursor = await conn.execute(query, values)
            row = await cursor.fetchone()
            if row is None:
                continue  # the key was created concurrently, after this statement's snapshot
            if row[0] is None:
                return None  # no subject (or no run to tell it): nothing to seal with
            return SubjectKey(row[0], AESGCM(self._unwrap(row[0], bytes(row[1]), row[2])))
        return None

    # -- readers --------------------------------------------------------------------------------

    async def opener(self, conn: AsyncConnection[Any], values: Iterable[Any]) -> Opener:
        """What opens these values: their keys, fetched in one round trip (none if none sealed)."""
        wanted = key_ids(values)
        if not wanted:
            return Opener({})
        cursor = await conn.execute(KEYS, (sorted(wanted),))
        ciphers = {
            key_id: AESGCM(self._unwrap(key_id, bytes(wrapped), wrapped_by))
            for key_id, wrapped, wrapped_by in await cursor.fetchall()
        }
        return Opener(ciphers)

    async def open(self, conn: AsyncConnection[Any], value: Any) -> Any:
        return (await self.opener(conn, [value])).open(value)

    # -- forgetting -----------------------------------------------------------------------------

    @staticmethod
    async def forget(conn: AsyncConnection[Any], subject: str, agent: str | None) -> int:
        """Destroy the subject's keys (one agent's, or every agent's); return how many went."""
        cursor = await conn.execute(FORGET, (subject, agent, agent))
        return len(await cursor.fetchall())

    # -- wrapping -------------------------------------------------------------------------------

    def _wrap(self, key: bytes) -> tuple[bytes, str]:
        if self._keyring is None:
            return key, UNWRAPPED
        wrapping_id = self._keyring.current
        cipher = self._keyring.cipher(wrapping_id)
        assert cipher is not None  # a Keyring always has its current key
        nonce = os.urandom(NONCE_BYTES)
        return nonce + cipher.encrypt(nonce, key, _wrap_data(wrapping_id)), wrapping_id

    def _unwrap(self, key_id: str, wrapped: bytes, wrapped_by: str) -> bytes:
        if wrapped_by == UNWRAPPED:
            return wrapped
        cipher = self._keyring.cipher(wrapped_by) if self._keyring is not None else None
        if cipher is None:
            raise SubjectKeyUnavailable(
                f"subject key {key_id} was wrapped with payload key {wrapped_by!r}, which this "
                "process does not have: keep every old key in the keyring (and payload encryption on)"
            )
        try:
            return cipher.decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], _wrap_data(wrapped_by))
        except InvalidTag:
            raise SubjectKeyUnavailable(
                f"subject key {key_id} did not unwrap with payload key {wrapped_by!r}: "
                "the key stored under that id is not the one that wrapped it"
            ) from None


def _wrap_data(wrapping_id: str) -> bytes:
    return b"aios-subject-key-v1:" + wrapping_id.encode()


@dataclass(frozen=True)
class Opener:
    """Opens sealed values with the keys fetched for them; a missing key means forgotten."""

    ciphers: Mapping[str, AESGCM]

    def open(self, value: Any) -> Any:
        """The value as it was sealed; FORGOTTEN when its key is gone; as is when not sealed."""
        key_id = sealed_key_id(value)
        if key_id is None:
            return value
        cipher = self.ciphers.get(key_id)
        if cipher is None:
            return FORGOTTEN
        encoded = value["data"] if isinstance(value, Mapping) else value.rsplit(":", 1)[1]
        text = _decrypt(cipher, key_id, encoded)
        return json.loads(text) if isinstance(value, Mapping) else text

    def open_mapping(self, value: Any) -> dict[str, Any]:
        """A sealed JSON object opened; a forgotten one becomes {"forgotten": FORGOTTEN}."""
        opened = self.open(value)
        if opened == FORGOTTEN:
            return {"forgotten": FORGOTTEN}
        return dict(opened) if isinstance(opened, Mapping) else {"value": opened}


def _decrypt(cipher: AESGCM, key_id: str, encoded: str) -> str:
    try:
        raw = base64.b64decode(encoded, validate=True)
        plain: bytes = cipher.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _associated_data(key_id))
    except (binascii.Error, ValueError, InvalidTag):
        raise SubjectKeyUnavailable(f"a value sealed with subject key {key_id} was altered") from None
    return plain.decode()
