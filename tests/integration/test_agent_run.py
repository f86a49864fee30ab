"""The conductor on the real dev server: policies, approvals, sagas, shadow mode, budgets, pauses."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import CancelledError

from aios.client import AiosClient
from aios.errors import AdmissionRefused, DecisionRefused, RunFailed
from aios.models.manifest import BudgetSpec, Grade, ModelSpec
from aios.models.run import RunStatus
from tests.support.cli import run_aios
from tests.support.effect_server import EffectServer
from tests.support.manifests import FAST_SLA, noop_manifest, refund_like_manifest
from tests.support.runs import audit_outcomes, audit_story, wait_for_state, wait_for_status

SMALL = {"customer": "c-1", "amount": 40}  # under the approval threshold of 100
LARGE = {"customer": "c-2", "amount": 250}  # over it: payout needs approval


async def _audit_rationales(client: AiosClient, run_id: str) -> str:
    return " | ".join(row.rationale for row in await audit_story(client.settings, run_id))


async def test_auto_approved_run_executes_every_step_once(aios_client: AiosClient) -> None:
    manifest = noop_manifest(3)
    started = await aios_client.start_run(manifest.name, {"note": "hi"}, manifest=manifest)
    final = await aios_client.result(started.run_id)
    assert final.status is RunStatus.COMPLETED
    assert [step.action for step in final.steps] == ["step_1", "step_2", "step_3"]
    assert {step.status for step in final.steps} == {"executed"}
    assert {proposal.grade for proposal in final.proposals} == {Grade.AUTO}
    assert final.manifest_version == manifest.version
    assert final.tokens_spent > 0
    audit = await audit_outcomes(aios_client.settings, started.run_id)
    assert audit.count(("policy", "step_2", "executed")) == 1
    assert audit[-1] == ("policy", "finish", "completed")


async def test_small_refund_runs_without_approval_and_notifies(
    aios_client: AiosClient, effect_server: EffectServer
) -> None:
    manifest = refund_like_manifest(effect_server.url)
    started = await aios_client.start_run(manifest.name, SMALL, manifest=manifest)
    final = await aios_client.result(started.run_id)
    assert final.status is RunStatus.COMPLETED
    grades = {p.proposed.action: p.grade for p in final.proposals}
    assert grades == {"charge": Grade.AUTO, "payout": Grade.AUTO_AND_NOTIFY}
    assert effect_server.effects_for("/charge") == 1
    assert effect_server.effects_for("/payout") == 1
    audit = await audit_outcomes(aios_client.settings, started.run_id)
    assert ("policy", "notify", "operator notified") in audit


async def test_approval_by_signal_with_the_web_ui_json(
    aios_client: AiosClient, effect_server: EffectServer
) -> None:
    manifest = refund_like_manifest(effect_server.url)
    started = await aios_client.start_run(manifest.name, LARGE, manifest=manifest)
    waiting = await wait_for_status(aios_client, started.run_id, RunStatus.WAITING_APPROVAL)
    assert waiting.pending_approval is not None
    assert waiting.pending_approval.action == "payout"
    assert effect_server.effects_for("/payout") == 0

    await aios_client.signal_decision(started.run_id, "approve", {"approver": "alice", "note": "ok"})
    final = await aios_client.result(started.run_id)
    assert final.status is RunStatus.COMPLETED
    payout = next(step for step in final.steps if step.action == "payout")
    assert (payout.status, payout.decided_by) == ("executed", "alice")
    assert effect_server.effects_for("/payout") == 1


async def test_approval_by_update_answers_at_once(
    aios_client: AiosClient, effect_server: EffectServer
) -> None:
    manifest = refund_like_manifest(effect_server.url)
    started = await aios_client.start_run(manifest.name, LARGE, manifest=manifest)
    waiting = await wait_for_status(aios_client, started.run_id, RunStatus.WAITING_APPROVAL)
    assert waiting.pending_approval is not None
    outcome = await aios_client.decide(
        started.run_id, "approve", approver="alice", step=waiting.pending_approval.step
    )
    assert outcome.accepted
    final = await aios_client.result(started.run_id)
    assert final.status is RunStatus.COMPLETED
    assert effect_server.effects_for("/payout") == 1


async def test_approve_all_decides_every_run_waiting_for_the_approver_in_one_command(
    aios_client: AiosClient, effect_server: EffectServer
) -> None:
    manifest = refund_like_manifest(effect_server.url)
    runs = [
        (
            await aios_client.start_run(manifest.name, {**LARGE, "customer": f"c-{n}"}, manifest=manifest)
        ).run_id
        for n in range(3)
    ]
    for run_id in runs:
        await wait_for_status(aios_client, run_id, RunStatus.WAITING_APPROVAL)
    settings = aios_client.settings

    for wrong, said in (
        (["approve", "--as", "alice"], "name one RUN, or --all"),
        (["approve", runs[0], "--all", "--as", "alice"], "name one RUN, or --all"),
        (["approve", "--all", "--as", " "], "--as needs the approver's name"),
        (["reject", runs[0], "--as", ""], "--as needs the approver's name"),
    ):
        refused = await asyncio.to_thread(run_aios, *wrong, settings=settings)
        assert refused.returncode == 2 and said in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr
    # bob is only the escalation approver: nothing is his yet.
    not_his = await asyncio.to_thread(
        run_aios, "approve", "--all", "--agent", manifest.name, "--as", "bob", settings=settings
    )
    assert not_his.returncode == 0, not_his.stderr
    assert "sent to 0 run(s)" in not_his.stdout and "left alone: 3 run(s)" in not_his.stdout

    approved = await asyncio.to_thread(
        run_aios,
        "approve",
        "--all",
        "--agent",
        manifest.name,
        "--as",
        "alice",
        "--note",
        "batch",
        settings=settings,
    )
    assert approved.returncode == 0, approved.stderr
    assert "approve sent to 3 run(s) waiting for alice" in approved.stdout
    for run_id in runs:
        final = await aios_client.result(run_id)
        assert final.status is RunStatus.COMPLETED, final.outcome
        payout = next(step for step in final.steps if step.action == "payout")
        assert (payout.status, payout.decided_by) == ("executed", "alice")
    assert effect_server.effects_for("/payout") == 3
    assert all(state.agent != manifest.name for state in await aios_client.approvals())


async def test_rejection_compensates_the_finished_steps(
    aios_client: AiosClient, effect_server: EffectServer
) -> None:
    manifest = refund_like_manifest(effect_server.url)
    started = await aios_client.start_run(manifest.name, LARGE, manifest=manifest)
    await wait_for_status(aios_client, started.run_id, RunStatus.WAITING_APPROVAL)
    await aios_client.decide(started.run_id, "reject", approver="alice", note="too much")
    final = await aios_client.result(started.run_id)
    assert final.status is RunStatus.COMPENSATED
    assert "rejected by alice" in final.outcome
    statuses = [(step.action, step.status) for step in final.steps]
    assert statuses == [("charge", "executed"), ("payout", "rejected"), ("refund", "compensated")]
    assert effect_server.effects_for("/charge") == 1
    assert effect_server.effects_for("/refund") == 1
    assert effect_server.effects_for("/payout") == 0


async def test_sla_reminds_escalates_then_applies_the_default(
    aios_client: AiosClient, effect_server: EffectServer
) -> None:
    manifest = refund_like_manifest(effect_server.url, sla=FAST_SLA)
    started = await aios_client.start_run(manifest.name, LARGE, manifest=manifest)
    final = await aios_client.result(started.run_id)
    assert final.status is RunStatus.COMPENSATED
    assert "policy:sla-expired" in final.outcome
    audit = await audit_outcomes(aios_client.settings, started.run_id)
    outcomes = [outcome for _, _, outcome in audit]
    assert outcomes.index("approval still waiting") < outcomes.index("escalated") < outcomes.index("reject")
    assert effect_server.effects_for("/refund") == 1


async def test_escalation_lets_the_escalation_approver_decide(
    aios_client: AiosClient, effect_server: EffectServer
) -> None:
    sla = FAST_SLA.model_copy(update={"expire_after": FAST_SLA.expire_after * 20})
    manifest = refund_like_manifest(effect_server.url, sla=sla)
    started = await aios_client.start_run(manifest.name, LARGE, manifest=manifest)
    await wait_for_status(aios_client, started.run_id, RunStatus.WAITING_APPROVAL)
    with pytest.raises(DecisionRefused, match="'bob' may not approve"):
        await aios_client.decide(started.run_id, "approve", approver="bob")
    await wait_for_state(
        aios_client, started.run_id, lambda s: s.pending_approval is not None and s.pending_approval.escalated
    )
    await aios_client.decide(started.run_id, "approve", approver="bob")
    assert (await aios_client.result(started.run_id)).status is RunStatus.COMPLETED


async def test_unauthorized_and_malformed_decisions_are_refused_and_recorded(
    aios_client: AiosClient, effect_server: EffectServer
) -> None:
    manifest = refund_like_manifest(effect_server.url)
    started = await aios_client.start_run(manifest.name, LARGE, manifest=manifest)
    await wait_for_status(aios_client, started.run_id, RunStatus.WAITING_APPROVAL)

    with pytest.raises(DecisionRefused, match="'mallory' may not approve"):
        await aios_client.decide(started.run_id, "approve", approver="mallory")
    await aios_client.signal_decision(started.run_id, "approve", {"approver": "mallory"})
    await aios_client.signal_decision(started.run_id, "approve", {"who": "alice"})  # wrong field
    await aios_client.signal_decision(started.run_id, "approve", {"approver": "alice", "step": 99})

    state = await wait_for_state(aios_client, started.run_id, lambda s: len(s.refused_decisions) == 4)
    assert state.status is RunStatus.WAITING_APPROVAL  # unharmed: still waiting
    reasons = [refused.reason for refused in state.refused_decisions]
    assert reasons[0].startswith("'mallory' may not approve")
    assert reasons[2].startswith("malformed approve")
    assert reasons[3].startswith("step 99 is not waiting")
    assert effect_server.effects_for("/payout") == 0

    await aios_client.decide(started.run_id, "approve", approver="alice")
    assert (await aios_client.result(started.run_id)).status is RunStatus.COMPLETED
    audit = await audit_outcomes(aios_client.settings, started.run_id)
    assert sum(1 for _, _, outcome in audit if outcome == "refused") == 4


async def test_duplicate_and_late_approvals_are_harmless(
    aios_client: AiosClient, effect_server: EffectServer
) -> None:
    manifest = refund_like_manifest(effect_server.url)
    started = await aios_client.start_run(manifest.name, LARGE, manifest=manifest)
    await wait_for_status(aios_client, started.run_id, RunStatus.WAITING_APPROVAL)
    for _ in range(3):
        await aios_client.signal_decision(started.run_id, "approve", {"approver": "alice"})
    final = await aios_client.result(started.run_id)
    assert final.status is RunStatus.COMPLETED
    assert effect_server.effects_for("/payout") == 1
    assert all("no approval is pending" in refused.reason for refused in final.refused_decisions)
    with pytest.raises(DecisionRefused):
        await aios_client.decide(started.run_id, "approve", approver="alice")


async def test_shadow_mode_executes_nothing(aios_client: AiosClient, effect_server: EffectServer) -> None:
    manifest = refund_like_manifest(effect_server.url, mode="shadow")
    started = await aios_client.start_run(manifest.name, SMALL, manifest=manifest)
    final = await aios_client.result(started.run_id)
    assert final.status is RunStatus.COMPLETED
    assert final.mode == "shadow"
    assert [(step.action, step.status) for step in final.steps] == [
        ("charge", "shadowed"),
        ("payout", "shadowed"),
    ]
    assert len(final.proposals) == 2
    assert effect_server.total_effects() == 0
    assert effect_server.requests == []


async def test_budget_cap_pauses_the_run_and_the_operator_resumes_it(aios_client: AiosClient) -> None:
    # Each turn reserves 80 tokens and the offline model uses a few dozen, more as the steps'
    # results fill its prompt: turn 3 cannot fit.
    manifest = noop_manifest(
        3, budget=BudgetSpec(tokens_per_run=150), model=ModelSpec(tokens_per_turn_estimate=80)
    )
    started = await aios_client.start_run(manifest.name, {}, manifest=manifest)
    paused = await wait_for_status(aios_client, started.run_id, RunStatus.PAUSED_BUDGET)
    assert 0 < paused.tokens_spent <= 150
    assert len(paused.steps) < 3
    await aios_client.resume(started.run_id, by="alice", extra_tokens=10_000)
    final = await aios_client.result(started.run_id)
    assert final.status is RunStatus.COMPLETED
    assert len(final.steps) == 3


async def test_agent_over_its_daily_budget_is_refused_at_start(aios_client: AiosClient) -> None:
    manifest = noop_manifest(
        3, budget=BudgetSpec(tokens_per_day=60), model=ModelSpec(tokens_per_turn_estimate=40)
    )
    first = await aios_client.start_run(manifest.name, {}, manifest=manifest)
    paused = await wait_for_status(aios_client, first.run_id, RunStatus.PAUSED_BUDGET)
    assert "tokens per day" in (await _audit_rationales(aios_client, first.run_id))
    assert paused.tokens_spent > 20
    with pytest.raises(AdmissionRefused, match="has used its daily budget"):
        await aios_client.start_run(manifest.name, {}, manifest=manifest)


async def test_kill_switch_pauses_an_agent_and_resumes_it(aios_client: AiosClient) -> None:
    manifest = noop_manifest(2)
    await aios_client.pause_agent(manifest.name, by="alice")
    started = await aios_client.start_run(manifest.name, {}, manifest=manifest)
    await wait_for_status(aios_client, started.run_id, RunStatus.PAUSED)
    await asyncio.sleep(0.5)
    assert (await aios_client.state(started.run_id)).steps == []  # nothing happens while paused
    resumed = await aios_client.resume_agent(manifest.name, by="alice")
    assert started.run_id in resumed
    assert (await aios_client.result(started.run_id)).status is RunStatus.COMPLETED


async def test_one_run_can_be_paused_and_resumed(
    aios_client: AiosClient, effect_server: EffectServer
) -> None:
    manifest = refund_like_manifest(effect_server.url)
    started = await aios_client.start_run(manifest.name, LARGE, manifest=manifest)
    await wait_for_status(aios_client, started.run_id, RunStatus.WAITING_APPROVAL)
    await aios_client.pause(started.run_id, by="alice", reason="checking something")
    await aios_client.decide(started.run_id, "approve", approver="alice")
    await wait_for_status(aios_client, started.run_id, RunStatus.PAUSED)
    assert effect_server.effects_for("/payout") == 0  # approved, but paused before acting
    await aios_client.resume(started.run_id, by="alice")
    assert (await aios_client.result(started.run_id)).status is RunStatus.COMPLETED
    assert effect_server.effects_for("/payout") == 1


async def test_concurrency_limit_queues_extra_runs(
    aios_client: AiosClient, effect_server: EffectServer
) -> None:
    manifest = refund_like_manifest(effect_server.url, budget=BudgetSpec(max_concurrent_runs=1))
    first = await aios_client.start_run(manifest.name, LARGE, manifest=manifest)
    await wait_for_status(aios_client, first.run_id, RunStatus.WAITING_APPROVAL)
    second = await aios_client.start_run(manifest.name, SMALL, manifest=manifest)
    await asyncio.sleep(1.5)
    assert (await aios_client.state(second.run_id)).status is RunStatus.QUEUED
    await aios_client.decide(first.run_id, "approve", approver="alice")
    assert (await aios_client.result(first.run_id)).status is RunStatus.COMPLETED
    assert (await aios_client.result(second.run_id)).status is RunStatus.COMPLETED


async def test_cancel_compensates_and_ends_cancelled(
    aios_client: AiosClient, effect_server: EffectServer
) -> None:
    manifest = refund_like_manifest(effect_server.url)
    started = await aios_client.start_run(manifest.name, LARGE, manifest=manifest)
    await wait_for_status(aios_client, started.run_id, RunStatus.WAITING_APPROVAL)
    await aios_client.cancel(started.run_id)
    with pytest.raises(RunFailed) as failure:
        await aios_client.result(started.run_id)
    ended = failure.value.__cause__
    assert isinstance(ended, WorkflowFailureError) and isinstance(ended.cause, CancelledError)
    assert effect_server.effects_for("/refund") == 1


async def test_a_run_recalls_what_earlier_runs_did_for_the_same_customer(
    aios_client: AiosClient, effect_server: EffectServer
) -> None:
    manifest = refund_like_manifest(effect_server.url)
    first = await aios_client.start_run(manifest.name, SMALL, manifest=manifest)
    assert (await aios_client.result(first.run_id)).recalled == []
    second = await aios_client.start_run(manifest.name, SMALL, manifest=manifest)
    recalled = (await aios_client.result(second.run_id)).recalled
    # Told once: its outcome memory, or (the memory store held by another process) its run
    # history; never both.
    assert len(recalled) == 1
    assert first.run_id in recalled[0] and "completed" in recalled[0] and "payout 40" in recalled[0]
    other = await aios_client.start_run(
        manifest.name, {**SMALL, "customer": "someone-else"}, manifest=manifest
    )
    assert (await aios_client.result(other.run_id)).recalled == []
