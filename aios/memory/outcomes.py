"""What a run remembers when it ends (docs/ARCHITECTURE.md, "Memory that compounds").

Pure functions of the run's final state, called inside the workflow: the same state gives the
same requests, whose keys (`<run>/outcome`, `<run>/step-<n>`) make `memory.remember` write each
once however often a retry or a replay asks. A run that compensated says so ("undone"), never
that it did what it undid.
"""

from __future__ import annotations

from aios.memory.messages import RememberRequest
from aios.models.manifest import AgentManifest
from aios.models.run import Proposal, RunState, RunStatus, StepRecord

TEXT_CHARS = 1500  # an outcome is a summary; the run's own record has the rest
ENDED = {
    RunStatus.COMPLETED: "completed",
    RunStatus.COMPENSATED: "did not finish and its steps were undone (compensated)",
    RunStatus.NEEDS_OPERATOR: "did not finish and an undo failed (the operator settles it)",
}


def outcome_memories(state: RunState, manifest: AgentManifest, subject: str) -> list[RememberRequest]:
    """The run's outcome, and with `memory.remember: facts` one memory per executed step."""
    spec = manifest.memory
    if spec.remember == "none":
        return []
    provenance = [f"run:{state.run_id}", f"version:{state.manifest_version}"]
    remembered = [
        _request(
            state,
            manifest,
            subject,
            where="outcome",
            text=_outcome_text(state, subject),
            tags=["outcome", *provenance],
        )
    ]
    if spec.remember == "facts":
        for step in state.steps:
            if step.status == "executed":
                tags = ["fact", f"step:{step.step}", *provenance]
                fact = _fact_text(state, step)
                remembered.append(
                    _request(state, manifest, subject, where=f"step-{step.step}", text=fact, tags=tags)
                )
    return remembered


def _request(
    state: RunState, manifest: AgentManifest, subject: str, *, where: str, text: str, tags: list[str]
) -> RememberRequest:
    return RememberRequest(
        key=f"{state.run_id}/{where}",
        agent=manifest.name,
        text=text[:TEXT_CHARS],
        kind=manifest.memory.kind,
        subject=subject,
        tags=tags,
        importance=manifest.memory.importance,
        source_run=state.run_id,
    )


def _outcome_text(state: RunState, subject: str) -> str:
    ended = ENDED.get(state.status, state.status.value)
    steps = "; ".join(_step_words(step, _proposal(state, step.step)) for step in state.steps) or "none"
    about = f" for {subject}" if subject else ""
    outcome = (state.outcome or "no outcome given").rstrip(".")
    return f"Run {state.run_id}{about} {ended}: {outcome}. Steps: {steps}."


def _fact_text(state: RunState, step: StepRecord) -> str:
    proposal = _proposal(state, step.step)
    params = proposal.proposed.params if proposal else {}
    shown = ", ".join(f"{name}={value}" for name, value in sorted(params.items()))
    return f"In run {state.run_id}, step {step.step}: {step.action}({shown}) was executed."


# A saga's undo steps are recorded under their own (compensation) action.
STEP_WORDS = {"compensated": "ran to undo the steps before", "compensation_failed": "failed to undo"}


def _step_words(step: StepRecord, proposal: Proposal | None) -> str:
    amount = proposal.proposed.amount if proposal else None
    shown = f" {amount:g}" if amount is not None else ""
    return f"{step.action}{shown} {STEP_WORDS.get(step.status, step.status)}"


def _proposal(state: RunState, step: int) -> Proposal | None:
    return next((p for p in reversed(state.proposals) if p.step == step), None)
