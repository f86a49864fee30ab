"""Each kind of inbox item: its context, its suggested action, the one command that settles it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aios.errors import RunStuck
from aios.inbox.items import (
    approval_item,
    breaker_item,
    budget_item,
    needs_operator_item,
    stuck_item,
    unknown_effect_item,
)
from aios.models.inbox import InboxKind
from aios.models.manifest import Grade
from aios.models.run import EffectInDoubt, PendingApproval, Proposal, ProposedAction, RunState, RunStatus

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def state(**fields: object) -> RunState:
    return RunState.model_validate(
        {
            "run_id": "run-1",
            "agent": "refund-desk",
            "manifest_version": "abc",
            "mode": "live",
            "status": RunStatus.RUNNING,
            **fields,
        }
    )


def test_an_approval_carries_what_to_decide_on_and_the_commands() -> None:
    proposed = ProposedAction(
        action="payout", params={"customer": "c-1"}, amount=250, confidence=0.9, rationale="asked twice"
    )
    pending = PendingApproval(
        step=2,
        action="payout",
        amount=250,
        confidence=0.9,
        rationale="asked twice",
        approvers=["alice", "bob"],
        since=NOW,
        params={"customer": "c-1"},
        grade_reason="amount 250 is over 100",
        remind_at=NOW + timedelta(hours=1),
        escalate_at=NOW + timedelta(hours=4),
        expire_at=NOW + timedelta(days=1),
        on_expiry="reject",
    )
    run = state(
        status=RunStatus.WAITING_APPROVAL,
        pending_approval=pending,
        recalled=["c-1 was refunded in May"],
        proposals=[Proposal(step=2, turn=1, proposed=proposed, grade=Grade.NEEDS_APPROVAL, grade_reason="x")],
    )
    item = approval_item(run, NOW)
    assert item is not None and item.kind is InboxKind.APPROVAL and item.since == NOW
    context = item.context
    assert context["params"] == {"customer": "c-1"} and context["amount"] == 250
    assert context["rationale"] == "asked twice" and context["confidence"] == 0.9
    assert context["grade"] == "needs_approval" and context["rule"] == "amount 250 is over 100"
    assert context["recalled"] == ["c-1 was refunded in May"]
    assert context["deadlines"]["expire_at"] == "2026-12-05T12:00:00+00:00"
    assert item.command == "aios approve run-1 --step 2 --as alice"
    assert item.alternatives == ["aios reject run-1 --step 2 --as alice --note WHY"]
    assert item.web_ui is not None and item.web_ui.name == "decide"
    assert item.web_ui.json_input == {"verdict": "approve", "decision": {"approver": "alice", "step": 2}}
    assert approval_item(state(), NOW) is None  # nothing pending: no item


def test_a_budget_pause_shows_spend_against_caps_and_how_to_grant_more() -> None:
    item = budget_item(
        state(tokens_spent=900, cost_spent=0.5), NOW, "run tokens 900 + 800 > 1000", {"tokens_per_run": 1000}
    )
    assert item.kind is InboxKind.BUDGET_PAUSE and item.context["tokens_per_run"] == 1000
    assert item.context["tokens_spent"] == 900 and "run tokens" in item.title
    assert item.command == "aios resume run-1 --extra-tokens 10000 --extra-cost 1"
    daily = budget_item(state(paused_until=NOW + timedelta(hours=3)), NOW, "day cap", {})
    assert daily.command == "aios resume run-1 --override-day"
    assert daily.context["resumes_by_itself_at"] == "2026-12-04T15:00:00+00:00"


def test_a_run_waiting_for_the_operator_names_the_effect_and_how_to_settle_it() -> None:
    doubt = EffectInDoubt(
        effect_key="run-1/step-2/payout", step=2, action="payout", since=NOW, reason="timed out"
    )
    item = needs_operator_item(state(status=RunStatus.NEEDS_OPERATOR, awaiting_operator=doubt), NOW)
    assert item is not None and item.kind is InboxKind.NEEDS_OPERATOR
    assert item.context["known"] == "timed out"
    assert item.command.startswith("aios effects resolve run-1/step-2/payout --applied --as operator")
    assert "--not-applied" in item.alternatives[0]
    assert needs_operator_item(state(status=RunStatus.NEEDS_OPERATOR), NOW) is None  # an ended run


def test_unknown_effect_open_breaker_and_stuck_run_items() -> None:
    effect = unknown_effect_item(
        {
            "effect_key": "run-1/step-1/charge",
            "run_id": "run-1",
            "action": "charge",
            "connector": "payments",
            "attempts": 3,
            "error": "timeout",
            "updated_at": NOW,
        }
    )
    assert effect.kind is InboxKind.UNKNOWN_EFFECT and effect.command.startswith(
        "aios effects resolve run-1/step-1/charge"
    )
    rows = [
        {
            "worker_id": "w1",
            "state": "open",
            "consecutive_failures": 5,
            "times_opened": 2,
            "reported_at": NOW,
        },
        {
            "worker_id": "w2",
            "state": "closed",
            "consecutive_failures": 0,
            "times_opened": 0,
            "reported_at": NOW,
        },
    ]
    breaker = breaker_item("payments", rows)
    assert breaker.kind is InboxKind.OPEN_BREAKER and breaker.context["workers"] == ["w1"]
    assert breaker.command == "aios status"
    stuck = stuck_item(
        RunStuck("run-9", "RuntimeError: boom", attempt=4, since=NOW.isoformat()), "refund-desk"
    )
    assert stuck.kind is InboxKind.STUCK_RUN and stuck.since == NOW and stuck.context["attempt"] == 4
    assert stuck.command == "aios cancel run-9" and "deploy a worker" in stuck.suggested
