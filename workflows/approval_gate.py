"""The approval gate: a step that needs a person waits here for a verdict or the SLA's end.

`ApprovalGate` builds on the run's bookkeeping. While a step waits, the SLA reminds,
escalates to the escalation approvers, and at last applies the policy's default. Every
decision, signalled or sent as an update, goes through `_decide`: a malformed, unauthorized,
late or duplicate one is refused with a reason and recorded, and the run goes on waiting.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

from workflows.bookkeeping import RunBookkeeping
from workflows.notifications import approval_notice, notify
from workflows.run_progress import Verdict

with workflow.unsafe.imports_passed_through():
    from aios.governance.policy import may_approve
    from aios.models.notify import NoticeKind
    from aios.models.run import (
        Decision,
        DecisionChannel,
        DecisionOutcome,
        PendingApproval,
        ProposedAction,
        RefusedDecision,
        RunStatus,
    )

RECEIVED_EXCERPT = 300
EXPIRED_BY = "policy:sla-expired"
EXPIRY_SUMMARY = {"approve": "approved by default", "reject": "rejected by default"}


class ApprovalGate(RunBookkeeping):
    # How the deciding verdict came (channel) and whether its identity was checked (a signed
    # link): set with the verdict, written into its audit row.
    _decided_via: tuple[DecisionChannel, bool] = ("update", False)

    async def _gate(self, step: int, proposed: ProposedAction, grade_reason: str = "") -> tuple[bool, str]:
        policy = self._manifest.policy
        sla = policy.sla
        since = workflow.now()
        self._run.verdict = None
        self._run.pending = PendingApproval(
            step=step,
            action=proposed.action,
            amount=proposed.amount,
            confidence=proposed.confidence,
            rationale=proposed.rationale,
            approvers=list(policy.approvers),
            since=since,
            params=dict(proposed.params),
            grade_reason=grade_reason,
            remind_at=since + sla.remind_after,
            escalate_at=since + sla.escalate_after,
            expire_at=since + sla.expire_after,
            on_expiry=sla.on_expiry,
        )
        self._set_status(RunStatus.WAITING_APPROVAL)
        self._event(
            f"step-{step}",
            "policy",
            proposed.action,
            "approval requested",
            detail={"approvers": policy.approvers},
        )
        await self._record()
        await self._notify_approval("approval_requested", policy.approvers, "waits for your approval")
        for deadline, phase in (
            (sla.remind_after, "remind"),
            (sla.escalate_after, "escalate"),
            (sla.expire_after, "expire"),
        ):
            await self._wait_for_verdict(since + deadline - workflow.now())
            if self._run.verdict is not None:
                break
            await self._sla_phase(phase, step)
        assert self._run.verdict is not None  # the expire phase always sets one
        await self._acknowledge()
        verdict, approver, note = self._run.verdict
        channel, verified = self._decided_via
        self._run.pending = None
        self._set_status(RunStatus.RUNNING)
        self._event(
            f"step-{step}",
            approver,
            proposed.action,
            verdict,
            rationale=note,
            detail={"channel": channel, "verified": verified} if approver != EXPIRED_BY else {},
        )
        return verdict == "approve", approver

    async def _notify_approval(self, kind: NoticeKind, recipients: list[str], summary: str) -> None:
        pending = self._run.pending
        assert pending is not None
        await notify(
            approval_notice(
                kind,
                run_id=self._run.run_id,
                manifest=self._manifest,
                pending=pending,
                recipients=list(recipients),
                recalled=self._run.recalled,
                summary=f"{self._manifest.name} {summary}: step {pending.step}, {pending.action}",
            )
        )

    async def _acknowledge(self) -> None:
        """End the workflow task before going on, so the operator's update gets its answer now.

        Local activities keep a workflow task open, and an update's result leaves with the
        task: without this, `aios approve` would wait for every inline step after the gate.
        """
        if self._run.fused:
            await self._end_workflow_task()

    async def _wait_for_verdict(self, remaining: timedelta) -> None:
        if remaining <= timedelta(0):
            return
        try:
            await workflow.wait_condition(lambda: self._run.verdict is not None, timeout=remaining)
        except TimeoutError:
            return

    async def _sla_phase(self, phase: str, step: int) -> None:
        pending = self._run.pending
        assert pending is not None
        policy = self._manifest.policy
        if phase == "remind":
            self._run.pending = pending.model_copy(update={"reminded": True})
            self._event(
                f"step-{step}",
                "policy",
                "remind",
                "approval still waiting",
                detail={"approvers": pending.approvers},
            )
            await self._notify_approval(
                "approval_reminder", pending.approvers, "still waits for your approval"
            )
        elif phase == "escalate":
            approvers = list(dict.fromkeys([*policy.approvers, *policy.escalation_approvers]))
            self._run.pending = pending.model_copy(update={"escalated": True, "approvers": approvers})
            self._event(f"step-{step}", "policy", "escalate", "escalated", detail={"approvers": approvers})
            await self._notify_approval(
                "approval_escalated",
                policy.escalation_approvers,
                "was escalated to you and waits for approval",
            )
        else:
            self._run.verdict = (policy.sla.on_expiry, EXPIRED_BY, "the approval window expired")
            await self._notify_approval(
                "approval_expired",
                pending.approvers,
                f"was not decided in time and was {EXPIRY_SUMMARY[policy.sla.on_expiry]}",
            )
        await self._record()

    def _decide(
        self,
        verdict: Verdict,
        decision: Decision,
        *,
        channel: DecisionChannel = "update",
        verified: bool = False,
        link_problem: str = "",
    ) -> DecisionOutcome:
        """The one handler behind the approve/reject signals and the decide update.

        `verified`: the decision carried a signed link the run checked (link_problem: why a
        link it carried did not check out)."""
        pending = self._run.pending
        refusal = link_problem or self._refusal(decision, pending, verified=verified)
        if refusal:
            via: dict[str, object] = {"channel": channel, "verified": verified}
            self._refuse(f"{verdict} {decision.model_dump_json(exclude={'token'})}", refusal, via=via)
            return DecisionOutcome(accepted=False, reason=refusal, step=decision.step)
        assert pending is not None
        self._run.verdict = (verdict, decision.approver, decision.note)
        self._decided_via = (channel, verified)
        return DecisionOutcome(
            accepted=True, reason=f"{verdict}d step {pending.step}", step=pending.step, verified=verified
        )

    def _refusal(self, decision: Decision, pending: PendingApproval | None, *, verified: bool) -> str:
        if pending is None or self._run.verdict is not None:
            return "no approval is pending (a late or duplicate decision changes nothing)"
        if decision.step is not None and decision.step != pending.step:
            return f"step {decision.step} is not waiting for approval; step {pending.step} is"
        if not may_approve(self._manifest, decision.approver, escalated=pending.escalated):
            return f"{decision.approver!r} may not approve this; allowed: {', '.join(pending.approvers)}"
        limit = self._manifest.policy.verified_over
        if limit is not None and not verified and (pending.amount is None or pending.amount > limit):
            shown = "an unknown amount" if pending.amount is None else f"amount {pending.amount:g}"
            return (
                f"{shown} is over policy.verified_over {limit:g}: only a verified decision counts "
                "(the signed link sent to the approver), not a typed name"
            )
        return ""

    def _refuse(self, received: str, reason: str, *, via: dict[str, object] | None = None) -> None:
        self._run.refused.append(RefusedDecision(received=received[:RECEIVED_EXCERPT], reason=reason))
        self._event(
            "decision",
            "operator",
            "decision",
            "refused",
            rationale=reason,
            detail={"received": received[:RECEIVED_EXCERPT], **(via or {})},
        )
