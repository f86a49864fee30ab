"""Grading proposed actions: risk class x model confidence x amount -> what may happen;
and the rule of chained turns, which acts on those grades ahead of the workflow.

Pure and deterministic, so the agent-run workflow calls it directly (passed through the
sandbox) and a replay grades exactly as the original run did.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aios.models.manifest import ActionSpec, AgentManifest, Grade, PolicySpec
from aios.models.run import PlanResponse, ProposedAction
from aios.temporal.queues import runs_inline


@dataclass(frozen=True)
class Verdict:
    grade: Grade
    reason: str


def grade_action(manifest: AgentManifest, proposed: ProposedAction) -> Verdict:
    """The first rule that applies wins; the rules go from hardest limit to most lenient."""
    spec = manifest.actions.get(proposed.action)
    if spec is None or spec.compensation_only:
        return Verdict(Grade.FORBIDDEN, f"{proposed.action!r} is not an action this agent may propose")
    verdict = next(
        (found for rule in _RULES if (found := rule(spec, manifest.policy, proposed)) is not None),
        Verdict(Grade.NEEDS_APPROVAL, f"risk {spec.risk} is above {manifest.policy.notify_max_risk}"),
    )
    return _fallback_waits(manifest, proposed, verdict)


def _fallback_waits(manifest: AgentManifest, proposed: ProposedAction, verdict: Verdict) -> Verdict:
    """A fallback model stands in for the one the agent was checked with: what it plans waits for a
    person (`model.fallback_requires_approval`), unless the policy already forbids or asks."""
    if not proposed.fallback_model or not manifest.model.fallback_requires_approval:
        return verdict
    if verdict.grade not in (Grade.AUTO, Grade.AUTO_AND_NOTIFY):
        return verdict
    return Verdict(
        Grade.NEEDS_APPROVAL,
        f"planned by the fallback model {proposed.fallback_model} (model.fallback_requires_approval)",
    )


Rule = Callable[[ActionSpec, PolicySpec, ProposedAction], "Verdict | None"]


def _forbidden_risk(spec: ActionSpec, policy: PolicySpec, proposed: ProposedAction) -> Verdict | None:
    if spec.risk.rank >= policy.forbidden_min_risk.rank:
        return Verdict(Grade.FORBIDDEN, f"risk {spec.risk} is at or above {policy.forbidden_min_risk}")
    return None


def _unreadable_amount(spec: ActionSpec, policy: PolicySpec, proposed: ProposedAction) -> Verdict | None:
    amount = proposed.amount
    if amount is not None and amount < 0:
        return Verdict(Grade.FORBIDDEN, f"amount {amount:g} is negative")
    limited = spec.max_amount is not None or policy.approval_amount_over is not None
    if amount is None and "amount" in spec.params and limited:
        # Without a number the limits cannot be checked: a person looks instead.
        return Verdict(Grade.NEEDS_APPROVAL, "the amount is missing or not a number, so limits cannot apply")
    return None


def _over_action_limit(spec: ActionSpec, policy: PolicySpec, proposed: ProposedAction) -> Verdict | None:
    amount, limit = proposed.amount, spec.max_amount
    if amount is not None and limit is not None and amount > limit:
        return Verdict(Grade.FORBIDDEN, f"amount {amount:g} exceeds the action's limit {limit:g}")
    return None


def _low_confidence(spec: ActionSpec, policy: PolicySpec, proposed: ProposedAction) -> Verdict | None:
    if proposed.confidence < policy.min_confidence:
        return Verdict(
            Grade.NEEDS_APPROVAL,
            f"model confidence {proposed.confidence:.2f} is below {policy.min_confidence:.2f}",
        )
    return None


def _large_amount(spec: ActionSpec, policy: PolicySpec, proposed: ProposedAction) -> Verdict | None:
    amount, threshold = proposed.amount, policy.approval_amount_over
    if amount is not None and threshold is not None and amount > threshold:
        return Verdict(Grade.NEEDS_APPROVAL, f"amount {amount:g} is over {threshold:g}")
    return None


def _low_risk(spec: ActionSpec, policy: PolicySpec, proposed: ProposedAction) -> Verdict | None:
    if spec.risk.rank <= policy.auto_max_risk.rank:
        return Verdict(Grade.AUTO, f"risk {spec.risk} at or below {policy.auto_max_risk}")
    if spec.risk.rank <= policy.notify_max_risk.rank:
        return Verdict(Grade.AUTO_AND_NOTIFY, f"risk {spec.risk} at or below {policy.notify_max_risk}")
    return None


_RULES: tuple[Rule, ...] = (
    _forbidden_risk,
    _unreadable_amount,
    _over_action_limit,
    _low_confidence,
    _large_amount,
    _low_risk,
)


def may_approve(manifest: AgentManifest, approver: str, *, escalated: bool) -> bool:
    allowed = set(manifest.policy.approvers)
    if escalated:
        allowed |= set(manifest.policy.escalation_approvers)
    return approver in allowed


# -- Chained turns: the one rule of the think activity acting ahead of the workflow ------------
#
# An approved act on a connector that does no I/O, or of an action the manifest marks `inline`,
# is not run on its own: the workflow defers it into the next turn's think activity, which
# performs it first (one local activity per step instead of two). The activity may then go on
# with further turns by itself while each plan is one such act that the policy approves
# outright: exactly the act the workflow, grading the same proposal under the same manifest,
# would defer into that very turn. The workflow (workflows/agent_run.py) and the activity
# (activities/agent.py) both decide through these functions, so the two cannot drift apart.

APPROVED_OUTRIGHT = frozenset({Grade.AUTO, Grade.AUTO_AND_NOTIFY})


def rides_in_next_think(spec: ActionSpec) -> bool:
    """An approved act of this action is performed by the next turn's think, first."""
    return runs_inline(spec.connector, inline=spec.inline)


def chained_act(manifest: AgentManifest, plan: PlanResponse) -> tuple[ProposedAction, ActionSpec] | None:
    """The act a think activity may perform in a next turn of its own, or None: the plan's
    only action, approved outright (no person waited for), riding in the next think."""
    if plan.done or len(plan.proposals) != 1:
        return None
    proposed = plan.proposals[0]
    spec = manifest.actions.get(proposed.action)
    if spec is None or not rides_in_next_think(spec):
        return None
    if grade_action(manifest, proposed).grade not in APPROVED_OUTRIGHT:
        return None
    return proposed, spec


def turns_ahead(turn: int, *, turn_limit: int, checkpoint_every: int, live: bool, paused: bool) -> int:
    """How many turns after `turn` a think activity may take on its own: none in shadow mode
    (nothing is performed) or while paused, and never past the next checkpoint (where the run
    ends its workflow task or continues as new) or the turn limit."""
    if not live or paused:
        return 0
    to_checkpoint = checkpoint_every - turn % checkpoint_every - 1
    return max(0, min(to_checkpoint, turn_limit - turn))
