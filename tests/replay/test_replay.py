"""Replay the recorded AgentRun histories against today's workflow code; no server needed.

A failure here means a change would break runs already in flight (workflow code, the
policy it calls, or the models its payloads decode into): guard it with `workflow.patched`.
Re-record (`make replay-record`) to add the new behaviour, not to hide the failure. The
last two tests show the check has teeth, and how a patched change passes it.

Each file belongs to a generation of the code (<path>.vN.json: N; <path>.json: the recorded
one), and workflows/versions.py lists the patches of each: a history holds the markers of the
patches every run asks for up to its generation, and none of a later one.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.converter import DataConverter
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from aios.temporal.inbound import InboundPayloadConverter
from tests.replay.variants import PatchedExtraWait, UnpatchedExtraWait
from workers.main import workflow_runner
from workflows.registry import WORKFLOWS
from workflows.versions import GENERATIONS, RECORDED_GENERATION, VERSIONS, patches_up_to

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


GENERATION_SUFFIX = re.compile(r"\.v(\d+)$")


def generation_of(file: Path) -> int:
    """<path>.vN.json was recorded on generation N's code; a file without a suffix on the recorded one."""
    suffix = GENERATION_SUFFIX.search(file.stem)
    return int(suffix.group(1)) if suffix else RECORDED_GENERATION


def patch_markers(file: Path) -> set[str]:
    """The patch ids the recorded run asked for (its `core_patch` markers)."""
    ids = set()
    for event in json.loads(file.read_text())["events"]:
        marker = event.get("markerRecordedEventAttributes")
        if marker and marker["markerName"] == "core_patch":
            payload = marker["details"]["patch-data"]["payloads"][0]["data"]
            ids.add(json.loads(base64.b64decode(payload))["id"])
    return ids


def load_history(file: Path) -> WorkflowHistory:
    history = json.loads(file.read_text())
    # Replay under the run's own id: the workflow derives its effect and audit keys from it.
    started = history["events"][0]["workflowExecutionStartedEventAttributes"]
    return WorkflowHistory.from_json(started.get("workflowId", file.stem), history)


def replayer_for(workflows: Iterable[type], *, strict: bool = False) -> Replayer:
    """Configured like the worker: same converter, same sandbox passthrough (`strict`: the
    sandbox re-imports our workflow code for each run and guards it at run time too)."""
    return Replayer(
        workflows=list(workflows),
        data_converter=DataConverter(payload_converter_class=InboundPayloadConverter),
        workflow_runner=workflow_runner(strict=strict),
    )


async def every_history() -> AsyncIterator[WorkflowHistory]:
    for file in HISTORY_FILES:
        yield load_history(file)


def test_every_path_has_a_recorded_history() -> None:
    missing = EXPECTED_PATHS - {file.stem for file in HISTORY_FILES}
    assert not missing, f"no history for {sorted(missing)}: run `make replay-record`"


def test_every_generation_before_the_recorded_one_has_histories() -> None:
    recorded = {generation_of(file) for file in HISTORY_FILES}
    assert recorded <= set(GENERATIONS)
    assert recorded == {generation for generation in GENERATIONS if generation <= RECORDED_GENERATION}


@pytest.mark.parametrize("history_file", HISTORY_FILES, ids=lambda file: file.stem)
def test_history_holds_the_patches_of_its_generation(history_file: Path) -> None:
    generation = generation_of(history_file)
    markers = patch_markers(history_file)
    asked_by_every_run = {v.patch for v in VERSIONS if v.every_run and v.generation <= generation}
    assert markers <= patches_up_to(generation), f"patches from after generation {generation}"
    assert asked_by_every_run <= markers, f"patches of generation {generation} or before are missing"


@pytest.mark.parametrize("sandbox", ["worker", "strict"])
@pytest.mark.parametrize("history_file", HISTORY_FILES, ids=lambda file: file.stem)
async def test_history_replays_on_the_current_workflow(history_file: Path, sandbox: str) -> None:
    await replayer_for(WORKFLOWS, strict=sandbox == "strict").replay_workflow(load_history(history_file))


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
