"""Every signal and update of every workflow takes every shape an operator can send, unharmed.

The walk covers each workflow class the worker registers: a handler added later is walked
too, and one declared outside the door of workflows/inbound.py fails the first test. Each
shape goes to a live run on the real dev server: no input and two inputs through
`temporal workflow signal` / `temporal workflow update execute` (the Web UI sends the same),
the rest through the Python client, including a 1 MB string and bytes that are not UTF-8.
A signal's bad input is refused and recorded; an update's is refused by its validator and
never enters history; afterwards the run answers queries and goes on as before.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import RawValue

from aios.client import AiosClient
from aios.models.run import RunStatus
from aios.settings import Settings
from aios.stack import temporal
from aios.temporal.inbound import InputRefused, UndecodableInput, read_input
from tests.integration.test_reconcile import charge_in_doubt, stripe_charge_input
from tests.support.effect_server import EffectServer
from tests.support.manifests import refund_like_manifest
from tests.support.runs import audit_story, wait_for_status
from workflows.agent_run import AgentRunWorkflow
from workflows.inbound import inbound_model
from workflows.reconcile import ReconcileEffectWorkflow
from workflows.registry import WORKFLOWS

pytestmark = pytest.mark.integration

NOT_UTF8 = Payload(metadata={"encoding": b"json/plain"}, data=b'{"approver": "al\xff\xfeice"}')


@dataclass(frozen=True)
class Shape:
    name: str
    cli_inputs: tuple[str, ...] | None = None  # sent with the temporal CLI when set
    values: tuple[Any, ...] = ()  # else sent with the Python client

    @property
    def decoded(self) -> tuple[Any, ...]:
        """What the handler receives, to know whether the model takes it."""
        if self.cli_inputs is not None:
            return tuple(json.loads(text) for text in self.cli_inputs)
        return tuple(
            UndecodableInput("json/plain", "", "") if isinstance(v, RawValue) else v for v in self.values
        )


SHAPES = [
    Shape("no input", cli_inputs=()),
    Shape("two inputs", cli_inputs=("{}", "{}")),
    Shape("null", values=(None,)),
    Shape("a number", values=(42,)),
    Shape("a string", values=("approve",)),
    Shape("a list", values=([1, 2],)),
    Shape("a wrong object", values=({"colour": "blue"},)),
    Shape("unknown fields", values=({"approver": "alice", "by": "alice", "surprise": True},)),
    Shape("a 1 MB string", values=("x" * 1_000_000,)),
    Shape("not UTF-8", values=(RawValue(NOT_UTF8),)),
]


def handlers(kind: str) -> list[tuple[type, str, Callable[..., Any]]]:
    """(workflow class, public name, handler) of every registered signal or update."""
    found = []
    for cls in WORKFLOWS:
        definition = workflow._Definition.must_from_class(cls)
        table = definition.signals if kind == "signal" else definition.updates
        found += [(cls, name, handler.fn) for name, handler in table.items() if name is not None]
    return found


def test_every_handler_takes_its_input_through_the_one_door() -> None:
    undeclared = [
        f"{cls.__name__}.{name}"
        for kind in ("signal", "update")
        for cls, name, fn in handlers(kind)
        if inbound_model(fn) is None
    ]
    assert not undeclared, f"declare these with workflows.inbound: {undeclared}"
    assert {name for _, name, _ in handlers("signal")} >= {"approve", "reject", "pause", "resume", "webhook"}


def refused(model: type, shape: Shape) -> bool:
    return isinstance(read_input(model, shape.decoded, "x"), InputRefused)


def temporal_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    binary = temporal.find_binary(settings)
    assert binary is not None, "the Temporal CLI is part of the local stack"
    address = ["--address", settings.temporal_address, "--namespace", settings.temporal_namespace]
    return subprocess.run(
        [str(binary), "workflow", *args, *address], capture_output=True, text=True, timeout=60, check=False
    )


async def send_signal(settings: Settings, handle: WorkflowHandle[Any, Any], name: str, shape: Shape) -> None:
    if shape.cli_inputs is None:
        await handle.signal(name, args=shape.values)
        return
    inputs = [part for text in shape.cli_inputs for part in ("--input", text)]
    sent = temporal_cli(settings, "signal", "--workflow-id", handle.id, "--name", name, *inputs)
    assert sent.returncode == 0, sent.stderr


async def send_update(handle: WorkflowHandle[Any, Any], name: str, shape: Shape) -> str:
    """The validator's refusal, as the sender sees it. Through the Python client: an update
    sent with `temporal workflow update execute` (CLI 1.5.1) stalls the worker's workflow task
    for ~40 s with any input, valid or not, in this SDK version (README, "Approving from the
    Temporal Web UI")."""
    values = shape.values if shape.cli_inputs is None else tuple(json.loads(t) for t in shape.cli_inputs)
    with pytest.raises(WorkflowUpdateFailedError) as failed:
        await handle.execute_update(name, args=values)
    return str(failed.value.cause)


async def walk_signals(
    settings: Settings,
    handle: WorkflowHandle[Any, Any],
    cls: type,
    refusals: Callable[[], Awaitable[int]],
) -> None:
    """Every shape to every signal of `cls`; each refusal is recorded, one per bad input."""
    for _, name, fn in (entry for entry in handlers("signal") if entry[0] is cls):
        model = inbound_model(fn)
        assert model is not None
        for shape in SHAPES:
            before = await refusals()
            await send_signal(settings, handle, name, shape)
            # A query waits for the workflow task that took the signal: the count is settled then.
            expected = before + (1 if refused(model, shape) else 0)
            assert await refusals() == expected, f"{cls.__name__}.{name} with {shape.name}"


async def walk_updates(handle: WorkflowHandle[Any, Any], cls: type) -> None:
    for _, name, fn in (entry for entry in handlers("update") if entry[0] is cls):
        model = inbound_model(fn)
        assert model is not None
        for shape in SHAPES:
            said = await send_update(handle, name, shape)
            assert "expected {" in said, f"{name} with {shape.name}: {said}"
    history = await handle.fetch_history()
    accepted = [
        e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    ]
    assert accepted == [], "a refused update never reaches history"


async def test_an_agent_run_takes_every_shape_and_stays_approvable(
    aios_client: AiosClient, effect_server: EffectServer
) -> None:
    manifest = refund_like_manifest(effect_server.url)
    started = await aios_client.start_run(
        manifest.name, {"customer": "c-1", "amount": 250}, manifest=manifest
    )
    await wait_for_status(aios_client, started.run_id, RunStatus.WAITING_APPROVAL)
    handle = aios_client.temporal.get_workflow_handle(started.run_id)

    async def refusals() -> int:
        return len((await aios_client.state(started.run_id)).refused_decisions)

    await walk_signals(aios_client.settings, handle, AgentRunWorkflow, refusals)
    await walk_updates(handle, AgentRunWorkflow)

    state = await aios_client.state(started.run_id)
    assert state.status is RunStatus.WAITING_APPROVAL, state.status  # resume's valid shapes undid pause's
    assert any("not readable JSON" in r.reason for r in state.refused_decisions)
    assert any("takes one JSON object, got 2 inputs" in r.reason for r in state.refused_decisions)
    await audit_has_refusals(aios_client.settings, started.run_id, len(state.refused_decisions))
    await aios_client.decide(started.run_id, "approve", approver="alice")
    final = await aios_client.result(started.run_id)
    assert final.status is RunStatus.COMPLETED
    assert effect_server.duplicates() == 0


async def audit_has_refusals(settings: Settings, run_id: str, count: int) -> None:
    refused = [row for row in await audit_story(settings, run_id) if row.outcome == "refused"]
    assert len(refused) == count, f"{len(refused)} audit rows for {count} refusals"


async def test_a_reconciler_takes_every_shape_and_still_settles(
    aios_client: AiosClient, temporal_client: Client, task_queue: str
) -> None:
    key = f"shapes/{task_queue}/charge"
    await charge_in_doubt(aios_client.settings.resolved_database_url, key)
    request = stripe_charge_input(
        key, poll_interval=timedelta(minutes=10), max_duration=timedelta(minutes=30)
    )
    handle = await temporal_client.start_workflow(
        ReconcileEffectWorkflow.run, request, id=f"reconcile-{key}", task_queue=task_queue
    )

    async def refusals() -> int:
        progress = await handle.query("state")
        assert isinstance(progress, dict)
        return int(progress["refused_count"])

    await walk_signals(aios_client.settings, handle, ReconcileEffectWorkflow, refusals)
    event = {
        "event_id": "ev-1",
        "source": "stripe",
        "effect_key": key,
        "outcome": "succeeded",
        "response": {},
    }
    await handle.signal("webhook", event)
    result = await handle.result()
    assert (result["outcome"] if isinstance(result, dict) else result.outcome) == "succeeded"
