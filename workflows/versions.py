"""Every version of the workflows' commands: one `workflow.patched` id each, oldest first.

A change to the commands a workflow emits is guarded by `workflow.patched(ID)` so runs started
on older code replay the way they ran (tests/replay/test_replay.py). This module names
every id, the generation of code that introduced it, what it changed, and which code exists
only for the runs from before it: the code that can go once no such run is open (then the
call becomes `workflow.deprecate_patch(ID)` for one more generation, and then nothing).

Generations are the replay corpus's: tests/replay/histories/<path>.vN.json was recorded on
generation N's code, and <path>.json (no suffix) on RECORDED_GENERATION's. A new patch gets
the generation after the newest one here; when the histories are recorded again (`make
replay-record`), keep the old files as <path>.vN.json and raise RECORDED_GENERATION. The
`patched()` calls stay where they are (moving one changes the order of the commands);
tests/unit/test_workflow_versions.py checks that each call names an id listed here and that
every listed id is called, and tests/replay/test_replay.py that each history holds the
patches of its generation and none of a later one.
"""

from __future__ import annotations

from dataclasses import dataclass

FUSED_BOOKKEEPING_PATCH = "fused-bookkeeping"
CONTINUE_AS_NEW_PATCH = "continue-as-new"
RECONCILE_PATCH = "reconcile-unknown-effects"
MEMORY_RECALL_PATCH = "memory-recall"
ACT_IN_THINK_PATCH = "act-in-think"
RECORD_CHECKPOINTS_PATCH = "record-checkpoints"
THINK_CHAINS_PATCH = "think-chains"
BUDGET_DAY_TURNS_PATCH = "budget-day-turns"
OPERATOR_SETTLES_PATCH = "operator-settles-unknown-effects"
DELEGATION_PATCH = "delegation"
NOTIFY_PATCH = "operator-notifications"
VERIFIED_DECISIONS_PATCH = "verified-decisions"
OUTCOME_MEMORY_PATCH = "outcome-memory"
MEMORY_HOLDER_PATCH = "memory-holder"


@dataclass(frozen=True)
class Version:
    """One `workflow.patched` id and what it means."""

    patch: str
    generation: int
    where: str
    changed: str
    legacy: str
    """The code that exists only for runs from before the patch."""
    every_run: bool = False
    """The call is made by every run as it starts, so every history of its generation or a
    later one holds its marker (the others are asked only on the path they guard)."""


GENERATIONS: dict[int, str] = {
    1: "the first recorded AgentRun: every step's bookkeeping in activities of its own",
    2: "the conductor: cheap work inside the workflow task; continue-as-new; memory recall; "
    "reconciling unknown effects",
    3: "an approved inline act rides in the next think",
    4: "checkpoints end the workflow task with a record activity instead of a 1 ms timer",
    5: "think chains",
    6: "budget days and operator-settled effects (on paths the recorded histories do not take)",
    7: "delegation: a `connector: agent` action starts a child run (a path the recorded histories "
    "do not take)",
    8: "the operator's loop: notifications and signed decision links",
    9: "outcome memory: a run remembers what happened when it ends",
    10: "several workers, one memory: a worker without the store asks its holder to recall (a path "
    "the recorded histories do not take)",
}
RECORDED_GENERATION = 5
"""The generation of the code the unsuffixed histories (tests/replay/histories/<path>.json) ran on."""

VERSIONS: tuple[Version, ...] = (
    Version(
        RECONCILE_PATCH,
        generation=2,
        where="workflows/effects.py reconcile_effect",
        changed="after a connector's final failure a ReconcileEffect child settles an effect the "
        "ledger calls unknown, by asking the service, never guessing",
        legacy="`if not workflow.patched(RECONCILE_PATCH): return None` (no reconciler)",
    ),
    Version(
        MEMORY_RECALL_PATCH,
        generation=2,
        where="workflows/run_setup.py recall",
        changed="a run starts by recalling long-term memories about its task's subject",
        legacy="the run recalls earlier runs only",
    ),
    Version(
        FUSED_BOOKKEEPING_PATCH,
        generation=2,
        where="workflows/agent_run.py AgentRunWorkflow.run",
        changed="slot, recall and inline connectors run as local activities inside the workflow "
        "task, and a step's bookkeeping (settlement, state mirror, audit rows) rides in the next "
        "turn's reservation transaction instead of three transactions of its own",
        legacy="every `if not self._fused` branch: the slot, recall and execute activities on the "
        "task queue, `_step_recorded`'s record per step, the re-raised ApplicationError in `run`",
        every_run=True,
    ),
    Version(
        CONTINUE_AS_NEW_PATCH,
        generation=2,
        where="workflows/agent_run.py AgentRunWorkflow.run",
        changed="a long run hands its state to a fresh history before Temporal's limits and ends "
        "its workflow task every CHECKPOINT_TURNS turns",
        legacy="`if not self._may_continue` in the turn loop: the run keeps one history",
        every_run=True,
    ),
    Version(
        ACT_IN_THINK_PATCH,
        generation=3,
        where="workflows/agent_run.py AgentRunWorkflow.run",
        changed="an approved inline act rides in the next think: one local activity per step instead of two",
        legacy="`self._act_in_think` False: every act is executed by a call of its own",
        every_run=True,
    ),
    Version(
        RECORD_CHECKPOINTS_PATCH,
        generation=4,
        where="workflows/bookkeeping.py RunBookkeeping._end_workflow_task",
        changed="a checkpoint ends the workflow task with the record as a regular activity",
        legacy="`workflow.sleep(TIMER_CHECKPOINT)`: a 1 ms timer, which a server may fire a second late",
    ),
    Version(
        THINK_CHAINS_PATCH,
        generation=5,
        where="workflows/agent_run.py AgentRunWorkflow.run",
        changed="while each plan is one action the policy approves outright on an inline "
        "connector, the think activity takes the next turns itself: a chain of cheap steps in "
        "one local activity",
        legacy="`self._chains` False: one think per turn",
        every_run=True,
    ),
    Version(
        BUDGET_DAY_TURNS_PATCH,
        generation=6,
        where="workflows/agent_run.py AgentRunWorkflow._budget_day_turns",
        changed="a run paused on its agent's daily cap resumes by itself when the budget day turns",
        legacy="`_budget_day_turns` returns None: the run waits for the operator",
    ),
    Version(
        OPERATOR_SETTLES_PATCH,
        generation=6,
        where="workflows/effects.py in_doubt",
        changed="when the reconciler gives up, the run waits for the operator (`aios effects "
        "resolve`) instead of compensating an effect that may have happened",
        legacy="`in_doubt` False: the run compensates",
    ),
    Version(
        DELEGATION_PATCH,
        generation=7,
        where="workflows/delegation.py Delegating._delegates",
        changed="a `connector: agent` action is admitted by the delegation.admit activity and "
        "started as a child AgentRun; the parent waits for it (or not) and takes its outcome",
        legacy="`_delegates` False: the action goes to action.execute like any other, which "
        "refuses the unknown connector `agent`",
    ),
    Version(
        NOTIFY_PATCH,
        generation=8,
        where="workflows/notifications.py notify",
        changed="a run tells people through the `notify.send` activity: a new approval (with signed "
        "approve/reject links), SLA reminder, escalation and expiry, auto_and_notify actions, "
        "budget pauses and effects that need the operator",
        legacy="`notify` returns without a command: the run only records audit rows",
    ),
    Version(
        VERIFIED_DECISIONS_PATCH,
        generation=8,
        where="workflows/operator_interface.py OperatorInterface._verified",
        changed="a decision carrying a signed link's token is checked by the `approvals.verify_link` "
        "local activity before it is judged (policy.verified_over)",
        legacy="`_verified` returns False: a token is not checked, and the decision is unverified",
    ),
    Version(
        OUTCOME_MEMORY_PATCH,
        generation=9,
        where="workflows/agent_run.py AgentRunWorkflow._remember_outcome",
        changed="a live run's end writes its outcome (and, with memory.remember: facts, each "
        "executed step) through the memory.remember activity, beside its last record",
        legacy="`_remember_outcome` returns None: the run remembers nothing",
    ),
    Version(
        MEMORY_HOLDER_PATCH,
        generation=10,
        where="workflows/run_setup.py recall",
        changed="a worker that does not hold the embedded store answers recall with the holder's "
        "queue, and the run asks the holder there (memory.recall on memory/<store>)",
        legacy="none: the patch guards a path only results with `holder_queue` take, which older "
        "workers never wrote",
    ),
)

PATCHES: frozenset[str] = frozenset(version.patch for version in VERSIONS)


def patches_up_to(generation: int) -> frozenset[str]:
    """The ids a run started on the given generation's code may have asked for."""
    return frozenset(version.patch for version in VERSIONS if version.generation <= generation)
