"""The Python client of aios: what the CLI uses, and what a script imports.

client = await AiosClient.connect(load_settings())
started = await client.start_run("refund-desk", {"customer": "c-42", "amount": 80})
state = await client.state(started.run_id)
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

import psycopg
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.service import RPCError

from aios.approvals.bulk import BulkDecision, decide_every_waiting_run
from aios.approvals.links import Verdict
from aios.drift.check import compare_agent
from aios.drift.facts import agent_known
from aios.drift.schedule import DRIFT_SCHEDULE_ID, check_drift_now, drift_schedule
from aios.errors import (
    AgentNotFound,
    DecisionRefused,
    EventNotFound,
    ManifestInvalid,
    RunFailed,
    RunFinished,
    RunNotFound,
    RunStuck,
    WaitTimedOut,
)
from aios.events import outbox
from aios.events.bus import EventBus, new_event
from aios.events.subscriptions import apply_subscriptions
from aios.governance.admission import AGENT_RUN, MAX_INPUT_BYTES, Admission
from aios.governance.audit import AuditEntry, append
from aios.governance.rollouts import VersionDiff, diff_runs
from aios.governance.subjects import SubjectVault
from aios.inbox.collect import collect as collect_inbox
from aios.inbox.collect import waiting_for_decision
from aios.ledger import budget, effects, runs
from aios.models import PingInput, PingResult
from aios.models.drift import Comparison, DriftReport, DriftWindows
from aios.models.events import Published
from aios.models.inbox import InboxItem
from aios.models.manifest import AgentManifest
from aios.models.notify import NoticeOutcome
from aios.models.report import ValueReport
from aios.models.run import (
    DEFAULT_MAX_HISTORY_EVENTS,
    CacheSavings,
    Cause,
    CauseKind,
    Decision,
    DecisionChannel,
    DecisionOutcome,
    DecisionRequest,
    EffectResolution,
    ResumeRequest,
    RunState,
)
from aios.models.start import StartOutcome, StartRequest
from aios.notify.digest_schedule import DIGEST_SCHEDULE_ID, digest_schedule, send_digest_now
from aios.report.build import value_report
from aios.report.window import DEFAULT_SPAN
from aios.settings import Settings
from aios.temporal.connection import connect
from aios.temporal.search_attributes import AGENT_KEY, CAUSE_KEY, RISK_KEY, STATE_KEY, VERSION_KEY
from aios.temporal.server_errors import explain, postgres_unreachable, temporal_unreachable
from aios.triggers import schedules
from aios.triggers.schedules import Applied, ScheduleView

EFFECT_RESOLVED_SIGNAL = "effect_resolved"  # workflows/operator_interface.py handles it
# A chain of delegations is bounded by AIOS_DELEGATION_MAX_DEPTH; this bounds the walk up it.
MAX_LINEAGE = 50


@dataclass(frozen=True)
class RunStarted:
    run_id: str
    agent: str
    manifest_version: str
    mode: str
    shadow_run_id: str | None = None


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    agent: str
    state: str
    manifest_version: str
    highest_risk: str
    started: str
    temporal_status: str


@dataclass(frozen=True)
class EffectResolved:
    """What `resolve_effect` did: the ledger's new state, and whether the run was told."""

    effect_key: str
    run_id: str
    state: str
    run_told: bool
    run_note: str


@dataclass(frozen=True)
class EventSummary:
    event_id: str
    topic: str
    source: str
    received_at: datetime
    subscribers: int
    outcomes: str


class AiosClient:
    def __init__(self, client: Client, settings: Settings) -> None:
        self.admission = Admission(client, settings, self.connection)
        self.events_bus = EventBus(client, settings, self.connection)
        self.temporal = client
        self.settings = settings

    @classmethod
    async def connect(cls, settings: Settings) -> AiosClient:
        """Connect to Temporal with the project's converter, codec and tracing.

        Args:
            settings: where Temporal and Postgres are, and the payload keys.

        Returns:
            A client; raises TemporalUnavailable (one line, with the fix) when nobody answers.
        """
        try:
            return cls(await connect(settings), settings)
        except RuntimeError as error:  # the SDK's "Failed client connect: ..."
            raise temporal_unreachable(settings, error) from error

    @asynccontextmanager
    async def _boundary(self, run_id: str | None = None) -> AsyncIterator[None]:
        """Every server failure inside leaves as an AiosError saying what happened (server_errors.py)."""
        try:
            yield
        except RPCError as error:
            raise await explain(self.temporal, self.settings, run_id, error) from error
        except psycopg.OperationalError as error:
            raise postgres_unreachable(self.settings, error) from error

    def run_url(self, workflow_id: str) -> str:
        """The run's page in the Temporal Web UI.

        Args:
            workflow_id: the run's (or any workflow's) id.

        Returns:
            The URL, built from the settings' UI address and namespace.
        """
        return self.settings.run_url(workflow_id)

    # -- starting runs ------------------------------------------------------------------

    async def start_run(
        self,
        agent: str,
        task: dict[str, Any],
        *,
        manifest: AgentManifest | None = None,
        run_id: str | None = None,
        requested_by: str = "operator",
        task_queue: str | None = None,
        max_history_events: int = DEFAULT_MAX_HISTORY_EVENTS,
        reconcile_within: timedelta | None = None,
    ) -> RunStarted:
        """Admit and start a run; canary rollouts decide which manifest version it gets.

        Args:
            agent: the agent's name.
            task: the run's input, short fields (large material goes to memory).
            manifest: the manifest to run; by default the agent's, found in the manifests directory.
            run_id: the run's id; by default `<agent>-<random>`. A used id is refused.
            requested_by: who asked, for the audit trail.
            task_queue: the workers' task queue; by default the settings'.
            max_history_events: the history length at which the run continues as new.
            reconcile_within: how long a reconciler asks about an unknown effect before the operator must.

        Returns:
            The run's id, the manifest version and mode it got, and its shadow run's id, if any.
            Raises AdmissionRefused (over the daily budget), InputTooLarge, or a server error.
        """
        request = StartRequest(
            agent=agent,
            task=task,
            cause=Cause(ref=requested_by),
            run_id=run_id,
            manifest=manifest,
            task_queue=task_queue,
            max_history_events=max_history_events,
            reconcile_within=reconcile_within,
        )
        async with self._boundary():
            started = await self.admission.start(request)
        return RunStarted(
            started.run_id, agent, started.manifest_version, started.mode, started.shadow_run_id
        )

    async def start(self, request: StartRequest) -> StartOutcome:
        """Start a run through admission, with its cause: what schedules, events and scripts use.

        Args:
            request: the agent, its task, what started it, and optionally a run id derived from
                what fired (a redelivered trigger then finds it taken and starts nothing).

        Returns:
            `started`, `skipped` (a triggered start refused by budget or kill switch; recorded in
            the audit trail) or `duplicate` (the run id was taken). A person's refusal raises.
        """
        async with self._boundary():
            return await self.admission.start(request)

    # -- reading runs -------------------------------------------------------------------

    def handle(self, run_id: str) -> WorkflowHandle[Any, RunState]:
        """The Temporal handle of a run, for what this client does not wrap.

        Args:
            run_id: the run's workflow id.

        Returns:
            The handle; its calls raise Temporal's own errors, not AiosErrors.
        """
        return self.temporal.get_workflow_handle(run_id, result_type=RunState)

    async def state(self, run_id: str) -> RunState:
        """The run's state, from its `state` query.

        Args:
            run_id: the run's workflow id.

        Returns:
            The state; raises RunNotFound, RunStuck (its workflow task fails) or a server error.
        """
        async with self._boundary(run_id):
            state: RunState = await self.handle(run_id).query("state", result_type=RunState)
        return state

    async def lineage(self, run_id: str) -> list[str]:
        """What started the run, and what started that: its chain, read from each run's cause.

        Args:
            run_id: the run's workflow id.

        Returns:
            `[run_id, parent id, ..., "person:ann"]`: the run, each delegating run above it, and
            what started the first (a person, `schedule:NAME`, `event:ID`). A run that is gone
            (deleted by retention) ends the chain as `run:ID (gone)`. Raises RunNotFound.
        """
        chain, current = [run_id], run_id
        for _ in range(MAX_LINEAGE):
            try:
                async with self._boundary(current):
                    described = await self.handle(current).describe()
            except RunNotFound:
                if current == run_id:
                    raise
                chain[-1] = f"run:{current} (gone)"
                break
            # Runs started before lineage was recorded have no cause to show.
            cause = described.typed_search_attributes.get(CAUSE_KEY) or "(cause not recorded)"
            kind, _, ref = cause.partition(":")
            if kind != CauseKind.RUN.value:
                chain.append(cause)
                break
            chain.append(ref)
            current = ref
        return chain

    async def result(self, run_id: str, *, within: float | None = None) -> RunState:
        """Wait for the run to end.

        Args:
            run_id: the run's workflow id.
            within: seconds to wait at most (WaitTimedOut then; the run goes on).

        Returns:
            The final state; raises RunFailed when Temporal ended it (terminated, timed out, failed).
        """
        async with self._boundary(run_id):
            try:
                return await asyncio.wait_for(self.handle(run_id).result(), within)
            except TimeoutError as error:
                raise WaitTimedOut(f"run {run_id!r} did not end within {within:g}s; it goes on") from error
            except WorkflowFailureError as error:
                raise RunFailed(f"run {run_id!r} ended without finishing: {error.cause or error}") from error

    async def list_runs(
        self, *, agent: str | None = None, state: str | None = None, limit: int = 50
    ) -> list[RunSummary]:
        """The agent runs Temporal lists, in its order, read from their search attributes.

        Args:
            agent: only this agent's runs.
            state: only runs in this aios state (e.g. waiting_approval).
            limit: at most this many.

        Returns:
            One summary per run: id, agent, state, version, highest risk, start, Temporal status.
        """
        clauses = [f"WorkflowType = '{AGENT_RUN}'"]
        if agent:
            clauses.append(f"AiosAgent = '{_quote(agent)}'")
        if state:
            clauses.append(f"AiosState = '{_quote(state)}'")
        found = []
        async with self._boundary():
            executions = [e async for e in self.temporal.list_workflows(" AND ".join(clauses), limit=limit)]
        for execution in executions:
            attributes = execution.typed_search_attributes
            found.append(
                RunSummary(
                    run_id=execution.id,
                    agent=attributes.get(AGENT_KEY) or "",
                    state=attributes.get(STATE_KEY) or "",
                    manifest_version=attributes.get(VERSION_KEY) or "",
                    highest_risk=attributes.get(RISK_KEY) or "none",
                    started=execution.start_time.isoformat(timespec="seconds"),
                    temporal_status=execution.status.name if execution.status else "UNKNOWN",
                )
            )
        return found

    async def cache_savings(self, run_ids: list[str]) -> dict[str, CacheSavings]:
        """What the model-response cache saved each of these runs, from the budget ledger."""
        if not run_ids:
            return {}
        async with self.connection() as conn, self._boundary():
            return await budget.cache_savings(conn, run_ids)

    async def approvals(self) -> list[RunState]:
        """Every run waiting for a decision, with what it waits for (stuck runs left out).

        Returns:
            The waiting runs' states, oldest first as Temporal lists them.
        """
        waiting, _ = await self.waiting_runs()
        return waiting

    async def waiting_runs(self) -> tuple[list[RunState], list[RunStuck]]:
        """The runs waiting for a decision, and those listed as waiting whose workflow task fails.

        Returns:
            (waiting states, stuck runs), read like the inbox's approvals: from the runs'
            mirrors in Postgres and one visibility listing; a stuck run is reported apart.
        """
        async with self.connection() as conn, self._boundary():
            return await waiting_for_decision(conn, self.temporal)

    async def inbox(self) -> list[InboxItem]:
        """Every item that needs a person, oldest first, each with its settling command.

        Returns:
            Approvals, budget pauses, runs waiting for the operator, unknown effects, open
            breakers and stuck runs (aios/inbox/collect.py), read from the Postgres mirrors
            and Temporal's visibility.
        """
        async with self.connection() as conn, self._boundary():
            return await collect_inbox(conn, self.temporal, SubjectVault.for_settings(self.settings))

    # -- operating on runs --------------------------------------------------------------

    async def decide(
        self,
        run_id: str,
        verdict: str,
        *,
        approver: str,
        note: str = "",
        step: int | None = None,
        channel: DecisionChannel = "api",
        token: str | None = None,
    ) -> DecisionOutcome:
        """Approve or reject through the update: the answer says at once whether it counted.

        Args:
            run_id: the run's workflow id.
            verdict: "approve" or "reject".
            approver: who decides, for the audit trail.
            note: why, for the audit trail.
            step: the step decided on; a decision for another step is refused.
            channel: how the decision came, for the audit trail (cli, link, api).
            token: a signed link's token (aios/approvals/links.py): the run checks it, and the
                decision counts as verified (policy.verified_over).

        Returns:
            The run's answer, accepted. Raises DecisionRefused when it did not count.
        """
        if verdict not in ("approve", "reject"):
            raise ValueError(f"verdict must be 'approve' or 'reject', not {verdict!r}")
        decision = Decision(approver=approver, note=note, step=step, channel=channel, token=token)
        request = DecisionRequest(verdict=verdict, decision=decision)
        try:
            outcome: DecisionOutcome = await self.handle(run_id).execute_update(
                "decide", request, result_type=DecisionOutcome
            )
        except WorkflowUpdateFailedError as error:
            cause = error.cause
            raise DecisionRefused(str(cause.message if hasattr(cause, "message") else cause)) from error
        except RPCError as error:
            problem = await explain(self.temporal, self.settings, run_id, error)
            raise (DecisionRefused(str(problem)) if isinstance(problem, RunFinished) else problem) from error
        if not outcome.accepted:
            raise DecisionRefused(outcome.reason)
        return outcome

    async def decide_waiting(
        self, verdict: Verdict, *, approver: str, note: str = "", agent: str | None = None
    ) -> BulkDecision:
        """Approve or reject every run waiting for `approver` (of `agent`), all at once.

        Each run gets a signal for its pending step (aios/approvals/bulk.py): durable once
        sent, judged by the run when it wakes; `aios approvals` shows what is still waiting.

        Returns:
            The runs the decision was sent to, those waiting for other approvers, and those
            that ended meanwhile.
        """
        waiting, _stuck = await self.waiting_runs()
        async with self._boundary():
            return await decide_every_waiting_run(
                self.temporal, waiting, verdict, approver=approver, note=note, agent=agent
            )

    async def signal_decision(self, run_id: str, verdict: str, payload: dict[str, Any]) -> None:
        """What the Web UI's signal form does: send the raw JSON; the run validates it.

        Args:
            run_id: the run's workflow id.
            verdict: the signal's name ("approve" or "reject").
            payload: the decision as the form sends it; a malformed one is refused by the run.
        """
        await self._signal(run_id, verdict, payload)

    async def pause(self, run_id: str, *, by: str = "operator", reason: str = "") -> None:
        """Ask a run to pause before its next step (a signal: it is not waited for).

        Args:
            run_id: the run's workflow id.
            by: who pauses it, for the audit trail.
            reason: why, for the audit trail.
        """
        await self._signal(run_id, "pause", {"by": by, "reason": reason})

    async def resume(
        self,
        run_id: str,
        *,
        by: str = "operator",
        extra_tokens: int = 0,
        extra_cost: float = 0,
        override_day: bool = False,
    ) -> None:
        """Resume a paused run, optionally with more budget (a signal: it is not waited for).

        Args:
            run_id: the run's workflow id.
            by: who resumes it, for the audit trail.
            extra_tokens: tokens added to the run's own cap.
            extra_cost: dollars added to the run's own cap.
            override_day: let the run go on past its agent's daily cap today.
        """
        request = ResumeRequest(
            by=by, extra_tokens=extra_tokens, extra_cost=extra_cost, override_day=override_day
        )
        await self._signal(run_id, "resume", request.model_dump(mode="json"))

    async def resolve_effect(
        self,
        effect_key: str,
        *,
        applied: bool,
        by: str,
        note: str = "",
        response: dict[str, Any] | None = None,
    ) -> EffectResolved:
        """Settle an effect whose outcome is unknown: the ledger and an audit row in one
        transaction, then a nudge to its run, which reads the outcome from the ledger.

        The ledger is written whatever became of the run: a run that has ended (or is gone)
        still gets its effect settled and recorded; only the nudge has no one to reach.

        Args:
            effect_key: the effect's key in the ledger (`aios effects` lists them).
            applied: whether the effect happened, as the operator found out.
            by: who says so, for the audit trail.
            note: how they know, for the audit trail.
            response: the service's answer to record for an applied effect (e.g. the charge's id).

        Returns:
            The effect's new ledger state, its run, and whether the run was told.
            Raises EffectNotInDoubt when the ledger does not call the effect unknown.
        """
        outcome = "applied" if applied else "not_applied"
        async with await self._db() as conn, conn.transaction():
            settled = await effects.settle_by_operator(
                conn,
                key=effect_key,
                applied=applied,
                by=by,
                note=note,
                response=response,
                vault=SubjectVault.for_settings(self.settings),
            )
            entry = AuditEntry(
                event_key=f"{effect_key}/resolved-by-operator",
                run_id=settled.run_id,
                step="effect",
                actor=by,
                action="resolve_effect",
                outcome=outcome,
                rationale=note,
                detail={"effect_key": effect_key, "action": settled.action, "ledger": settled.state},
                sealed_with=settled.sealed_with,  # the note may name the subject: forget must reach it
            )
            await append(conn, [entry])
        resolution = EffectResolution(effect_key=effect_key, outcome=outcome, by=by, note=note)
        try:
            await self._signal(settled.run_id, EFFECT_RESOLVED_SIGNAL, resolution.model_dump(mode="json"))
        except (RunNotFound, RunFinished) as gone:
            return EffectResolved(effect_key, settled.run_id, settled.state, False, str(gone))
        return EffectResolved(effect_key, settled.run_id, settled.state, True, "the run was told")

    async def cancel(self, run_id: str) -> None:
        """Ask Temporal to cancel a run; it compensates its finished steps and ends cancelled.

        Args:
            run_id: the run's workflow id.
        """
        async with self._boundary(run_id):
            await self.handle(run_id).cancel()

    async def pause_agent(self, agent: str, *, by: str = "operator") -> list[str]:
        """The kill switch: pause every running run of the agent, and the runs started later.

        Args:
            agent: the agent's name.
            by: who pauses it, for the audit trail.

        Returns:
            The ids of the running runs that were told to pause.
        """
        await self._set_agent_paused(agent, True, by)
        return await self._signal_agent_runs(agent, "pause", {"by": by, "reason": "agent paused"})

    async def resume_agent(self, agent: str, *, by: str = "operator") -> list[str]:
        """Lift the kill switch: new runs start running, and the running runs are resumed.

        Args:
            agent: the agent's name.
            by: who resumes it, for the audit trail.

        Returns:
            The ids of the running runs that were told to resume.
        """
        await self._set_agent_paused(agent, False, by)
        return await self._signal_agent_runs(agent, "resume", {"by": by})

    async def _set_agent_paused(self, agent: str, paused: bool, by: str) -> None:
        async with await self._db() as conn:
            await runs.set_agent_paused(conn, agent=agent, paused=paused, by=by)

    async def _signal_agent_runs(self, agent: str, signal: str, payload: dict[str, Any]) -> list[str]:
        query = (
            f"WorkflowType = '{AGENT_RUN}' AND AiosAgent = '{_quote(agent)}' AND ExecutionStatus = 'Running'"
        )
        signalled = []
        async for execution in self.temporal.list_workflows(query):
            await self._signal(execution.id, signal, payload)
            signalled.append(execution.id)
        return signalled

    async def _signal(self, run_id: str, signal: str, payload: dict[str, Any]) -> None:
        async with self._boundary(run_id):
            await self.temporal.get_workflow_handle(run_id).signal(signal, payload)

    # -- canary rollouts ----------------------------------------------------------------

    async def start_canary(
        self, candidate: AgentManifest, *, share: float = 0.0, shadow: bool = False
    ) -> None:
        """A candidate version takes `share` of new runs (live), or shadows every run (shadow).

        Args:
            candidate: the candidate manifest (same agent name, another version).
            share: the part of new runs, 0 to 1, that run the candidate live.
            shadow: run the candidate beside every run instead, its actions never executed.
        """
        if not 0 <= share <= 1:
            raise ValueError(f"share must be between 0 and 1, got {share}")
        async with await self._db() as conn:
            await runs.set_rollout(
                conn, candidate=candidate, share=share, mode="shadow" if shadow else "live"
            )

    async def end_canary(self, agent: str) -> bool:
        """End the agent's rollout: new runs get its own manifest again.

        Args:
            agent: the agent's name.

        Returns:
            True when a rollout was ended, False when there was none.
        """
        async with await self._db() as conn:
            return await runs.end_rollout(conn, agent)

    async def version_diff(self, agent: str, *, limit: int = 200) -> VersionDiff:
        """How the agent's recent runs compare, version against version.

        Args:
            agent: the agent's name.
            limit: how many recent runs to compare at most.

        Returns:
            The runs per version, the actions each version proposed (with their grades),
            and the live/shadow pairs whose proposals differ.
        """
        async with await self._db() as conn:
            return diff_runs(await runs.recent_runs(conn, agent, limit))

    async def report(
        self,
        *,
        since: datetime | None = None,
        agent: str | None = None,
        minutes_per_touch: float | None = None,
        manifests: list[AgentManifest] | None = None,
    ) -> ValueReport:
        """What automation is worth, per agent: live runs, outcomes, a person's touches, the
        minutes saved net of those touches, tokens and cost (README, "What automation is worth").

        Args:
            since: count the runs started from then on (default: the last 7 days).
            agent: only this agent's runs.
            minutes_per_touch: what one touch costs a person (default: AIOS_MINUTES_PER_TOUCH).
            manifests: whose `value:` prices the runs; by default the agents directory's
                (a broken manifest is skipped: its agent then saves 0 minutes, as one without).

        Returns:
            One row per agent with live runs in the window, by name, and their total.
        """
        start = since if since is not None else datetime.now(UTC) - DEFAULT_SPAN
        per_touch = minutes_per_touch if minutes_per_touch is not None else self.settings.minutes_per_touch
        valued = manifests if manifests is not None else _readable_manifests()
        async with await self._db() as conn:
            return await value_report(
                conn, since=start, minutes_per_touch=per_touch, manifests=valued, agent=agent
            )

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A connection to the project's Postgres for one use, closed after."""
        async with await self._db() as conn:
            yield conn

    async def _db(self) -> psycopg.AsyncConnection[Any]:
        async with self._boundary():
            return await psycopg.AsyncConnection.connect(self.settings.resolved_database_url, autocommit=True)

    # -- schedules (aios/triggers/schedules.py) ---------------------------------------------

    async def apply(self, manifests: list[AgentManifest] | None = None) -> Applied:
        """Make the agents' triggers real: Temporal Schedules and event subscriptions.

        Args:
            manifests: the agents to apply, whose other triggers are removed; by default every
                manifest in the agents directory, and the triggers of agents without one go too.

        Returns:
            The schedules and subscriptions set and removed.
        """
        every_agent = manifests is None
        chosen = _valid_manifests() if manifests is None else manifests
        async with self._boundary():
            applied = await schedules.apply_schedules(
                self.temporal, chosen, self.settings.task_queue, every_agent=every_agent
            )
            async with self.connection() as conn:
                subscribed, unsubscribed = await apply_subscriptions(conn, chosen, every_agent=every_agent)
        return dataclasses.replace(applied, subscribed=subscribed, unsubscribed=unsubscribed)

    async def schedules(self) -> list[ScheduleView]:
        """Every schedule aios owns: its spec, paused state, next and recent firings."""
        async with self._boundary():
            return await schedules.describe_schedules(self.temporal)

    async def trigger_schedule(self, name: str) -> None:
        """Fire a schedule now (`agent/schedule`); the firing goes through admission like any other."""
        async with self._boundary():
            await schedules.trigger_schedule(self.temporal, schedules.resolve_schedule_id(name))

    async def pause_schedule(self, name: str, *, paused: bool = True, note: str = "") -> None:
        """Pause (or, with `paused=False`, resume) a schedule; the note says why, in the Web UI too."""
        identifier = schedules.resolve_schedule_id(name)
        async with self._boundary():
            await schedules.set_schedule_paused(self.temporal, identifier, paused, note or "aios schedules")

    # -- the daily digest (aios/notify/digest.py) --------------------------------------------------

    async def schedule_digest(self, recipients: list[str], *, at: time, timezone: str = "UTC") -> bool:
        """Send the digest to these approvers every day at `at` (True: the Schedule is new)."""
        schedule = digest_schedule(self.settings.task_queue, at, timezone, recipients)
        async with self._boundary():
            return await schedules.put_schedule(self.temporal, DIGEST_SCHEDULE_ID, schedule)

    async def unschedule_digest(self) -> bool:
        """Stop the daily digest (False: none was scheduled)."""
        async with self._boundary():
            return await schedules.drop_schedule(self.temporal, DIGEST_SCHEDULE_ID)

    async def send_digest(self, recipients: list[str]) -> NoticeOutcome:
        """Send today's digest now, through a worker; sent already today, it goes out no more."""
        async with self._boundary():
            return await send_digest_now(self.temporal, self.settings.task_queue, recipients)

    # -- drift (aios/drift/) -------------------------------------------------------------------

    async def drift(
        self, agent: str, *, windows: DriftWindows | None = None, as_of: datetime | None = None
    ) -> list[Comparison]:
        """How the agent's versions ran in the last window against their baseline (and a live
        canary against the live version); read from the run mirrors, nothing is recorded.

        Raises:
            AgentNotFound: no manifest and no recorded run has this name.
        """
        chosen = windows or DriftWindows()
        async with self._boundary(), self.connection() as conn:
            if not await agent_known(conn, agent) and not _has_manifest(agent):
                raise AgentNotFound(
                    f"no agent named {agent!r}: no manifest and no recorded run; `aios agents list` "
                    "shows the agents"
                )
            return await compare_agent(conn, agent, as_of=as_of or datetime.now(UTC), windows=chosen)

    async def schedule_drift(
        self, *, at: time, timezone: str = "UTC", windows: DriftWindows | None = None
    ) -> bool:
        """Check every agent for drift every day at `at` (True: the Schedule is new)."""
        schedule = drift_schedule(self.settings.task_queue, at, timezone, windows or DriftWindows())
        async with self._boundary():
            return await schedules.put_schedule(self.temporal, DRIFT_SCHEDULE_ID, schedule)

    async def unschedule_drift(self) -> bool:
        """Stop the daily drift check (False: none was scheduled)."""
        async with self._boundary():
            return await schedules.drop_schedule(self.temporal, DRIFT_SCHEDULE_ID)

    async def check_drift(self, windows: DriftWindows | None = None) -> DriftReport:
        """Run the drift check now, through a worker, recording alarms (once per version a day)."""
        async with self._boundary():
            return await check_drift_now(self.temporal, self.settings.task_queue, windows or DriftWindows())

    # -- events (aios/events/) -----------------------------------------------------------------

    async def send_event(
        self, topic: str, data: dict[str, Any], *, event_id: str | None = None, source: str = "client"
    ) -> Published:
        """Keep an event and start each subscriber's run once, whatever the number of deliveries.

        Args:
            topic: what happened, e.g. `refund.requested`.
            data: the event's fields; each subscriber maps them to its run's task.
            event_id: the sender's id, the de-duplication key; by default a new one.
            source: who sends it, for `aios events show`.

        Returns:
            The event as kept (the first delivery's, for a redelivery) and each subscriber's delivery.
        """
        event = new_event(event_id or f"evt-{uuid.uuid4().hex[:16]}", topic, data, source)
        async with self._boundary():
            return await self.events_bus.publish(event)

    async def events(self, *, topic: str | None = None, limit: int = 50) -> list[EventSummary]:
        """Recent events, newest first, with how many subscribers each reached."""
        async with self._boundary(), self.connection() as conn:
            rows = await outbox.list_events(conn, topic=topic, limit=limit)
        return [EventSummary(*row) for row in rows]

    async def event(self, event_id: str) -> Published:
        """An event, and each subscriber's delivery with its run's last recorded status."""
        async with self._boundary(), self.connection() as conn:
            kept = await outbox.get_event(conn, event_id)
            if kept is None:
                raise EventNotFound(f"no event {event_id!r}: `aios events list` shows the recent ones")
            delivered = await outbox.deliveries(conn, event_id)
        return Published(event=kept[0], new=False, deliveries=delivered, received_at=kept[1])

    # -- the walking skeleton -----------------------------------------------------------

    async def start_ping(
        self, message: str, *, actor: str = "operator", task_queue: str | None = None
    ) -> WorkflowHandle[Any, PingResult]:
        """Start the walking skeleton's Ping workflow, which writes one audit row.

        Args:
            message: what to record (its digest goes to the audit row).
            actor: who pings, for the audit trail.
            task_queue: the workers' task queue; by default the settings'.

        Returns:
            The workflow's handle; its result says which audit row was written.
        """
        # Started by name so the client does not import workflow code (imports point one way).
        return await self.temporal.start_workflow(
            "Ping",
            PingInput(message=message, actor=actor),
            result_type=PingResult,
            id=f"ping-{uuid.uuid4().hex[:12]}",
            task_queue=task_queue or self.settings.task_queue,
            static_summary=f"Ping: {message[:80]}",
        )

    async def ping(self, message: str, *, actor: str = "operator") -> PingResult:
        """Ping through a worker and wait for it: the stack works end to end.

        Args:
            message: what to record.
            actor: who pings, for the audit trail.

        Returns:
            The Ping workflow's result: its id, the message and the audit row's id.
        """
        handle = await self.start_ping(message, actor=actor)
        return await handle.result()


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


__all__ = [
    "MAX_INPUT_BYTES",
    "AiosClient",
    "EffectResolved",
    "RunStarted",
    "RunSummary",
    "WorkflowExecutionStatus",
]


def _valid_manifests() -> list[AgentManifest]:
    """Every manifest of the agents directory; a broken one stops the apply (it says which)."""
    from aios.governance.manifests import list_manifests

    loaded = []
    for _path, manifest in list_manifests():
        if isinstance(manifest, Exception):
            raise manifest
        loaded.append(manifest)
    return loaded


def _has_manifest(agent: str) -> bool:
    from aios.governance.manifests import find_manifest

    try:
        find_manifest(agent)
    except ManifestInvalid:
        return False
    return True


def _readable_manifests() -> list[AgentManifest]:
    """The agents directory's valid manifests; none when there is no agents directory here."""
    from aios.governance.manifests import list_manifests

    try:
        listed = list_manifests()
    except ManifestInvalid:  # no agents directory: every agent saves 0 minutes, and says so
        return []
    return [manifest for _path, manifest in listed if isinstance(manifest, AgentManifest)]
