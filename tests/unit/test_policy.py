"""grade_action's rules in their order, and who may approve."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from aios.governance.policy import chained_act, grade_action, may_approve, rides_in_next_think, turns_ahead
from aios.models.manifest import ActionSpec, AgentManifest, Grade, PolicySpec
from aios.models.run import PlanResponse, ProposedAction

CONFIDENT = 0.9


def manifest(**policy: Any) -> AgentManifest:
    """A desk with one action per risk class; `policy` overrides the policy's fields."""
    return AgentManifest.model_validate(
        {
            "name": "policy-desk",
            "actions": {
                "lookup_customer": {"connector": "memory", "risk": "low"},
                "goodwill_credit": {"connector": "payments", "risk": "low", "params": ["amount"]},
                "send_reply": {"connector": "outbox", "risk": "medium"},
                "issue_refund": {
                    "connector": "payments",
                    "risk": "high",
                    "max_amount": 1000,
                    "compensation": "reverse_refund",
                },
                "reverse_refund": {"connector": "payments", "risk": "high", "compensation_only": True},
                "close_account": {"connector": "crm", "risk": "critical"},
            },
            "policy": {
                "min_confidence": 0.7,
                "approval_amount_over": 100,
                "approvers": ["alice"],
                "escalation_approvers": ["bob"],
            }
            | policy,
        }
    )


def grade(
    action: str, *, amount: float | None = None, confidence: float = CONFIDENT, **policy: Any
) -> tuple[Grade, str]:
    proposed = ProposedAction(action=action, amount=amount, confidence=confidence)
    verdict = grade_action(manifest(**policy), proposed)
    return verdict.grade, verdict.reason


# -- forbidden ---------------------------------------------------------------------------


def test_an_action_the_manifest_does_not_have_is_forbidden() -> None:
    assert grade("delete_database") == (
        Grade.FORBIDDEN,
        "'delete_database' is not an action this agent may propose",
    )


def test_a_compensation_only_action_may_not_be_proposed() -> None:
    verdict, reason = grade("reverse_refund", confidence=1.0)
    assert verdict is Grade.FORBIDDEN
    assert "'reverse_refund' is not an action this agent may propose" in reason


def test_risk_at_the_forbidden_class_is_forbidden_however_confident() -> None:
    verdict, reason = grade("close_account", confidence=1.0)
    assert verdict is Grade.FORBIDDEN
    assert "risk critical is at or above critical" in reason


def test_the_forbidden_class_comes_from_the_policy() -> None:
    verdict, reason = grade("issue_refund", amount=10, forbidden_min_risk="high")
    assert verdict is Grade.FORBIDDEN
    assert "risk high is at or above high" in reason


def test_forbidden_risk_is_checked_before_the_amount_limit() -> None:
    verdict, reason = grade("issue_refund", amount=5000, forbidden_min_risk="high")
    assert verdict is Grade.FORBIDDEN
    assert "at or above high" in reason
    assert "limit" not in reason


def test_an_amount_over_the_actions_limit_is_forbidden_even_when_unsure() -> None:
    # The hard limit comes before the confidence rule: no human may approve 1000.01.
    verdict, reason = grade("issue_refund", amount=1000.01, confidence=0.1)
    assert verdict is Grade.FORBIDDEN
    assert "amount 1000.01 exceeds the action's limit 1000" in reason


def test_an_amount_at_the_limit_is_not_forbidden() -> None:
    verdict, reason = grade("issue_refund", amount=1000)
    assert verdict is Grade.NEEDS_APPROVAL
    assert "amount 1000 is over 100" in reason


# -- needs approval ----------------------------------------------------------------------


def test_low_confidence_needs_approval_even_for_a_low_risk_action() -> None:
    verdict, reason = grade("lookup_customer", confidence=0.5)
    assert verdict is Grade.NEEDS_APPROVAL
    assert "model confidence 0.50 is below 0.70" in reason


def test_confidence_exactly_at_the_minimum_is_enough() -> None:
    verdict, _ = grade("lookup_customer", confidence=0.7)
    assert verdict is Grade.AUTO


def test_low_confidence_is_reported_before_a_large_amount() -> None:
    verdict, reason = grade("issue_refund", amount=500, confidence=0.2)
    assert verdict is Grade.NEEDS_APPROVAL
    assert "confidence 0.20 is below 0.70" in reason


def test_an_amount_over_the_approval_threshold_needs_approval_even_at_low_risk() -> None:
    verdict, reason = grade("goodwill_credit", amount=150)
    assert verdict is Grade.NEEDS_APPROVAL
    assert "amount 150 is over 100" in reason


def test_an_amount_at_the_approval_threshold_is_automatic_at_low_risk() -> None:
    verdict, reason = grade("goodwill_credit", amount=100)
    assert verdict is Grade.AUTO
    assert "risk low at or below low" in reason


def test_without_an_approval_threshold_the_amount_alone_asks_nobody() -> None:
    verdict, _ = grade("goodwill_credit", amount=10_000, approval_amount_over=None)
    assert verdict is Grade.AUTO


# -- by risk class -----------------------------------------------------------------------


def test_low_risk_runs_automatically() -> None:
    verdict, reason = grade("lookup_customer")
    assert verdict is Grade.AUTO
    assert "risk low at or below low" in reason


def test_medium_risk_runs_and_notifies() -> None:
    verdict, reason = grade("send_reply")
    assert verdict is Grade.AUTO_AND_NOTIFY
    assert "risk medium at or below medium" in reason


def test_high_risk_needs_approval() -> None:
    verdict, reason = grade("issue_refund", amount=20)
    assert verdict is Grade.NEEDS_APPROVAL
    assert "risk high is above medium" in reason


def test_the_risk_thresholds_come_from_the_policy() -> None:
    assert grade("issue_refund", amount=20, auto_max_risk="high", notify_max_risk="high")[0] is Grade.AUTO
    verdict, reason = grade("send_reply", auto_max_risk="low", notify_max_risk="low")
    assert verdict is Grade.NEEDS_APPROVAL
    assert "risk medium is above low" in reason


# -- approvers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("approver", "escalated", "allowed"),
    [
        ("alice", False, True),
        ("alice", True, True),
        ("bob", False, False),  # an escalation approver waits for the escalation
        ("bob", True, True),
        ("mallory", False, False),
        ("mallory", True, False),
        ("Alice", False, False),  # names are exact, not case-folded
    ],
)
def test_who_may_approve(approver: str, escalated: bool, allowed: bool) -> None:
    assert may_approve(manifest(), approver, escalated=escalated) is allowed


def test_negative_amount_is_forbidden_and_missing_amount_goes_to_a_person() -> None:
    manifest = AgentManifest.model_validate(
        {
            "name": "amounts",
            "actions": {"pay": {"connector": "noop", "risk": "low", "params": ["amount"], "max_amount": 50}},
            "policy": {"approvers": ["alice"]},
        }
    )
    negative = grade_action(manifest, ProposedAction(action="pay", amount=-5, confidence=0.99))
    missing = grade_action(manifest, ProposedAction(action="pay", amount=None, confidence=0.99))
    assert (negative.grade, "negative" in negative.reason) == (Grade.FORBIDDEN, True)
    assert (missing.grade, "missing or not a number" in missing.reason) == (Grade.NEEDS_APPROVAL, True)


def test_policy_thresholds_must_be_ordered() -> None:
    with pytest.raises(ValidationError, match="auto_max_risk <= notify_max_risk < forbidden_min_risk"):
        PolicySpec(approvers=["a"], auto_max_risk="high", notify_max_risk="medium")


# -- chained turns -------------------------------------------------------------------------


def inline_desk() -> AgentManifest:
    """The policy desk with its low and medium risk actions on the inline `noop` connector."""
    desk = manifest()
    actions = {
        name: spec.model_copy(update={"connector": "noop"}) if name != "issue_refund" else spec
        for name, spec in desk.actions.items()
    }
    return desk.model_copy(update={"actions": actions})


def plan_of(*actions: str, done: bool = False) -> PlanResponse:
    proposals = [ProposedAction(action=action, confidence=CONFIDENT) for action in actions]
    return PlanResponse(done=done, proposals=proposals, model="m", offline=True, tokens_used=1, cost=0)


def test_a_plan_of_one_inline_act_approved_outright_is_chained() -> None:
    for action in ("lookup_customer", "send_reply"):  # auto, and auto-and-notify
        chained = chained_act(inline_desk(), plan_of(action))
        assert chained is not None
        proposed, spec = chained
        assert proposed.action == action and rides_in_next_think(spec)


def test_no_chain_past_what_the_workflow_would_defer_without_a_person() -> None:
    desk = inline_desk()
    assert chained_act(desk, plan_of("lookup_customer", "send_reply")) is None  # two acts
    assert chained_act(desk, plan_of(done=True)) is None
    assert chained_act(desk, plan_of("close_account")) is None  # forbidden
    assert chained_act(desk, plan_of("issue_refund")) is None  # needs approval, not inline
    assert chained_act(desk, plan_of("unknown_action")) is None
    assert chained_act(manifest(), plan_of("lookup_customer")) is None  # a connector with I/O


def test_an_action_marked_inline_is_chained_whatever_its_connector() -> None:
    desk = manifest()  # its actions have connectors with I/O: none rides in a think
    assert chained_act(desk, plan_of("lookup_customer")) is None
    lookup = desk.actions["lookup_customer"].model_copy(update={"inline": True})
    marked = desk.model_copy(update={"actions": {**desk.actions, "lookup_customer": lookup}})
    chained = chained_act(marked, plan_of("lookup_customer"))
    assert chained is not None and chained[1].connector == lookup.connector != "noop"
    assert rides_in_next_think(lookup)


def test_a_delegating_action_cannot_be_inline() -> None:
    with pytest.raises(ValidationError, match="cannot be `inline`"):
        ActionSpec(connector="agent", agent="helper", risk="low", inline=True)


def ahead(turn: int, *, turn_limit: int = 100, live: bool = True, paused: bool = False) -> int:
    return turns_ahead(turn, turn_limit=turn_limit, checkpoint_every=50, live=live, paused=paused)


def test_turns_ahead_stop_before_the_checkpoint_and_at_the_turn_limit() -> None:
    assert ahead(1) == 48  # turn 50 is the checkpoint: the workflow takes it
    assert ahead(49) == 0
    assert ahead(51, turn_limit=53) == 2
    assert ahead(1, live=False) == 0
    assert ahead(1, paused=True) == 0
