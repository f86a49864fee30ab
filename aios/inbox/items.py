"""One `InboxItem` per thing that waits for a person: pure functions, tested one kind each."""

from __future__ import annotations

import shlex
from datetime import UTC, datetime
from typing import Any

from aios.errors import RunStuck
from aios.models.inbox import InboxItem, InboxKind, WebUiAction
from aios.models.run import PendingApproval, Proposal, RunState

# What the inbox suggests granting a run paused on a per-run cap (the operator adjusts it).
EXTRA_TOKENS = 10_000
NOTICE_IN_DOUBT = (
    "a worker died while sending this notification, which is never sent twice: ask the "
    "recipient (or check the mail server) whether it arrived, then settle it"
)
EXTRA_COST = 1.0


def approval_item(state: RunState, updated_at: datetime) -> InboxItem | None:
    """A step waiting for a verdict: everything the approver needs, and the command."""
    pending = state.pending_approval
    if pending is None:
        return None
    proposal = _proposal(state, pending.step)
    approver = pending.approvers[0]
    run = shlex.quote(state.run_id)
    params = pending.params if pending.params is not None else (proposal.proposed.params if proposal else {})
    return InboxItem(
        kind=InboxKind.APPROVAL,
        key=f"approval:{state.run_id}:{pending.step}",
        since=pending.since,
        title=f"{state.agent} asks to {pending.action}" + _amount_text(pending.amount),
        agent=state.agent,
        run_id=state.run_id,
        context={
            "step": pending.step,
            "action": pending.action,
            "params": params,
            "amount": pending.amount,
            "rationale": pending.rationale,
            "confidence": pending.confidence,
            "grade": proposal.grade.value if proposal else "needs_approval",
            "rule": pending.grade_reason or (proposal.grade_reason if proposal else ""),
            "recalled": list(state.recalled),
            "approvers": list(pending.approvers),
            "reminded": pending.reminded,
            "escalated": pending.escalated,
            "deadlines": _deadlines(pending),
            "refused_decisions": len(state.refused_decisions),
        },
        suggested=f"read the rationale, then approve or reject step {pending.step} as one of "
        f"{', '.join(pending.approvers)}",
        command=f"aios approve {run} --step {pending.step} --as {shlex.quote(approver)}",
        alternatives=[f"aios reject {run} --step {pending.step} --as {shlex.quote(approver)} --note WHY"],
        web_ui=WebUiAction(
            kind="update",
            name="decide",
            json_input={"verdict": "approve", "decision": {"approver": approver, "step": pending.step}},
        ),
    )


def budget_item(state: RunState, updated_at: datetime, reason: str, caps: dict[str, Any]) -> InboxItem:
    """A run paused on a budget cap: what it spent against what it may spend."""
    run = shlex.quote(state.run_id)
    daily = state.paused_until is not None
    context: dict[str, Any] = {
        "reason": reason,
        "tokens_spent": state.tokens_spent,
        "cost_spent": state.cost_spent,
        **caps,
    }
    if daily:
        context["resumes_by_itself_at"] = _iso(state.paused_until)
    extra = "--override-day" if daily else f"--extra-tokens {EXTRA_TOKENS} --extra-cost {EXTRA_COST:g}"
    return InboxItem(
        kind=InboxKind.BUDGET_PAUSE,
        key=f"budget:{state.run_id}",
        since=updated_at,
        title=f"{state.agent} paused on its budget" + (f": {reason}" if reason else ""),
        agent=state.agent,
        run_id=state.run_id,
        context=context,
        suggested="grant this run more budget, or let it wait"
        + (" for the next budget day" if daily else " (or cancel it)"),
        command=f"aios resume {run} {extra}",
        alternatives=[f"aios cancel {run}"],
        web_ui=WebUiAction(
            kind="signal",
            name="resume",
            json_input={"by": "operator", "override_day": True}
            if daily
            else {"by": "operator", "extra_tokens": EXTRA_TOKENS, "extra_cost": EXTRA_COST},
        ),
    )


def needs_operator_item(state: RunState, updated_at: datetime) -> InboxItem | None:
    """A run that waits for a person to settle an effect the reconciler could not."""
    doubt = state.awaiting_operator
    if doubt is None:
        return None
    key = shlex.quote(doubt.effect_key)
    return InboxItem(
        kind=InboxKind.NEEDS_OPERATOR,
        key=f"needs_operator:{doubt.effect_key}",
        since=doubt.since,
        title=f"{state.agent}: did step {doubt.step} ({doubt.action}) happen?",
        agent=state.agent,
        run_id=state.run_id,
        context={
            "effect_key": doubt.effect_key,
            "step": doubt.step,
            "action": doubt.action,
            "known": doubt.reason,
        },
        suggested="check the service for this effect, then record whether it was applied",
        command=f"aios effects resolve {key} --applied --as operator --note 'seen in the service'",
        alternatives=[f"aios effects resolve {key} --not-applied --as operator --note 'not in the service'"],
        web_ui=None,  # the ledger is the truth: settling is `aios effects resolve`, not a signal
    )


def unknown_effect_item(row: dict[str, Any]) -> InboxItem:
    """An effect the ledger calls unknown: its reconciler is asking, or has given up."""
    key = shlex.quote(str(row["effect_key"]))
    return InboxItem(
        kind=InboxKind.UNKNOWN_EFFECT,
        key=f"unknown_effect:{row['effect_key']}",
        since=row["updated_at"],
        title=f"unknown outcome: {row['action']} on {row['connector']}",
        run_id=str(row["run_id"]),
        context={
            "effect_key": row["effect_key"],
            "action": row["action"],
            "connector": row["connector"],
            "attempts": row["attempts"],
            "error": row.get("error") or "",
        },
        suggested=NOTICE_IN_DOUBT
        if str(row["action"]).startswith("notify:")
        else "the reconciler asks the service; if it cannot tell, check the service and settle it",
        command=f"aios effects resolve {key} --applied --as operator --note 'seen in the service'",
        alternatives=[f"aios effects resolve {key} --not-applied --as operator --note 'not in the service'"],
    )


def breaker_item(connector: str, rows: list[dict[str, Any]]) -> InboxItem:
    """A connector whose breaker is open in at least one worker."""
    open_rows = [row for row in rows if row["state"] == "open"]
    return InboxItem(
        kind=InboxKind.OPEN_BREAKER,
        key=f"breaker:{connector}",
        since=min(row["reported_at"] for row in open_rows),
        title=f"connector {connector} is failing: its circuit breaker is open",
        context={
            "connector": connector,
            "workers": [row["worker_id"] for row in open_rows],
            "consecutive_failures": max(int(row["consecutive_failures"]) for row in open_rows),
            "times_opened": max(int(row["times_opened"]) for row in open_rows),
        },
        suggested=f"check {connector}'s service or credentials; the breaker closes by itself "
        "after a successful probe",
        command="aios status",
    )


def stuck_item(problem: RunStuck, agent: str | None) -> InboxItem:
    """A run whose workflow task keeps failing: no query, signal or update reaches it."""
    run = shlex.quote(problem.run_id)
    return InboxItem(
        kind=InboxKind.STUCK_RUN,
        key=f"stuck:{problem.run_id}",
        since=_parse(problem.since),
        title=f"run {problem.run_id}'s workflow task keeps failing",
        agent=agent,
        run_id=problem.run_id,
        context={"failure": problem.failure, "attempt": problem.attempt, "since": problem.since},
        suggested="deploy a worker that fixes the failure (the task is retried by itself), or cancel the run",
        command=f"aios cancel {run}",
    )


def skipped_fire_item(cause: str, run_id: str, agent: str, reason: str, refused_at: datetime) -> InboxItem:
    """A schedule's fire that admission refused (`cause` is `schedule:AGENT/NAME`)."""
    schedule = cause.removeprefix("schedule:")
    return InboxItem(
        kind=InboxKind.SKIPPED_SCHEDULE_FIRE,
        key=f"skipped_fire:{schedule}",
        since=refused_at,
        title=f"schedule {schedule} fired and started nothing",
        agent=agent,
        context={"schedule": schedule, "run_id": run_id, "reason": reason},
        suggested="fix what refused it (the reason), then fire it again; it leaves the inbox when "
        "a later fire starts a run, or after a day",
        command=f"aios schedules trigger {shlex.quote(schedule)}",
    )


def _proposal(state: RunState, step: int) -> Proposal | None:
    return next((p for p in state.proposals if p.step == step), None)


def _deadlines(pending: PendingApproval) -> dict[str, Any]:
    return {
        "remind_at": _iso(pending.remind_at),
        "escalate_at": _iso(pending.escalate_at),
        "expire_at": _iso(pending.expire_at),
        "on_expiry": pending.on_expiry,
    }


def _amount_text(amount: float | None) -> str:
    return "" if amount is None else f" ({amount:g})"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None


def _parse(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return datetime.now(UTC)
