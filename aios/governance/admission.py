"""Admission: the one path from "start a run" to a started AgentRun workflow.

Every way a run can start comes here: `aios run` and `AiosClient.start_run` (cause: a
person), a Schedule's firing and an event (through the `admission.start` activity of the
dispatcher workflow), a delegating run. The same checks apply to all of them:

- the agent's daily budget: over it, nothing starts;
- the kill switch: a paused agent's run starts paused when a person asked for it (she sees it
  waiting and resumes it); a triggered one is skipped and recorded, as nobody would resume it;
- the canary: a rollout's share of runs gets the candidate manifest, or a shadow run beside;
- the input's size, measured encrypted, before anything starts.

A person is told why nothing started (AdmissionRefused, InputTooLarge). A trigger is not
waiting for an answer: its refusals come back as a `skipped` outcome, written to the audit
trail under the trigger's lineage, so `aios audit` shows each firing that started nothing.
A trigger's run id is derived from what fired (an event id, a schedule's fire time): a second
delivery finds the id taken and is a `duplicate`, so nothing starts twice.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import psycopg
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from aios.errors import AdmissionRefused, InputTooLarge, ManifestInvalid
from aios.governance.audit import AuditEntry, append
from aios.ledger import budget, runs
from aios.models.manifest import AgentManifest
from aios.models.run import Cause, RunInput, RunState
from aios.models.start import Outcome, StartOutcome, StartRequest
from aios.settings import Settings
from aios.temporal.search_attributes import run_attributes

AGENT_RUN = "AgentRun"
# Temporal refuses a payload over 2 MiB (`limit.blobSize.error`, on the dev server as on Cloud)
# with a bare "Blob data size exceeds limit". Offloading large payloads to Postgres lifts that,
# but the task still goes whole to the model on every turn, where megabytes overflow any context
# window. So a run's input stays under this, measured encrypted and before offloading, and the
# error says what to do instead.
MAX_INPUT_BYTES = 2_000_000

# A database connection for one use: a pool's `connection`, or a fresh one the caller closes.
Connection = Callable[[], AbstractAsyncContextManager[psycopg.AsyncConnection[Any]]]


@dataclass(frozen=True)
class Admitted:
    """A run admission let through: its id, its input, and its shadow's in a shadow rollout."""

    run_id: str
    live: RunInput
    shadow: RunInput | None


class Admission:
    """Admits and starts runs against one Temporal client and one database."""

    def __init__(self, temporal: Client, settings: Settings, connection: Connection) -> None:
        self.temporal = temporal
        self.settings = settings
        self._connection = connection

    async def start(self, request: StartRequest) -> StartOutcome:
        """Admit `request` and start its run (and its shadow, in a shadow rollout).

        Returns the outcome; raises AdmissionRefused or InputTooLarge only for a person's request.
        """
        run_id = request.run_id or f"{request.agent}-{uuid.uuid4().hex[:10]}"
        try:
            admitted = await self.admit(request.model_copy(update={"run_id": run_id}))
        except (AdmissionRefused, InputTooLarge, ManifestInvalid) as refused:
            if not request.cause.triggered:
                raise
            return await self._skipped(request, run_id, str(refused))
        live, shadow = admitted.live, admitted.shadow
        if not await self.start_workflow(live, run_id, request.task_queue):
            return self._outcome(request, run_id, live, outcome="duplicate", reason="the run id is taken")
        shadow_id = None
        if shadow is not None:
            shadow_id = shadow_run_id(run_id)
            await self.start_workflow(shadow, shadow_id, request.task_queue)
        return self._outcome(request, run_id, live, outcome="started", shadow_run_id=shadow_id)

    async def admit(self, request: StartRequest) -> Admitted:
        """The run's input (and its shadow's) once admitted, started by nobody yet: a delegating
        run starts its child itself, as a child workflow. Raises AdmissionRefused, InputTooLarge
        or ManifestInvalid (no such agent), whatever the cause."""
        manifest = request.manifest or _find_manifest(request.agent)
        run_id = request.run_id or f"{request.agent}-{uuid.uuid4().hex[:10]}"
        paused, rollout = await self._admit(manifest)
        if request.shadow_only:
            rollout = None  # a check tests one version: no canary picks another, no shadow beside
        if paused and request.cause.triggered:
            raise AdmissionRefused(f"agent {manifest.name!r} is paused (kill switch); no run was started")
        live, shadow = self._inputs(request, manifest, run_id, paused, rollout)
        # Both checked before either starts: a refused shadow must not leave its live run behind.
        for checked in (live, shadow):
            if checked is not None:
                await self._check_size(checked)
        return Admitted(run_id=run_id, live=live, shadow=shadow)

    async def _admit(self, manifest: AgentManifest) -> tuple[bool, tuple[AgentManifest, float, str] | None]:
        async with self._connection() as conn:
            tokens, cost = await budget.day_spend(conn, manifest.name)
            caps, model = manifest.budget, manifest.model
            # Refused when not even one turn's reservation would fit under today's caps.
            turn_tokens = model.tokens_per_turn_estimate
            turn_cost = turn_tokens / 1000 * model.cost_per_1k_tokens
            if tokens + turn_tokens > caps.tokens_per_day or cost + turn_cost > caps.cost_per_day:
                raise AdmissionRefused(
                    f"agent {manifest.name!r} has used its daily budget ({tokens} of {caps.tokens_per_day} "
                    f"tokens, ${cost:.4f} of ${caps.cost_per_day:.2f}); no run was started. Raise "
                    f"budget.tokens_per_day / budget.cost_per_day in its manifest, or wait until 00:00 UTC."
                )
            return await runs.agent_paused(conn, manifest.name), await runs.get_rollout(conn, manifest.name)

    @staticmethod
    def _inputs(
        request: StartRequest,
        manifest: AgentManifest,
        run_id: str,
        paused: bool,
        rollout: tuple[AgentManifest, float, str] | None,
    ) -> tuple[RunInput, RunInput | None]:
        """The live run's input and, in a shadow rollout, its shadow's."""
        chosen, shadow = manifest, None
        if rollout is not None:
            candidate, share, mode = rollout
            if mode == "live" and bucket(run_id) < share:
                chosen = candidate
            elif mode == "shadow":
                shadow = candidate
        live = RunInput(
            agent=request.agent,
            manifest=chosen,
            task=request.task,
            mode="shadow" if request.shadow_only else chosen.mode,
            start_paused=paused,
            requested_by=request.cause.label if request.cause.triggered else request.cause.ref,
            cause=request.cause,
            max_history_events=request.max_history_events,
            reconcile_within=request.reconcile_within,
            delegation=request.delegation,
        )
        if shadow is None:
            return live, None
        return live, live.model_copy(update={"manifest": shadow, "mode": "shadow", "paired_with": run_id})

    async def _check_size(self, request: RunInput) -> None:
        """Refuse an oversized input before anything starts; measured converted and encrypted."""
        converter = self.temporal.data_converter
        # Not `converter.encode`: that would also write a large payload to the payload store.
        payloads = converter.payload_converter.to_payloads([request])
        if converter.payload_codec is not None:
            payloads = await converter.payload_codec.encode(payloads)
        size = sum(payload.ByteSize() for payload in payloads)
        if size > MAX_INPUT_BYTES:
            raise InputTooLarge(_too_large(request, size))

    async def start_workflow(self, request: RunInput, run_id: str, task_queue: str | None) -> bool:
        """Start the run; False when its id is taken (a trigger's redelivery)."""
        try:
            await self.temporal.start_workflow(
                AGENT_RUN,
                request,
                id=run_id,
                task_queue=task_queue or self.settings.task_queue,
                search_attributes=run_attributes(request),
                static_summary=summary(request),
                result_type=RunState,
                # Effect keys derive from the run id: a reused id would find its effects "done".
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
        except WorkflowAlreadyStartedError:
            if request.cause is None or not request.cause.triggered:
                raise
            return False
        return True

    async def _skipped(self, request: StartRequest, run_id: str, reason: str) -> StartOutcome:
        """Record a trigger's firing that started nothing, once per run id."""
        async with self._connection() as conn:
            await append(conn, [skipped_entry(run_id, request.agent, request.cause, reason)])
        return StartOutcome(
            outcome="skipped", run_id=run_id, agent=request.agent, cause=request.cause, reason=reason
        )

    @staticmethod
    def _outcome(
        request: StartRequest,
        run_id: str,
        live: RunInput,
        *,
        outcome: Outcome,
        reason: str = "",
        shadow_run_id: str | None = None,
    ) -> StartOutcome:
        return StartOutcome(
            outcome=outcome,
            run_id=run_id,
            agent=request.agent,
            cause=request.cause,
            manifest_version=live.manifest.version,
            mode=live.mode,
            shadow_run_id=shadow_run_id,
            reason=reason,
        )


def summary(request: RunInput) -> str:
    """The run's one line in the Web UI: agent, mode and the start of its task."""
    return f"{request.agent} ({request.mode}): {_summarize(request.task)}"[:200]


def shadow_run_id(run_id: str) -> str:
    return f"{run_id}-shadow"


def skipped_entry(run_id: str, agent: str, cause: Cause, reason: str, **detail: Any) -> AuditEntry:
    """The audit row of a trigger that started nothing: one per run id, however often it fires."""
    return AuditEntry(
        event_key=f"{run_id}:admission:skipped",
        run_id=run_id,
        step="admission",
        actor=cause.label,
        action="start",
        outcome="skipped",
        rationale=reason,
        detail={"agent": agent, "cause": cause.model_dump(mode="json"), **detail},
    )


def _find_manifest(agent: str) -> AgentManifest:
    from aios.governance.manifests import find_manifest

    return find_manifest(agent)


def bucket(run_id: str) -> float:
    """A stable number in [0, 1) per run id: the same run always lands on the same side."""
    return int(hashlib.sha256(run_id.encode()).hexdigest()[:8], 16) / 0x1_0000_0000


def _summarize(task: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in list(task.items())[:4]) or "(no input)"


def _too_large(request: RunInput, size: int) -> str:
    """What makes the input too big (the largest field, and its largest key), and the fix."""
    sizes = {name: _json_size(value) for name, value in request.model_dump(mode="json").items()}
    largest = max(sizes, key=sizes.__getitem__)
    where = f"`{largest}` ({sizes[largest]:,} bytes"
    if largest == "task" and request.task:
        key = max(request.task, key=lambda name: _json_size(request.task[name]))
        where += f", mostly `task.{key}`"
    subject = request.task.get("subject") or request.task.get("customer") or "SUBJECT"
    return (
        f"the run's input is {size:,} bytes once encoded, over the limit of {MAX_INPUT_BYTES:,} bytes "
        f"for a run's input; the largest field is {where}). No run was started. "
        f"Keep the task to short fields: put large material in memory, in pieces, with "
        f"`aios memory remember --agent {request.agent} --subject {subject} TEXT` (the run recalls "
        f"what is remembered about its subject), or store it elsewhere and pass a reference (an id or URL)."
    )


def _json_size(value: Any) -> int:
    return len(json.dumps(value, default=str).encode())
