"""Replay the recorded AgentRun histories against today's workflow code; no server needed.

A failure here means a change would break runs already in flight (workflow code, the
policy it calls, or the models its payloads decode into): guard it with `workflow.patched`.
Re-record (`make replay-record`) to add the new behaviour, not to hide the failure. The
last two tests show the check has teeth, and how a patched change passes it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.converter import DataConverter
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from aios.inbound import InboundPayloadConverter
from tests.replay.variants import PatchedExtraWait, UnpatchedExtraWait
from workers.main import workflow_runner
from workflows import WORKFLOWS

HISTORIES = Path(__file__).parent / "histories"
HISTORY_FILES = sorted(HISTORIES.glob("*.json"))
EXPECTED_PATHS = {
    "auto",
    "approved",
    "approved_by_signal",
    "rejected",
    "compensated",
    "expired",
    "cancelled",
    "paused",
    "paused_at_gate",
    "budget_paused",
    "continued",
}


def load_history(file: Path) -> WorkflowHistory:
    history = json.loads(file.read_text())
    # Replay under the run's own id: the workflow derives its effect and audit keys from it.
    started = history["events"][0]["workflowExecutionStartedEventAttributes"]
    return WorkflowHistory.from_json(started.get("workflowId", file.stem), history)


def replayer_for(workflows: Iterable[type]) -> Replayer:
    """Configured like the worker: same converter, same sandbox passthrough."""
    return Replayer(
        workflows=list(workflows),
        data_converter=DataConverter(payload_converter_class=InboundPayloadConverter),
        workflow_runner=workflow_runner(),
    )


async def every_history() -> AsyncIterator[WorkflowHistory]:
    for file in HISTORY_FILES:
        yield load_history(file)


def test_every_path_has_a_recorded_history() -> None:
    missing = EXPECTED_PATHS - {file.stem for file in HISTORY_FILES}
    assert not missing, f"no history for {sorted(missing)}: run `make replay-record`"


@pytest.mark.parametrize("history_file", HISTORY_FILES, ids=lambda file: file.stem)
async def test_history_replays_on_the_current_workflow(history_file: Path) -> None:
    await replayer_for(WORKFLOWS).replay_workflow(load_history(history_file))


async def test_an_unguarded_change_fails_every_replay() -> None:
    results = await replayer_for([UnpatchedExtraWait]).replay_workflows(
        every_history(), raise_on_replay_failure=False
    )
    recorded_runs = {load_history(file).run_id for file in HISTORY_FILES}
    assert recorded_runs, "no histories to replay"
    assert set(results.replay_failures) == recorded_runs
    for failure in results.replay_failures.values():
        assert isinstance(failure, NondeterminismError), failure


async def test_the_same_change_behind_a_patch_replays_every_history() -> None:
    results = await replayer_for([PatchedExtraWait]).replay_workflows(every_history())
    assert results.replay_failures == {}
