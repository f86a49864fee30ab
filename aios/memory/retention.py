"""Retention: one policy (AIOS_RETENTION) over Postgres, Qdrant and Temporal's visibility.

Memories: for each memory the first rule matching its agent and kind applies; once it is older
than `keep_days` it is archived (the row stays in Postgres with `archived_at`, as compaction
leaves its originals; its vector leaves Qdrant, so recall no longer finds it) or deleted (the
row goes, with a tombstone so the vector goes too: the path `forget` takes).

Finished agent runs: for each run the first rule matching its agent applies; once it closed
more than `keep_days` ago it is deleted from Temporal (every run of its continue-as-new chain
and its child workflows, found by `RootWorkflowId`) and its mirror leaves `aios_runs`. A run
still going is never deleted. Found through visibility (`CloseTime`, `AiosAgent`), deleted with
the workflow service's `DeleteWorkflowExecution`, which also removes its visibility record.

Every step is idempotent: a pass that crashed is finished by the next one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from pydantic import Field
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleHandle,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
    WorkflowExecutionStatus,
)
from temporalio.service import RPCError, RPCStatusCode

from aios.ledger import model_cache
from aios.memory import documents
from aios.memory.service import ErasedRuns, MemoryService
from aios.models.base import Payload
from aios.models.run import RunStatus
from aios.settings import MemoryRetentionRule, RetentionPolicy, RunRetentionRule
from aios.temporal.payload_store import forget_workflow_payloads

AGENT_RUN = "AgentRun"  # the agent run's workflow type (aios.client starts it by this name)
RETENTION_WORKFLOW = "MemoryRetention"  # workflows/retention.py; started by name, as aios.client does
RETENTION_SCHEDULE = "memory-retention"
BATCH = 500
FINISHED = [status.value for status in RunStatus if status.terminal]

Progress = Callable[[str], None]
Erased = Literal["deleted", "missing", "running"]


# -- what crosses the Temporal boundary ---------------------------------------------------------


class RetentionRequest(Payload):
    """One retention pass (the workflow's input)."""

    policy: RetentionPolicy | None = Field(
        default=None, description="None: the policy the worker is configured with (AIOS_RETENTION)"
    )
    dry_run: bool = Field(default=False, description="count what would go; change nothing")


class ApplyRetention(Payload):
    request: RetentionRequest
    as_of: datetime = Field(description="workflow.now(): ages are measured from here")


class MemoryRuleOutcome(Payload):
    rule: str
    archived: int = 0
    deleted: int = 0


class RunRuleOutcome(Payload):
    rule: str
    runs: int = Field(default=0, description="agent runs deleted from Temporal")
    executions: int = Field(default=0, description="executions deleted: runs, their chains, children")
    mirrors: int = Field(default=0, description="aios_runs rows deleted")
    still_going: int = Field(default=0, description="matched, but the run goes on: kept")


class RetentionReport(Payload):
    as_of: datetime
    dry_run: bool
    memory_rules: list[MemoryRuleOutcome] = Field(default_factory=list)
    run_rules: list[RunRuleOutcome] = Field(default_factory=list)
    vectors_deleted: int = Field(default=0, description="deleted from Qdrant by this process")
    vectors_pending: int = Field(
        default=0, description="left (as tombstones) to the process holding the store"
    )
    expired_answers: int = Field(default=0, description="model-response cache entries past their ttl")
    notes: list[str] = Field(default_factory=list)

    @property
    def documents_archived(self) -> int:
        return sum(outcome.archived for outcome in self.memory_rules)

    @property
    def documents_deleted(self) -> int:
        return sum(outcome.deleted for outcome in self.memory_rules)

    @property
    def runs_deleted(self) -> int:
        return sum(outcome.runs for outcome in self.run_rules)

    @property
    def executions_deleted(self) -> int:
        return sum(outcome.executions for outcome in self.run_rules)

    @property
    def run_mirrors_deleted(self) -> int:
        return sum(outcome.mirrors for outcome in self.run_rules)

    @property
    def runs_still_going(self) -> int:
        return sum(outcome.still_going for outcome in self.run_rules)

    def by_store(self) -> list[tuple[str, str, int]]:
        """(store, what, how many): the report as the CLI prints it."""
        return [
            ("postgres", "memory documents archived", self.documents_archived),
            ("postgres", "memory documents deleted", self.documents_deleted),
            ("postgres", "run mirrors deleted", self.run_mirrors_deleted),
            ("postgres", "expired model answers deleted", self.expired_answers),
            ("qdrant", "vectors deleted", self.vectors_deleted),
            ("qdrant", "vectors left to the store's holder", self.vectors_pending),
            ("temporal", "agent runs deleted", self.runs_deleted),
            ("temporal", "executions deleted (runs, their chains, children)", self.executions_deleted),
            ("temporal", "finished runs kept: their workflow still goes on", self.runs_still_going),
        ]


def describe_memory_rule(index: int, rule: MemoryRetentionRule) -> str:
    return (
        f"memories[{index}]: agent={rule.agent or '*'} kind={rule.kind or '*'}: "
        f"{rule.then} after {rule.keep_days:g} days"
    )


def describe_run_rule(index: int, rule: RunRetentionRule) -> str:
    return f"runs[{index}]: agent={rule.agent or '*'}: delete finished runs after {rule.keep_days:g} days"


# -- Temporal -----------------------------------------------------------------------------------


def _literal(value: str) -> str:
    """A string literal of Temporal's visibility query language."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def finished_runs_query(rules: list[RunRetentionRule], index: int, before: datetime) -> str:
    """Closed agent runs that rule `index` governs (the first matching rule wins), closed before."""
    rule = rules[index]
    clauses = [
        f"WorkflowType = {_literal(AGENT_RUN)}",
        "ExecutionStatus != 'Running'",
        f"CloseTime < {_literal(_timestamp(before))}",
    ]
    if rule.agent is not None:
        clauses.append(f"AiosAgent = {_literal(rule.agent)}")
    else:  # earlier rules all name an agent (a catch-all before this one fails validation)
        clauses += [f"AiosAgent != {_literal(r.agent)}" for r in rules[:index] if r.agent is not None]
    return " AND ".join(clauses)


@dataclass
class TemporalRuns:
    """Deletes finished runs from Temporal: each run's whole tree, never a run still going."""

    client: Client
    progress: Progress = field(default=lambda _: None)
    # Where the runs' large payloads live (ExternalStorage): dropped with their histories.
    pool: AsyncConnectionPool | None = None

    async def erase(self, run_ids: list[str]) -> ErasedRuns:
        """For `forget`: delete these runs if they have ended (the service's `RunEraser`)."""
        finished: list[str] = []
        running: list[str] = []
        executions = 0
        for run_id in run_ids:
            outcome, count = await self.erase_tree(run_id)
            (running if outcome == "running" else finished).append(run_id)
            executions += count
        return ErasedRuns(finished=finished, running=running, executions=executions)

    async def erase_tree(self, workflow_id: str, *, dry_run: bool = False) -> tuple[Erased, int]:
        """Delete every closed execution rooted at this workflow id; return what it was and how many.

        The workflow's current run is described (strongly consistent) to tell whether it goes on;
        visibility finds the earlier runs of its chain and its children.
        """
        try:
            described = await self.client.get_workflow_handle(workflow_id).describe()
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                return "missing", 0
            raise
        if described.status in (None, WorkflowExecutionStatus.RUNNING):
            return "running", 0
        executions = {(workflow_id, described.run_id)}
        async for found in self.client.list_workflows(f"RootWorkflowId = {_literal(workflow_id)}"):
            if found.status != WorkflowExecutionStatus.RUNNING:
                executions.add((found.id, found.run_id))
        # Children first: a crash part-way leaves the root, which the next pass finds again.
        ordered = sorted(executions, key=lambda execution: execution[0] == workflow_id)
        deleted = len(ordered)
        if not dry_run:
            deleted = 0
            for execution in ordered:
                deleted += await self._delete(*execution)
            await self._forget_payloads({execution[0] for execution in ordered})
        self.progress(f"{'would delete' if dry_run else 'deleted'} {workflow_id} ({deleted} executions)")
        return "deleted", deleted

    async def finished_ids(self, query: str) -> list[str]:
        """Workflow ids the query lists, each once, read in full before anything is deleted
        (paging through a listing while deleting from it could skip some)."""
        ids: dict[str, None] = {}
        async for found in self.client.list_workflows(query):
            ids.setdefault(found.id)
        return list(ids)

    async def _forget_payloads(self, workflow_ids: set[str]) -> None:
        if self.pool is None:
            return
        async with self.pool.connection() as conn:
            for workflow_id in sorted(workflow_ids):
                await forget_workflow_payloads(conn, namespace=self.client.namespace, workflow_id=workflow_id)

    async def _delete(self, workflow_id: str, run_id: str) -> int:
        request = DeleteWorkflowExecutionRequest(
            namespace=self.client.namespace,
            workflow_execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
        )
        try:
            await self.client.workflow_service.delete_workflow_execution(request)
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:  # deleted already (a retry, a second pass)
                return 0
            raise
        return 1


# -- Postgres and Qdrant ------------------------------------------------------------------------

# For each memory, the first rule (lowest position) whose agent and kind match it, if any.
DUE_MEMORIES = """
SELECT m.memory_id::text, rule.position - 1, rule.action, m.archived_at IS NULL
FROM aios_memories AS m
CROSS JOIN LATERAL (
    SELECT r.position, r.keep_days, r.action
    FROM unnest(%(agents)s::text[], %(kinds)s::text[], %(days)s::float8[], %(actions)s::text[])
         WITH ORDINALITY AS r(agent, kind, keep_days, action, position)
    WHERE (r.agent IS NULL OR r.agent = m.agent) AND (r.kind IS NULL OR r.kind = m.kind)
    ORDER BY r.position LIMIT 1
) AS rule
WHERE m.created_at < %(as_of)s - make_interval(secs => rule.keep_days * 86400)
  AND (rule.action = 'delete' OR m.archived_at IS NULL)
  AND m.memory_id::text > %(after)s
ORDER BY m.memory_id::text LIMIT %(limit)s
"""
ARCHIVE = """
UPDATE aios_memories SET archived_at = now()
WHERE memory_id = ANY(%s::uuid[]) AND archived_at IS NULL RETURNING memory_id::text
"""
# `live`: not archived, so its vector may still be in the store.
DELETE = """
DELETE FROM aios_memories WHERE memory_id = ANY(%s::uuid[]) RETURNING memory_id::text, archived_at IS NULL
"""
# Mirrors of runs that ended, for one rule: the agents of earlier rules are theirs.
DUE_RUN_MIRRORS = """
SELECT run_id FROM aios_runs
WHERE status = ANY(%(finished)s::text[]) AND updated_at < %(before)s
  AND (%(agent)s::text IS NULL OR agent = %(agent)s) AND NOT (agent = ANY(%(excluded)s::text[]))
"""
COUNT_RUN_MIRRORS = "SELECT count(*) FROM aios_runs WHERE run_id = ANY(%s::text[])"


@dataclass(frozen=True)
class _Due:
    memory_id: str
    rule: int
    action: str
    live: bool


@dataclass
class _MemoryTally:
    archived: Counter[int] = field(default_factory=Counter)
    deleted: Counter[int] = field(default_factory=Counter)
    vectors_deleted: int = 0
    vectors_pending: int = 0


class Retention:
    """Applies a retention policy once. `memory` deletes vectors now when it holds the store;
    `runs` reaches Temporal (without it, runs are left alone there and a note says so)."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        *,
        memory: MemoryService | None = None,
        runs: TemporalRuns | None = None,
        progress: Progress = lambda _: None,
    ) -> None:
        self.pool = pool
        self.memory = memory
        self.runs = runs
        self.progress = progress

    async def apply(
        self, policy: RetentionPolicy, *, as_of: datetime | None = None, dry_run: bool = False
    ) -> RetentionReport:
        moment = as_of or datetime.now(UTC)
        notes = [] if not policy.empty else ["no retention rules are configured (AIOS_RETENTION)"]
        tally = await self._memories(policy.memories, moment, dry_run)
        run_rules = [
            await self._runs(policy.runs, index, moment, dry_run) for index in range(len(policy.runs))
        ]
        if policy.runs and self.runs is None:
            notes.append("Temporal was not reached: only the run mirrors in Postgres were considered")
        return RetentionReport(
            as_of=moment,
            dry_run=dry_run,
            memory_rules=[
                MemoryRuleOutcome(
                    rule=describe_memory_rule(index, rule),
                    archived=tally.archived[index],
                    deleted=tally.deleted[index],
                )
                for index, rule in enumerate(policy.memories)
            ],
            run_rules=run_rules,
            vectors_deleted=tally.vectors_deleted,
            vectors_pending=tally.vectors_pending,
            expired_answers=0 if dry_run else await self._drop_expired_answers(),
            notes=notes,
        )

    async def _drop_expired_answers(self) -> int:
        """Expired answers are never served; this only gives their space back."""
        async with self.pool.connection() as conn:
            return await model_cache.drop_expired(conn)

    # -- memories -------------------------------------------------------------------------------

    async def _memories(
        self, rules: list[MemoryRetentionRule], as_of: datetime, dry_run: bool
    ) -> _MemoryTally:
        tally = _MemoryTally()
        if not rules:
            return tally
        after = ""
        while due := await self._due_memories(rules, as_of, after):
            after = due[-1].memory_id  # keyset paging: changed rows are behind, the rest ahead
            if dry_run:
                self._count(tally, due, {d.memory_id for d in due})
                tally.vectors_deleted += sum(d.live for d in due)
            else:
                await self._archive_or_delete(tally, due)
            self.progress(
                f"memories: {sum(tally.archived.values())} archived, {sum(tally.deleted.values())} deleted"
            )
        return tally

    async def _due_memories(
        self, rules: list[MemoryRetentionRule], as_of: datetime, after: str
    ) -> list[_Due]:
        params = {
            "agents": [rule.agent for rule in rules],
            "kinds": [rule.kind for rule in rules],
            "days": [rule.keep_days for rule in rules],
            "actions": [rule.then for rule in rules],
            "as_of": as_of,
            "after": after,
            "limit": BATCH,
        }
        async with self.pool.connection() as conn:
            cursor = await conn.execute(DUE_MEMORIES, params)
            return [_Due(*row) for row in await cursor.fetchall()]

    async def _archive_or_delete(self, tally: _MemoryTally, due: list[_Due]) -> None:
        """One batch in one transaction, tombstones included; then the vectors (now, or by the holder)."""
        async with self.pool.connection() as conn, conn.transaction():
            archived = await _rows(conn, ARCHIVE, [d.memory_id for d in due if d.action == "archive"])
            deleted = await _rows(conn, DELETE, [d.memory_id for d in due if d.action == "delete"])
            doomed = [row[0] for row in archived] + [memory_id for memory_id, live in deleted if live]
            await documents.add_tombstones(conn, doomed)
        self._count(tally, due, {row[0] for row in [*archived, *deleted]})
        dropped = await self.memory.drop_vectors(doomed) if self.memory is not None else 0
        tally.vectors_deleted += dropped
        tally.vectors_pending += len(doomed) - dropped

    @staticmethod
    def _count(tally: _MemoryTally, due: list[_Due], done: set[str]) -> None:
        for item in due:
            if item.memory_id in done:
                (tally.archived if item.action == "archive" else tally.deleted)[item.rule] += 1

    # -- runs -----------------------------------------------------------------------------------

    async def _runs(
        self, rules: list[RunRetentionRule], index: int, as_of: datetime, dry_run: bool
    ) -> RunRuleOutcome:
        rule = rules[index]
        before = as_of - timedelta(days=rule.keep_days)
        erased, still_going, executions = await self._erase_runs(rules, index, before, dry_run)
        excluded = [r.agent for r in rules[:index] if r.agent is not None]
        async with self.pool.connection() as conn:
            cursor = await conn.execute(
                DUE_RUN_MIRRORS,
                {"finished": FINISHED, "before": before, "agent": rule.agent, "excluded": excluded},
            )
            # Also the mirrors of runs Temporal closed by other means (terminated): they never
            # reached a finished status in the mirror.
            mirrors = sorted({*erased, *(row[0] for row in await cursor.fetchall())})
            counted = await _count_or_delete_mirrors(conn, mirrors, dry_run)
        return RunRuleOutcome(
            rule=describe_run_rule(index, rule),
            runs=len(erased),
            executions=executions,
            mirrors=counted,
            still_going=still_going,
        )

    async def _erase_runs(
        self, rules: list[RunRetentionRule], index: int, before: datetime, dry_run: bool
    ) -> tuple[list[str], int, int]:
        """(runs deleted from Temporal, runs kept because their workflow goes on, executions deleted)."""
        if self.runs is None:
            return [], 0, 0
        erased: list[str] = []
        still_going = executions = 0
        for workflow_id in await self.runs.finished_ids(finished_runs_query(rules, index, before)):
            outcome, count = await self.runs.erase_tree(workflow_id, dry_run=dry_run)
            if outcome == "deleted":
                erased.append(workflow_id)
            elif outcome == "running":
                still_going += 1
            executions += count
        return erased, still_going, executions


async def _rows(conn: AsyncConnection[Any], sql: str, ids: list[str]) -> list[tuple[Any, ...]]:
    if not ids:
        return []
    cursor = await conn.execute(sql, (ids,))
    return list(await cursor.fetchall())


async def _count_or_delete_mirrors(conn: AsyncConnection[Any], run_ids: list[str], dry_run: bool) -> int:
    if not dry_run:
        return await documents.delete_runs(conn, run_ids)
    cursor = await conn.execute(COUNT_RUN_MIRRORS, (run_ids,))
    row = await cursor.fetchone()
    return int(row[0]) if row else 0


# -- the daily schedule -------------------------------------------------------------------------


async def create_retention_schedule(
    client: Client,
    *,
    task_queue: str,
    request: RetentionRequest | None = None,
    every: timedelta = timedelta(days=1),
    schedule: str = RETENTION_SCHEDULE,
) -> ScheduleHandle:
    """The Schedule that starts the retention workflow every `every` (daily); an existing one is
    replaced. The default request names no policy: each pass applies its worker's AIOS_RETENTION."""
    wanted = Schedule(
        action=ScheduleActionStartWorkflow(
            RETENTION_WORKFLOW, request or RetentionRequest(), id=f"{schedule}/run", task_queue=task_queue
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )
    try:
        return await client.create_schedule(schedule, wanted)
    except ScheduleAlreadyRunningError:
        handle = client.get_schedule_handle(schedule)

        def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=wanted)

        await handle.update(replace)
        return handle
