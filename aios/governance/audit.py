"""The audit trail's hash chain: append rows, verify the chain, read a run's story.

One global chain covers every row (migration 0005). Row n stores `prev_hash`, the hash of
row n-1 (GENESIS for the first), and `row_hash = sha256(prev_hash + canonical JSON of its
content)`. Changing a field, deleting a row or reordering rows therefore breaks the chain at
that row or the next, and `verify` names the first broken row.

Why one global chain rather than per-run chains: a per-run chain cannot tell that a whole
run's rows were deleted unless something anchors every run's head, which is a second chain
to keep. A global chain needs one lock: writers take a transaction-level advisory lock, read
the head, append, and release at commit. Audit writes are a few small inserts per step, so
serialising them costs little next to the model and connector calls around them.

The chain commits to `input_digest` (sha256 of the canonical `detail`) rather than to
`detail` itself, and `verify` checks `detail` against the digest separately: an edited
detail is still caught, and a future forget policy could erase personal data from `detail`
without breaking the chain.

That forget policy is crypto-shredding (aios/governance/subjects.py): an entry of a run that serves a
subject is sealed before it is hashed, its detail and rationale encrypted with the subject's
key, so the chain covers the ciphertext. `aios memory forget` destroys the key; the rows are
never touched, `verify` (which needs no key) still passes, and `run_story` shows "[forgotten]"
where the sealed values were.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import AsyncIterator, Awaitable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from aios.errors import AiosError
from aios.governance.subjects import Opener, SubjectKey, SubjectVault, key_ids, sealed_key_id
from aios.store.transactions import atomic

GENESIS = "0" * 64
# Any fixed 64-bit number works; it only has to differ from the other advisory locks (migrations).
AUDIT_CHAIN_LOCK = 0x41494F53_41554454  # "AIOSAUDT"
# Gate verdicts, and the step outcomes that follow a person's verdict.
VERDICTS = frozenset({"approve", "reject"})
DECIDED_OUTCOMES = frozenset({"executed", "rejected", "failed"})
AUTOMATIC_DECIDERS = frozenset({"policy", "shadow"})
T = TypeVar("T")

TAKE_CHAIN_LOCK = "SELECT pg_advisory_xact_lock(%s)"
# A separate statement after the lock: under READ COMMITTED its snapshot then includes the
# rows of the writer that held the lock before us (one statement would read a stale head).
# With the head, which of the keys about to be written are there already (a retried write).
READ_HEAD = """
SELECT (SELECT chain_seq FROM aios_audit WHERE chain_seq IS NOT NULL ORDER BY chain_seq DESC LIMIT 1),
       (SELECT row_hash FROM aios_audit WHERE chain_seq IS NOT NULL ORDER BY chain_seq DESC LIMIT 1),
       clock_timestamp(),
       ARRAY(SELECT event_key FROM aios_audit WHERE event_key = ANY(%s))
"""
INSERT_CHAINED = """
INSERT INTO aios_audit (event_key, run_id, step, actor, action, outcome, rationale, detail, trace_id,
                        recorded_at, input_digest, confidence, approver, manifest_version,
                        chain_seq, prev_hash, row_hash)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (event_key) DO NOTHING
RETURNING id
"""
FIND_BY_KEY = "SELECT id FROM aios_audit WHERE event_key = %s"
ROW_COLUMNS = """
id, chain_seq, prev_hash, row_hash, event_key, run_id, step, actor, action, outcome, rationale,
detail::text AS detail_json, input_digest, confidence, approver, manifest_version, trace_id, recorded_at
"""
# detail is read as text and parsed here, so no adapter configuration can change what is hashed.
CHAINED_ROWS = f"SELECT {ROW_COLUMNS} FROM aios_audit WHERE chain_seq IS NOT NULL ORDER BY chain_seq"
UNCHAINED_COUNT = "SELECT count(*) FROM aios_audit WHERE chain_seq IS NULL"
RUN_ROWS = f"SELECT {ROW_COLUMNS} FROM aios_audit WHERE run_id = %s ORDER BY id"


class AuditChainConflict(AiosError):
    """A row appeared under the chain lock; nothing was written (the transaction rolls back)."""


class AuditUnavailable(AiosError):
    """The audit trail could not be read: the database is unreachable or not migrated."""


# -- the canonical form --------------------------------------------------------------------


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 text, numbers by value.

    Numbers are written by value because Postgres' jsonb rewrites how they are written:
    1e+16 comes back as 10000000000000000 and 250.0 may come back as 250. What is hashed
    before the insert must equal what is hashed after reading the row back.
    """
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int | float):
        return _canonical_number(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Mapping):
        items = sorted((str(key), item) for key, item in value.items())
        return "{" + ",".join(f"{canonical_json(key)}:{canonical_json(item)}" for key, item in items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(canonical_json(item) for item in value) + "]"
    raise TypeError(f"{type(value).__name__} has no canonical JSON form")


def _canonical_number(value: float) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value} cannot be stored in JSON")
    number = Decimal(repr(value)).normalize()
    return "0" if number.is_zero() else format(number, "f")  # jsonb has no negative zero


def digest(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


def chain_hash(prev_hash: str, content: Mapping[str, Any]) -> str:
    return hashlib.sha256((prev_hash + canonical_json(content)).encode()).hexdigest()


# -- rows ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditEntry:
    """One event as a writer hands it in; the chain fields and the time are added on append."""

    event_key: str
    run_id: str
    step: str
    actor: str
    action: str
    outcome: str
    rationale: str = ""
    detail: Mapping[str, Any] = field(default_factory=dict)
    manifest_version: str | None = None
    trace_id: str | None = None
    # The key of the subject the run serves: detail and rationale are stored sealed with it.
    sealed_with: SubjectKey | None = field(default=None, compare=False, repr=False)

    @property
    def confidence(self) -> float | None:
        """The model's confidence, which proposals carry in their detail."""
        value = self.detail.get("confidence")
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return float(value)

    @property
    def approver(self) -> str | None:
        """Who decided: the person (or the expired SLA) at a gate, and the step run on their word."""
        if self.outcome in VERDICTS:
            return self.actor
        if self.outcome in DECIDED_OUTCOMES and self.actor not in AUTOMATIC_DECIDERS:
            return self.actor
        return None


@dataclass(frozen=True)
class AuditRow:
    """A row as stored: the entry's fields plus its digest, time and place in the chain."""

    id: int | None
    chain_seq: int | None
    prev_hash: str | None
    row_hash: str | None
    event_key: str
    run_id: str
    step: str
    actor: str
    action: str
    outcome: str
    rationale: str
    detail: dict[str, Any]
    input_digest: str | None
    confidence: float | None
    approver: str | None
    manifest_version: str | None
    trace_id: str | None
    recorded_at: datetime
    # Read back opened (aios.governance.audit.opened): the detail as stored, which `input_digest` covers.
    sealed_detail: dict[str, Any] | None = None

    def content(self) -> dict[str, Any]:
        """What the row hash covers: everything but the database id, the hash and `detail`."""
        return {
            "seq": self.chain_seq,
            "event_key": self.event_key,
            "run_id": self.run_id,
            "step": self.step,
            "actor": self.actor,
            "action": self.action,
            "outcome": self.outcome,
            "rationale": self.rationale,
            "input_digest": self.input_digest,
            "confidence": self.confidence,
            "approver": self.approver,
            "manifest_version": self.manifest_version,
            "trace_id": self.trace_id,
            "recorded_at": _utc_text(self.recorded_at),
        }

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["recorded_at"] = _utc_text(self.recorded_at)
        return data


def _utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def seal(entry: AuditEntry, *, seq: int, prev_hash: str, recorded_at: datetime) -> AuditRow:
    """The row an entry becomes at position `seq` after `prev_hash`."""
    # A JSON round trip first: what is hashed is what jsonb will hold (int keys become text...).
    detail: dict[str, Any] = json.loads(json.dumps(dict(entry.detail), allow_nan=False))
    rationale = entry.rationale
    if entry.sealed_with is not None:  # the confidence column is read from the detail before
        detail, rationale = entry.sealed_with.seal(detail), entry.sealed_with.seal_text(rationale)
    row = AuditRow(
        id=None,
        chain_seq=seq,
        prev_hash=prev_hash,
        row_hash=None,
        event_key=entry.event_key,
        run_id=entry.run_id,
        step=entry.step,
        actor=entry.actor,
        action=entry.action,
        outcome=entry.outcome,
        rationale=rationale,
        detail=detail,
        input_digest=digest(detail),
        confidence=entry.confidence,
        approver=entry.approver,
        manifest_version=entry.manifest_version,
        trace_id=entry.trace_id,
        recorded_at=recorded_at,
    )
    return _with_hash(row)


def _with_hash(row: AuditRow) -> AuditRow:
    assert row.prev_hash is not None
    values = asdict(row)
    values["row_hash"] = chain_hash(row.prev_hash, row.content())
    return AuditRow(**values)


# -- appending -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Appended:
    audit_id: int
    newly_recorded: bool


async def append(conn: AsyncConnection[Any], entries: Sequence[AuditEntry]) -> list[Appended]:
    """Chain and insert the entries in order; an entry whose key is already there is skipped.

    Runs in a transaction (the caller's, if one is open), so the chain lock is held until
    the caller commits: nobody can append between our reading the head and our commit. Under
    the lock, the keys already there are known before sealing, so the new rows chain without
    gaps and go in one batch: four round trips however many entries.
    """
    if not entries:
        return []
    async with atomic(conn):
        await conn.execute(TAKE_CHAIN_LOCK, (AUDIT_CHAIN_LOCK,))
        cursor = await conn.execute(READ_HEAD, ([entry.event_key for entry in entries],))
        head = await cursor.fetchone()
        assert head is not None
        seq, prev_hash, now, known = head[0] or 0, head[1] or GENESIS, head[2], set(head[3])
        rows = []
        for entry in entries:
            if entry.event_key not in known:
                row = seal(entry, seq=seq + 1, prev_hash=prev_hash, recorded_at=now)
                rows.append(row)
                seq, prev_hash = seq + 1, row.row_hash or GENESIS
        inserted = await _insert_all(conn, rows)
        return [
            Appended(inserted[entry.event_key], newly_recorded=True)
            if entry.event_key in inserted
            else Appended(await _existing_id(conn, entry.event_key), newly_recorded=False)
            for entry in entries
        ]


async def _insert_all(conn: AsyncConnection[Any], rows: Sequence[AuditRow]) -> dict[str, int]:
    """Insert the sealed rows in one pipelined batch; their audit ids by event key."""
    if not rows:
        return {}
    cursor = conn.cursor()
    await cursor.executemany(INSERT_CHAINED, [_parameters(row) for row in rows], returning=True)
    ids: dict[str, int] = {}
    for row in rows:
        inserted = await cursor.fetchone()
        # Keys were checked under the chain lock, so a conflict here would leave a gap in the
        # chain: refuse it rather than commit a chain `verify` would call broken.
        if inserted is None:
            raise AuditChainConflict(f"audit row {row.event_key!r} appeared while the chain lock was held")
        ids[row.event_key] = int(inserted[0])
        cursor.nextset()
    return ids


def _parameters(row: AuditRow) -> tuple[Any, ...]:
    return (
        row.event_key,
        row.run_id,
        row.step,
        row.actor,
        row.action,
        row.outcome,
        row.rationale,
        Jsonb(row.detail),
        row.trace_id,
        row.recorded_at,
        row.input_digest,
        row.confidence,
        row.approver,
        row.manifest_version,
        row.chain_seq,
        row.prev_hash,
        row.row_hash,
    )


async def _existing_id(conn: AsyncConnection[Any], event_key: str) -> int:
    cursor = await conn.execute(FIND_BY_KEY, (event_key,))
    found = await cursor.fetchone()
    assert found is not None, "a conflicting row cannot vanish: rows are never deleted"
    return int(found[0])


# -- verifying -----------------------------------------------------------------------------


@dataclass(frozen=True)
class BrokenRow:
    id: int | None
    chain_seq: int | None
    event_key: str
    run_id: str
    reason: str

    def describe(self) -> str:
        where = f"id {self.id}, event {self.event_key}, run {self.run_id}"
        return f"row #{self.chain_seq} ({where}): {self.reason}"


@dataclass(frozen=True)
class VerifyReport:
    rows_checked: int
    head_seq: int
    head_hash: str
    unchained_rows: int = 0
    broken: BrokenRow | None = None

    @property
    def ok(self) -> bool:
        return self.broken is None


class ChainWalk:
    """Checks rows one at a time in chain order and remembers the first that does not hold."""

    def __init__(self, *, unchained_rows: int = 0) -> None:
        self._expected_seq = 1
        self._prev_hash = GENESIS
        self._checked = 0
        self._unchained = unchained_rows
        self._broken: BrokenRow | None = None

    def check(self, row: AuditRow) -> bool:
        """False once a row is broken: later rows cannot be judged against a broken chain."""
        if self._broken is not None:
            return False
        reason = _problem(row, self._expected_seq, self._prev_hash)
        if reason:
            self._broken = BrokenRow(row.id, row.chain_seq, row.event_key, row.run_id, reason)
            return False
        self._checked += 1
        self._expected_seq += 1
        self._prev_hash = row.row_hash or GENESIS
        return True

    def report(self) -> VerifyReport:
        return VerifyReport(
            rows_checked=self._checked,
            head_seq=self._expected_seq - 1,
            head_hash=self._prev_hash,
            unchained_rows=self._unchained,
            broken=self._broken,
        )


def verify_rows(rows: Iterable[AuditRow], *, unchained_rows: int = 0) -> VerifyReport:
    """Walk the chain in order; stop at the first row that does not hold."""
    walk = ChainWalk(unchained_rows=unchained_rows)
    for row in rows:
        if not walk.check(row):
            break
    return walk.report()


def _problem(row: AuditRow, expected_seq: int, prev_hash: str) -> str:
    if row.chain_seq != expected_seq:
        return (
            f"expected position {expected_seq} but found {row.chain_seq}: "
            "a row before it was deleted, or rows were reordered"
        )
    if row.prev_hash != prev_hash:
        return "its prev_hash is not the previous row's hash: the previous row was rewritten or removed"
    if row.input_digest != digest(row.detail):
        return "its detail does not match its input digest: the detail was edited"
    if row.row_hash != chain_hash(prev_hash, row.content()):
        return "its content does not match its hash: a field was edited"
    return ""


async def verify(conn: AsyncConnection[Any]) -> VerifyReport:
    """Verify the whole chain, streaming the rows: the table can be large."""
    cursor = await conn.execute(UNCHAINED_COUNT)
    counted = await cursor.fetchone()
    walk = ChainWalk(unchained_rows=int(counted[0]) if counted else 0)
    # Read to the end even after a break: leaving a stream early cancels the query, which
    # would abort a transaction the caller may still be in.
    async for row in _stream(conn, CHAINED_ROWS):
        walk.check(row)
    return walk.report()


async def _stream(
    conn: AsyncConnection[Any], query: str, params: Sequence[Any] = ()
) -> AsyncIterator[AuditRow]:
    async with conn.cursor(row_factory=dict_row) as cursor:
        async for record in cursor.stream(query, params):
            yield _row(record)


def _row(record: dict[str, Any]) -> AuditRow:
    detail = json.loads(record.pop("detail_json"))
    return AuditRow(detail=detail, **record)


# -- reading -------------------------------------------------------------------------------


async def run_story(
    conn: AsyncConnection[Any], run_id: str, *, vault: SubjectVault | None = None
) -> list[AuditRow]:
    """Every row of one run, in the order the run recorded its events, sealed values opened
    (one round trip for all their keys; without a vault they read as forgotten)."""
    rows = [row async for row in _stream(conn, RUN_ROWS, (run_id,))]
    return sorted(await opened(conn, rows, vault), key=_event_order)


async def opened(
    conn: AsyncConnection[Any], rows: list[AuditRow], vault: SubjectVault | None
) -> list[AuditRow]:
    """The rows with detail and rationale opened: "[forgotten]" where the key is gone.
    For reading only: an opened row no longer matches its hash."""
    sealed = [value for row in rows for value in (row.detail, row.rationale)]
    if not key_ids(sealed):
        return rows
    opener = await vault.opener(conn, sealed) if vault is not None else Opener({})
    return [
        replace(
            row,
            detail=opener.open_mapping(row.detail),
            rationale=opener.open(row.rationale),
            sealed_detail=row.detail if sealed_key_id(row.detail) else None,
        )
        for row in rows
    ]


def _event_order(row: AuditRow) -> tuple[int, int]:
    # Keys end in /e<n>, numbered by the workflow: two records in flight at once (a signal
    # and a step) may commit in either order, but the story follows the run's own order.
    _, _, number = row.event_key.rpartition("/e")
    return (int(number) if number.isdigit() else 0, row.id or 0)


async def story_from_database(
    database_url: str, run_id: str, *, vault: SubjectVault | None = None
) -> list[AuditRow]:
    async with await _connect(database_url) as conn:
        return await _readable(run_story(conn, run_id, vault=vault))


async def verify_database(database_url: str) -> VerifyReport:
    async with await _connect(database_url) as conn:
        return await _readable(verify(conn))


async def _connect(database_url: str) -> AsyncConnection[Any]:
    try:
        return await psycopg.AsyncConnection.connect(database_url, connect_timeout=10)
    except psycopg.OperationalError as exc:
        problem = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AuditUnavailable(
            f"cannot reach the audit database: {problem}; is `aios dev up` running?"
        ) from exc


async def _readable(work: Awaitable[T]) -> T:
    try:
        return await work
    except psycopg.errors.UndefinedColumn as exc:
        raise AuditUnavailable("the audit table predates the chain: run `aios db migrate`") from exc
    except psycopg.errors.UndefinedTable as exc:
        raise AuditUnavailable("the database has no audit table: run `aios db migrate`") from exc
