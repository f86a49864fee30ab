"""An operator's loose ends: every input shape, a terminated slot holder, an effect in doubt.

The bad-input scenario's sequel, through the doors an operator uses: `temporal workflow
signal` with no input and with two inputs, a client sending bytes that are not UTF-8, the
`temporal workflow terminate` of a run that holds its agent's only slot, and `aios effects
resolve` for an effect whose outcome reconciliation could not learn.
"""

from __future__ import annotations

import asyncio
import subprocess
import time

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.common import RawValue

from aios.client import AiosClient
from aios.models.manifest import BudgetSpec
from aios.models.run import RunStatus
from aios.settings import Settings
from aios.stack import temporal
from tests.faults.report import REPORT, Row
from tests.integration.test_operator_settles import (
    NO_LOOKUP,
    RECONCILE_WITHIN,
    aios_cli,
    waiting_for_operator,
)
from tests.integration.test_reconcile import (
    HANG,
    charge_then_ship,
    impatient_client,  # noqa: F401  (fixture)
)
from tests.support.effect_server import EffectServer, Fault
from tests.support.manifests import refund_like_manifest
from tests.support.runs import wait_for_state, wait_for_status

pytestmark = pytest.mark.integration

NOT_UTF8 = Payload(metadata={"encoding": b"json/plain"}, data=b'{"approver": "\xff\xfe"}')


def temporal_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    binary = temporal.find_binary(settings)
    assert binary is not None
    address = ["--address", settings.temporal_address, "--namespace", settings.temporal_namespace]
    return subprocess.run(
        [str(binary), "workflow", *args, *address], capture_output=True, text=True, timeout=60, check=False
    )


async def _every_shape_is_refused(client: AiosClient, run_id: str) -> int:
    """approve with no input, two inputs (temporal CLI), non-UTF-8 bytes, a list, null."""
    for inputs in ((), ("{}", "{}")):
        flags = [part for text in inputs for part in ("--input", text)]
        sent = await asyncio.to_thread(
            temporal_cli, client.settings, "signal", "-w", run_id, "--name", "approve", *flags
        )
        assert sent.returncode == 0, sent.stderr
    handle = client.temporal.get_workflow_handle(run_id)
    for value in (RawValue(NOT_UTF8), [1, 2], None):
        await handle.signal("approve", value)
    state = await wait_for_state(client, run_id, lambda s: len(s.refused_decisions) >= 5)
    assert state.status is RunStatus.WAITING_APPROVAL, state.status
    assert all(r.reason.startswith("malformed approve") for r in state.refused_decisions), (
        state.refused_decisions
    )
    return len(state.refused_decisions)


async def test_an_operators_loose_ends_are_tied(aios_client: AiosClient, effect_server: EffectServer) -> None:
    row = REPORT.add(Row("loose ends: every input shape, a terminated slot holder", 2))
    began = time.monotonic()
    manifest = refund_like_manifest(effect_server.url, budget=BudgetSpec(max_concurrent_runs=1))
    holder = await aios_client.start_run(manifest.name, {"customer": "c-1", "amount": 250}, manifest=manifest)
    await wait_for_status(aios_client, holder.run_id, RunStatus.WAITING_APPROVAL)
    refused = await _every_shape_is_refused(aios_client, holder.run_id)

    queued = await aios_client.start_run(manifest.name, {"customer": "c-2", "amount": 250}, manifest=manifest)
    await wait_for_status(aios_client, queued.run_id, RunStatus.QUEUED)
    ended = await asyncio.to_thread(
        temporal_cli, aios_client.settings, "terminate", "-w", holder.run_id, "--reason", "operator gave up"
    )
    assert ended.returncode == 0, ended.stderr
    await wait_for_status(aios_client, queued.run_id, RunStatus.WAITING_APPROVAL, within=90)
    await aios_client.decide(queued.run_id, "approve", approver="alice")
    final = await aios_client.result(queued.run_id, within=60)
    assert final.status is RunStatus.COMPLETED
    row.completed, row.lost = 1, 0  # the holder was terminated on purpose; the queued run completed
    assert effect_server.duplicates() == 0
    row.notes = (
        f"{refused} inputs of bad shape refused and recorded (two sent with `temporal workflow signal` "
        "with no input and with two inputs); the slot of a run terminated with `temporal workflow "
        "terminate` passed to the queued run, which completed. "
    )
    row.seconds = time.monotonic() - began


async def test_an_effect_in_doubt_waits_for_the_operator(
    impatient_client: AiosClient,  # noqa: F811  (the fixture imported above)
    effect_server: EffectServer,
) -> None:
    row = REPORT.add(Row("loose ends: an effect in doubt, settled by the operator", 1))
    began = time.monotonic()
    effect_server.lookup_status = NO_LOOKUP
    effect_server.faults.extend([Fault(apply_then_hang=True, hang_seconds=HANG), Fault(status=400)])
    manifest = charge_then_ship(effect_server.url)
    started = await impatient_client.start_run(
        manifest.name, {"customer": "c-3"}, manifest=manifest, reconcile_within=RECONCILE_WITHIN
    )
    waiting = await waiting_for_operator(impatient_client, started.run_id)
    assert waiting.status is RunStatus.NEEDS_OPERATOR and waiting.awaiting_operator is not None
    key = waiting.awaiting_operator.effect_key
    args = ("effects", "resolve", key, "--applied", "--as", "alice", "--note", "the bank shows it")
    said = await asyncio.to_thread(aios_cli, *args)
    assert said.returncode == 0, said.stderr
    final = await impatient_client.result(started.run_id, within=60)
    assert final.status is RunStatus.COMPLETED
    assert effect_server.duplicates() == 0
    row.completed, row.lost = 1, 0
    row.seconds = time.monotonic() - began
    row.notes = (
        f"an effect whose outcome stayed unknown (no lookup, reconciler gave up after "
        f"{RECONCILE_WITHIN.total_seconds():g} s) left its run waiting needs_operator until "
        "`aios effects resolve --applied`; it then completed, the effect applied once."
    )
