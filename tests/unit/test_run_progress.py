"""AgentRun's one state crosses continue-as-new by construction: every field says how, and
a field set before the carry is the same after it, whether there today or added later."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from pydantic import ValidationError

from aios.models.events import RunEvent
from aios.models.manifest import Grade, RiskClass
from aios.models.run import (
    ActionCall,
    CacheSavings,
    DayCapOverride,
    EffectInDoubt,
    PendingApproval,
    Proposal,
    ProposedAction,
    RefusedDecision,
    RunCarry,
    RunInput,
    RunStatus,
    StepRecord,
)
from workflows.run_progress import CARRIED, CROSSING, RunProgress

P = TypeVar("P", bound=RunProgress)
HISTORIES = Path(__file__).parents[1] / "replay" / "histories"
# Carries written by the code that built RunCarry by hand: the first history of a continued run.
RECORDED_CARRIES = sorted(HISTORIES.glob("continued.run1*.json"))
RUN_ID = "run-progress-test"
WHEN = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
PROPOSED = ProposedAction(action="send_email", params={"to": "a"}, amount=3.0, confidence=0.9, rationale="r")
UNDO = ActionCall(run_id=RUN_ID, step=1, effect_key=f"{RUN_ID}/step-1/x/undo/y", action="y", connector="fake")

# A value unlike the default for every field that must survive continue-as-new.
NOT_DEFAULT: dict[str, Any] = {
    "status": RunStatus.RUNNING,
    "turn": 7,
    "proposals": [Proposal(step=1, turn=1, proposed=PROPOSED, grade=Grade.AUTO, grade_reason="low")],
    "steps": [StepRecord(step=1, action="send_email", grade=Grade.AUTO, status="executed", effect_key="k")],
    "refused": [RefusedDecision(received="approve {}", reason="nothing pending")],
    "pending": PendingApproval(
        step=2, action="refund", amount=9.0, confidence=0.5, rationale="r", approvers=["ann"], since=WHEN
    ),
    "tokens": 1234,
    "cost": 0.125,
    "cache_saved": CacheSavings(hits=2, tokens=240, cost=0.12),
    "highest_risk": RiskClass.MEDIUM,
    "outcome": "so far so good",
    "recalled": ["a memory"],
    "awaiting_operator": EffectInDoubt(effect_key="k", step=2, action="refund", since=WHEN, reason="?"),
    "paused_until": WHEN,
    "day_cap_override": DayCapOverride(by="ann", at=WHEN),
    "received": [RunEvent(event_id="evt-1", topic="refund.requested", data={"amount": 30})],
    "delegated_tokens": 321,
    "delegated_cost": 0.25,
    "step": 4,
    "paused": True,
    "resumes": 2,
    "extra_tokens": 500,
    "extra_cost": 1.5,
    "override_day": True,
    "event_count": 19,
    "children": 3,
}


def started_input(history: Path) -> RunInput:
    events = json.loads(history.read_text())["events"]
    attributes = events[0]["workflowExecutionStartedEventAttributes"]
    return RunInput.model_validate_json(base64.b64decode(attributes["input"]["payloads"][0]["data"]))


def continued_input(history: Path) -> RunInput:
    """The input the first history handed to the next: the old code's RunCarry, as recorded."""
    events = json.loads(history.read_text())["events"]
    attributes = events[-1]["workflowExecutionContinuedAsNewEventAttributes"]
    return RunInput.model_validate_json(base64.b64decode(attributes["input"]["payloads"][0]["data"]))


@pytest.fixture
def request_() -> RunInput:
    return started_input(RECORDED_CARRIES[-1])


def carried_over(progress: P, kind: type[P]) -> P:
    """Continue-as-new, as the workflow does it: carry, through JSON, and the next history."""
    carry = progress.carry(continuations=3)
    request = progress.request.model_copy(update={"continued": carry})
    wire = type(carry).model_validate_json(carry.model_dump_json())
    assert wire == carry
    return kind.resumed(request.model_copy(update={"continued": wire}), progress.run_id)


def test_every_field_says_how_it_crosses_continue_as_new() -> None:
    for each in fields(RunProgress):
        if each.name in ("request", "run_id"):
            continue  # the next history's own input and workflow id
        assert each.metadata.get(CROSSING) in ("shown", "carried", "this_history"), each.name
        if each.metadata[CROSSING] == "this_history":
            assert each.metadata["why"], f"{each.name} says why it need not be carried"


def test_the_carried_fields_are_runcarrys_own() -> None:
    own = set(RunCarry.model_fields) - {"schema_version", "state", "compensations", "continuations"}
    assert set(RunProgress.crossing("carried")) == own


def test_every_field_that_must_survive_a_carry_does(request_: RunInput) -> None:
    must_survive = set(RunProgress.crossing("shown")) | set(RunProgress.crossing("carried"))
    assert set(NOT_DEFAULT) == must_survive, "a new field needs a value here, then it is checked"
    progress = RunProgress(request_, RUN_ID)
    for name, value in NOT_DEFAULT.items():
        assert getattr(progress, name) != value, f"{name}: the value must differ from the default"
        setattr(progress, name, value)
    progress.saga.add(UNDO)
    after = carried_over(progress, RunProgress)
    for name, value in NOT_DEFAULT.items():
        assert getattr(after, name) == value, name
    assert after.saga.pending == [UNDO]
    assert after.snapshot() == progress.snapshot()


@dataclass(eq=False)
class LaterProgress(RunProgress):
    """A field added later, declared carried, and nothing else written for it (RunCarry lacks it)."""

    reminders_sent: int = field(default=0, metadata=CARRIED)


class LaterCarry(RunCarry):
    reminders_sent: int = 0


def test_a_field_added_later_is_carried_without_another_line(request_: RunInput) -> None:
    class Later(LaterProgress):
        carry_model = LaterCarry  # the carry gains the field: nothing else is written for it

    progress = Later(request_, RUN_ID)
    progress.reminders_sent = 5
    assert carried_over(progress, Later).reminders_sent == 5


def test_a_carried_field_the_carry_lacks_fails_loudly(request_: RunInput) -> None:
    progress = LaterProgress(request_, RUN_ID, reminders_sent=5)
    with pytest.raises(ValidationError, match="reminders_sent"):
        progress.carry(continuations=1)


@pytest.mark.parametrize("history", RECORDED_CARRIES, ids=lambda path: path.stem)
def test_a_carry_written_by_the_old_code_is_read_and_written_again_unchanged(history: Path) -> None:
    request = continued_input(history)
    carry = request.continued
    assert carry is not None and carry.event_count > 0
    progress = RunProgress.resumed(request, carry.state.run_id)
    again = progress.carry(continuations=carry.continuations)
    assert again.model_dump(mode="json") == carry.model_dump(mode="json")
    assert again.model_dump_json() == carry.model_dump_json()
