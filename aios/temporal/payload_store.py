"""Large Temporal payloads in Postgres: an ExternalStorage driver (docs/ARCHITECTURE.md, decision 9).

The data converter first encodes a payload (pydantic JSON, then the AES-GCM codec) and only then
offers it to ExternalStorage: one of at least AIOS_PAYLOAD_OFFLOAD_THRESHOLD bytes comes to this
driver, which writes the already encrypted bytes to `aios_payloads` under their SHA-256, and the
history keeps a reference of ~150 bytes naming the hash. Reading runs the other way: the
reference is resolved here, the bytes checked against their hash, then the codec decrypts.
Identical bytes share one row. With encryption on, every encoding draws a fresh nonce, so the
same value encoded twice is two rows; only the same encoded payload stored again is one.

The SDK calls the driver wherever it converts payloads: in clients, in activity workers, and in
the workflow worker's activation and completion handling, on the worker's event loop outside the
sandbox. Workflow code never does this I/O, and replaying a history needs only the rows it names.

Each batch opens its own connection (~3 ms on loopback, paid only for payloads over the
threshold): the driver lives in the data converter of every client and CLI command, which may
run on several event loops, and a pool belongs to one loop. A per-loop semaphore bounds the
connections, and a byte-bounded cache of recent blobs serves replays and the activity that reads
what its workflow just stored; a hash names its bytes forever, so a cached blob is never stale.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    ExternalStorage,
    StorageDriver,
    StorageDriverActivityInfo,
    StorageDriverClaim,
    StorageDriverRetrieveContext,
    StorageDriverSelectContext,
    StorageDriverStoreContext,
    StorageDriverWorkflowInfo,
)

from aios.errors import AiosError
from aios.settings import Settings
from aios.store.migrate import redact_url

DRIVER_NAME = "aios-postgres"  # written into every reference: renaming it orphans old histories
CLAIM_KEY = "sha256"
MAX_CONNECTIONS_PER_LOOP = 4
CACHE_BYTES = 32 * 1024 * 1024
CONNECT_TIMEOUT_SECONDS = 10

INSERT_PAYLOADS = """
INSERT INTO aios_payloads (sha256, data, size_bytes)
SELECT digest, data, octet_length(data) FROM unnest(%s::bytea[], %s::bytea[]) AS blob (digest, data)
ON CONFLICT (sha256) DO NOTHING
"""
INSERT_OWNERS = """
INSERT INTO aios_payload_owners (namespace, owner_kind, owner_id, sha256)
SELECT %s, %s, %s, digest FROM unnest(%s::bytea[]) AS blob (digest)
ON CONFLICT DO NOTHING
"""
SELECT_PAYLOADS = "SELECT sha256, data FROM aios_payloads WHERE sha256 = ANY(%s)"
DELETE_WORKFLOW_OWNERS = """
DELETE FROM aios_payload_owners WHERE namespace = %s AND owner_kind = 'workflow' AND owner_id = %s
RETURNING sha256
"""
DELETE_UNOWNED = """
DELETE FROM aios_payloads AS blob WHERE blob.sha256 = ANY(%s)
AND NOT EXISTS (SELECT 1 FROM aios_payload_owners AS owner WHERE owner.sha256 = blob.sha256)
"""


class PayloadStoreError(AiosError):
    """A payload kept outside Temporal's history could not be stored or read back."""


class PayloadStoreUnavailable(PayloadStoreError):
    """The payload store's database cannot be reached or has not been migrated."""


class PayloadMissing(PayloadStoreError):
    """A history names a payload hash that the payload store does not hold."""


class PayloadCorrupted(PayloadStoreError):
    """A stored payload's bytes no longer match the hash that names them."""


class PostgresPayloadDriver(StorageDriver):
    """Keeps payloads in `aios_payloads`, named by the SHA-256 of their (encoded) bytes."""

    def __init__(self, database_url: str, *, name: str = DRIVER_NAME, cache_bytes: int = CACHE_BYTES) -> None:
        self._database_url = database_url
        self._name = name
        self._cache = _BlobCache(cache_bytes)
        self._limits: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )

    def name(self) -> str:
        return self._name

    def type(self) -> str:
        return "aios.postgres"  # stable across renames of the class, as the SDK asks

    async def store(
        self, context: StorageDriverStoreContext, payloads: Sequence[Payload]
    ) -> list[StorageDriverClaim]:
        # Deterministic: the metadata map must serialize the same way every time, or the same
        # payload would get a new hash (and a new row) on each store.
        blobs = [payload.SerializeToString(deterministic=True) for payload in payloads]
        digests = [hashlib.sha256(blob).digest() for blob in blobs]
        unique = dict(zip(digests, blobs, strict=True))
        namespace, kind, owner = _owner(context)
        async with self._connection() as conn, conn.transaction():
            await conn.execute(INSERT_PAYLOADS, (list(unique), list(unique.values())))
            await conn.execute(INSERT_OWNERS, (namespace, kind, owner, list(unique)))
        for digest, blob in unique.items():
            self._cache.put(digest, blob)
        return [StorageDriverClaim(claim_data={CLAIM_KEY: digest.hex()}) for digest in digests]

    async def retrieve(
        self, context: StorageDriverRetrieveContext, claims: Sequence[StorageDriverClaim]
    ) -> list[Payload]:
        digests = [_digest_of(claim) for claim in claims]
        found = {digest: blob for digest in digests if (blob := self._cache.get(digest)) is not None}
        wanted = [digest for digest in dict.fromkeys(digests) if digest not in found]
        if wanted:
            found.update(await self._fetch(wanted))
        return [Payload.FromString(found[digest]) for digest in digests]

    async def _fetch(self, digests: list[bytes]) -> dict[bytes, bytes]:
        async with self._connection() as conn:
            cursor = await conn.execute(SELECT_PAYLOADS, (digests,))
            rows = {bytes(digest): bytes(data) for digest, data in await cursor.fetchall()}
        self._check(digests, rows)
        for digest, blob in rows.items():
            self._cache.put(digest, blob)
        return rows

    def _check(self, digests: list[bytes], rows: dict[bytes, bytes]) -> None:
        """Every wanted blob is there and still hashes to its name (else no run could use it)."""
        missing = [digest.hex() for digest in digests if digest not in rows]
        if missing:
            raise PayloadMissing(
                f"the payload store ({redact_url(self._database_url)}, table aios_payloads) has no "
                f"payload sha256 {', '.join(missing)}: this history was written against another "
                "database, or the row was deleted. Point AIOS_DATABASE_URL at the database its "
                "writers used, or restore the row from a backup; the run resumes on its next retry."
            )
        for digest, blob in rows.items():
            if hashlib.sha256(blob).digest() != digest:
                raise PayloadCorrupted(
                    f"the stored payload sha256 {digest.hex()} ({len(blob)} bytes) does not match its "
                    "hash: the row in aios_payloads was altered; restore it from a backup"
                )

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        async with self._limit():
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self._database_url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS
                )
            except psycopg.OperationalError as exc:
                raise PayloadStoreUnavailable(
                    f"cannot reach the payload store at {redact_url(self._database_url)} ({exc}); "
                    "is Postgres up (`aios dev status`) and AIOS_DATABASE_URL right?"
                ) from exc
            try:
                async with conn:
                    yield conn
            except psycopg.errors.UndefinedTable as exc:
                raise PayloadStoreUnavailable(
                    f"{redact_url(self._database_url)} has no payload store table; run `aios db migrate`"
                ) from exc

    def _limit(self) -> asyncio.Semaphore:
        # A Semaphore binds to the loop that first waits on it: one per loop, dropped with it.
        loop = asyncio.get_running_loop()
        limit = self._limits.get(loop)
        if limit is None:
            limit = self._limits[loop] = asyncio.Semaphore(MAX_CONNECTIONS_PER_LOOP)
        return limit


def _owner(context: StorageDriverStoreContext) -> tuple[str, str, str]:
    """(namespace, kind, id) of what the payload is stored for, recorded for retention."""
    target = context.target
    if isinstance(target, StorageDriverWorkflowInfo):
        return target.namespace, "workflow", target.id or ""
    if isinstance(target, StorageDriverActivityInfo):
        return target.namespace, "activity", target.id or ""
    return "", "unknown", ""


def _digest_of(claim: StorageDriverClaim) -> bytes:
    text = claim.claim_data.get(CLAIM_KEY, "")
    try:
        digest = bytes.fromhex(text)
    except ValueError:
        digest = b""
    if len(digest) != hashlib.sha256().digest_size:
        raise PayloadStoreError(
            f"a payload reference in the history is malformed (claim {dict(claim.claim_data)}); "
            f"expected {{{CLAIM_KEY!r}: <64 hex digits>}} as written by the {DRIVER_NAME} driver"
        )
    return digest


class _BlobCache:
    """The most recently used blobs, up to a total size; safe to share between threads."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[bytes, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, digest: bytes) -> bytes | None:
        with self._lock:
            blob = self._entries.get(digest)
            if blob is not None:
                self._entries.move_to_end(digest)
            return blob

    def put(self, digest: bytes, blob: bytes) -> None:
        if len(blob) > self._capacity:
            return
        with self._lock:
            if digest in self._entries:
                self._entries.move_to_end(digest)
                return
            self._entries[digest] = blob
            self._size += len(blob)
            while self._size > self._capacity:
                _, evicted = self._entries.popitem(last=False)
                self._size -= len(evicted)


def _keep_inline(context: StorageDriverSelectContext, payload: Payload) -> StorageDriver | None:
    return None


def external_storage_for(settings: Settings) -> ExternalStorage:
    """The ExternalStorage every client and worker uses (see AIOS_PAYLOAD_OFFLOAD_THRESHOLD).

    With a threshold of 0 nothing new is offloaded, but the driver stays registered: histories
    that already hold references must still be readable after offloading is turned off.
    """
    driver = PostgresPayloadDriver(settings.resolved_database_url)
    if settings.payload_offload_threshold == 0:
        return ExternalStorage(drivers=[driver], driver_selector=_keep_inline)
    return ExternalStorage(drivers=[driver], payload_size_threshold=settings.payload_offload_threshold)


async def forget_workflow_payloads(
    conn: psycopg.AsyncConnection[Any], *, namespace: str, workflow_id: str
) -> int:
    """Drop a workflow's claim on its stored payloads; delete those no other owner holds.

    Returns how many blobs were deleted. For retention and `forget`, once the workflow's
    history is gone too: a history whose blobs are deleted can no longer be read.
    """
    async with conn.transaction():
        cursor = await conn.execute(DELETE_WORKFLOW_OWNERS, (namespace, workflow_id))
        released = [bytes(row[0]) for row in await cursor.fetchall()]
        if not released:
            return 0
        cursor = await conn.execute(DELETE_UNOWNED, (released,))
        return cursor.rowcount
