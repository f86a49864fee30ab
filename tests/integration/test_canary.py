"""Canary rollouts: a candidate manifest takes a share of runs, or runs in shadow beside them."""

from __future__ import annotations

from aios.client import AiosClient
from aios.models.manifest import ActionSpec, RiskClass
from aios.models.run import RunStatus
from tests.support.effect_server import EffectServer
from tests.support.manifests import noop_manifest, refund_like_manifest


async def test_shadow_candidate_runs_beside_the_live_run_and_diff_compares_them(
    aios_client: AiosClient, effect_server: EffectServer
) -> None:
    current = refund_like_manifest(effect_server.url)
    extra = ActionSpec(connector="http", risk=RiskClass.HIGH, target=f"{effect_server.url}/effects/audit")
    candidate = current.model_copy(update={"actions": {**current.actions, "audit_trail": extra}})
    await aios_client.start_canary(candidate, shadow=True)
    try:
        started = await aios_client.start_run(
            current.name, {"customer": "c-3", "amount": 20}, manifest=current
        )
        assert started.shadow_run_id is not None
        live = await aios_client.result(started.run_id)
        shadow = await aios_client.result(started.shadow_run_id)
    finally:
        await aios_client.end_canary(current.name)

    assert live.manifest_version == current.version
    assert (shadow.manifest_version, shadow.mode) == (candidate.version, "shadow")
    assert live.status is RunStatus.COMPLETED
    assert all(step.status == "shadowed" for step in shadow.steps)
    assert effect_server.effects_for("/audit") == 0  # the shadow proposed it; nothing ran
    assert effect_server.effects_for("/charge") == 1  # only the live run acted

    report = await aios_client.version_diff(current.name)
    assert len(report.pairs) == 1
    pair = report.pairs[0]
    assert (pair.live_run, pair.shadow_run) == (started.run_id, started.shadow_run_id)
    assert not pair.same
    assert ("audit_trail", "needs_approval") in pair.shadow
    assert ("audit_trail", "needs_approval") not in pair.live
    assert set(report.runs_by_version) == {current.version, candidate.version}


async def test_live_canary_takes_its_share_of_runs(aios_client: AiosClient) -> None:
    current = noop_manifest(1)
    candidate = noop_manifest(2, name=current.name)
    await aios_client.start_canary(candidate, share=1.0)
    on_candidate = await aios_client.start_run(current.name, {}, manifest=current)
    await aios_client.end_canary(current.name)
    after = await aios_client.start_run(current.name, {}, manifest=current)

    assert on_candidate.manifest_version == candidate.version
    assert after.manifest_version == current.version
    assert len((await aios_client.result(on_candidate.run_id)).steps) == 2
    assert len((await aios_client.result(after.run_id)).steps) == 1
