"""What a run remembers as it ends: composed from its final state, keyed for once-only writes."""

from __future__ import annotations

from aios.memory.outcomes import outcome_memories
from aios.models.manifest import AgentManifest, Grade
from aios.models.run import Proposal, ProposedAction, RunState, RunStatus, StepRecord
from tests.support.manifests import noop_manifest


def ended(status: RunStatus, *steps: tuple[str, str, float | None]) -> RunState:
    return RunState(
        run_id="run-7",
        agent="desk",
        manifest_version="v1",
        mode="live",
        status=status,
        outcome="all done" if status is RunStatus.COMPLETED else "a step failed: 400",
        steps=[
            StepRecord(step=n, action=action, grade=Grade.AUTO, status=state)  # type: ignore[arg-type]
            for n, (action, state, _) in enumerate(steps, start=1)
        ],
        proposals=[
            Proposal(
                step=n,
                turn=n,
                proposed=ProposedAction(
                    action=action, params={"customer": "c-1"}, amount=amount, confidence=0.9
                ),
                grade=Grade.AUTO,
                grade_reason="",
            )
            for n, (action, _, amount) in enumerate(steps, start=1)
        ],
    )


def with_memory(**memory: object) -> AgentManifest:
    return noop_manifest(2, name="desk", memory=memory)


def test_an_outcome_is_one_memory_with_its_provenance() -> None:
    [outcome] = outcome_memories(
        ended(RunStatus.COMPLETED, ("refund", "executed", 25.0)), with_memory(), "c-1"
    )
    assert outcome.key == "run-7/outcome" and outcome.source_run == "run-7" and outcome.subject == "c-1"
    assert outcome.text == "Run run-7 for c-1 completed: all done. Steps: refund 25 executed."
    assert outcome.tags == ["outcome", "run:run-7", "version:v1"] and outcome.kind == "outcome"


def test_a_compensated_run_says_undone() -> None:
    steps = [("refund", "executed", 25.0), ("reply", "failed", None), ("take_back", "compensated", 25.0)]
    [outcome] = outcome_memories(ended(RunStatus.COMPENSATED, *steps), with_memory(), "c-1")
    assert "did not finish and its steps were undone" in outcome.text and "completed" not in outcome.text
    assert (
        "Steps: refund 25 executed; reply failed; take_back 25 ran to undo the steps before." in outcome.text
    )


def test_facts_add_one_memory_per_executed_step_and_none_remembers_nothing() -> None:
    state = ended(RunStatus.COMPLETED, ("refund", "executed", 25.0), ("reply", "executed", None))
    remembered = outcome_memories(state, with_memory(remember="facts", importance=0.9, kind="ledger"), "c-1")
    assert [m.key for m in remembered] == ["run-7/outcome", "run-7/step-1", "run-7/step-2"]
    assert remembered[1].text == "In run run-7, step 1: refund(customer=c-1) was executed."
    assert {(m.kind, m.importance) for m in remembered} == {("ledger", 0.9)}
    assert outcome_memories(state, with_memory(remember="none"), "c-1") == []


def test_the_memory_knobs_at_their_defaults_leave_the_version_unchanged() -> None:
    assert with_memory().version == noop_manifest(2, name="desk").version
    assert with_memory(remember="outcomes", importance=0.5, kind="outcome").version == with_memory().version
    assert with_memory(remember="facts").version != with_memory().version
