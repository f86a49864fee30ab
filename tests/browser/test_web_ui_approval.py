"""An operator approves a waiting run from the Temporal Web UI, in a real (headless) browser.

The README's recipe, followed literally: filter the workflows by the run's search attributes,
open the run, "Send a Signal" named `approve` with `{"approver": "alice", "note": ...}`. A
hurried first click with no input is refused and recorded, and leaves the run approvable.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from aios.client import AiosClient
from aios.models.run import RunStatus
from tests.support.effect_server import EffectServer
from tests.support.manifests import refund_like_manifest
from tests.support.runs import audit_story, wait_for_state, wait_for_status

if TYPE_CHECKING:
    from tests.browser.webui import TemporalWebUi

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.timeout(120)]

NOTE = "checked the order in the Web UI"


async def _wait_listed(client: AiosClient, agent: str, run_id: str, *, within: float = 15) -> None:
    """Visibility (what the UI's filter reads) lags the run's own state by a moment."""
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        if any(run.run_id == run_id for run in await client.list_runs(agent=agent, state="waiting_approval")):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{run_id} is not listed as waiting_approval after {within}s")


async def _approval_audit(client: AiosClient, run_id: str) -> list[tuple[str, str, str, str]]:
    """Alice's rows in the run's audit trail, opened with the subject's key."""
    story = await audit_story(client.settings, run_id)
    return [(row.actor, row.action, row.outcome, row.rationale) for row in story if row.actor == "alice"]


async def test_approve_a_waiting_run_from_the_web_ui(
    aios_client: AiosClient, effect_server: EffectServer, web_ui: TemporalWebUi
) -> None:
    manifest = refund_like_manifest(effect_server.url)
    started = await aios_client.start_run(
        manifest.name, {"customer": "c-ui", "amount": 250}, manifest=manifest
    )
    waiting = await wait_for_status(aios_client, started.run_id, RunStatus.WAITING_APPROVAL)
    assert waiting.pending_approval is not None
    assert waiting.pending_approval.action == "payout"
    await _wait_listed(aios_client, manifest.name, started.run_id)

    # Find it the way an operator would: by its search attributes.
    query = f'AiosState="waiting_approval" AND AiosAgent="{manifest.name}"'
    link = await web_ui.find_run(query, started.run_id)
    await web_ui.screenshot("1-filtered-list")
    await link.click()
    await web_ui.expect_status("Running")
    await web_ui.screenshot("2-waiting")

    # A hurried click first: `approve` with no input is refused and recorded; the run still waits.
    dialog = await web_ui.open_signal_form()
    await web_ui.fill_signal(dialog, "approve", None)
    await web_ui.submit_signal(dialog)
    refused = await wait_for_state(aios_client, started.run_id, lambda state: bool(state.refused_decisions))
    assert refused.status is RunStatus.WAITING_APPROVAL
    assert refused.refused_decisions[0].reason.startswith("malformed approve: approver: Field required")
    assert refused.refused_decisions[0].received == "approve (no input)"
    await web_ui.screenshot("3-empty-signal-refused")

    dialog = await web_ui.open_signal_form()
    await web_ui.fill_signal(dialog, "approve", {"approver": "alice", "note": NOTE})
    await web_ui.screenshot("4-signal-form")
    await web_ui.submit_signal(dialog)

    final = await asyncio.wait_for(aios_client.result(started.run_id), timeout=30)
    assert final.status is RunStatus.COMPLETED
    payout = next(step for step in final.steps if step.action == "payout")
    assert (payout.status, payout.decided_by) == ("executed", "alice")
    assert effect_server.effects_for("/payout") == 1
    assert ("alice", "payout", "approve", NOTE) in await _approval_audit(aios_client, started.run_id)

    await web_ui.page.reload()
    await web_ui.expect_status("Completed")
    await web_ui.screenshot("5-completed")
