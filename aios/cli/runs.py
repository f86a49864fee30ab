"""Run commands: start, list, show, approve/reject, pause/resume, cancel."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from aios.approvals.links import Verdict
from aios.cli.common import console, fail, run, say, settings, table
from aios.client import AiosClient
from aios.models.run import CacheSavings, RunState

app = typer.Typer()

WAIT_SECONDS = 600


async def _client() -> AiosClient:
    return await AiosClient.connect(settings())


def parse_task(raw: str | None, assignments: list[str]) -> dict[str, Any]:
    """`--input` JSON (or @file) plus `--set key=value` pairs; values parse as JSON when they can."""
    task: dict[str, Any] = {}
    if raw:
        text = Path(raw[1:]).read_text() if raw.startswith("@") else raw
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as exc:
            raise typer.BadParameter(f"--input is not valid JSON: {exc}") from exc
        if not isinstance(loaded, dict):
            raise typer.BadParameter('--input must be a JSON object, e.g. {"customer": "c-42"}')
        task.update(loaded)
    for assignment in assignments:
        key, sep, value = assignment.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"--set takes key=value, got {assignment!r}")
        try:
            task[key] = json.loads(value)
        except json.JSONDecodeError:
            task[key] = value
    return task


@app.command("run")
def run_agent(
    agent: str = typer.Argument(..., help="the agent's name (agents/<name>.yaml)"),
    input_json: str | None = typer.Option(None, "--input", "-i", help="task as a JSON object, or @file.json"),
    assignments: Annotated[
        list[str] | None, typer.Option("--set", help="task field as key=value; repeatable")
    ] = None,
    wait: bool = typer.Option(False, "--wait", help="wait until the run ends and print its outcome"),
    requested_by: str = typer.Option("operator", "--as", help="who asks for this run"),
) -> None:
    """Start a run of an agent."""
    task = parse_task(input_json, assignments or [])

    async def go() -> None:
        client = await _client()
        started = await client.start_run(agent, task, requested_by=requested_by)
        say(
            f"started {started.run_id} ({started.agent}, manifest {started.manifest_version}, {started.mode})"
        )
        if started.shadow_run_id:
            say(f"shadow run of the candidate manifest: {started.shadow_run_id}")
        say(f"Web UI: {client.run_url(started.run_id)}")
        if wait:
            final = await asyncio.wait_for(client.result(started.run_id), WAIT_SECONDS)
            print_state(final)

    run(go())


@app.command("runs")
def list_runs(
    agent: str | None = typer.Option(None, "--agent", help="only this agent's runs"),
    state: str | None = typer.Option(None, "--state", help="e.g. waiting_approval, completed, compensated"),
    limit: int = typer.Option(50, "--limit", min=1, max=1000),
) -> None:
    """Recent runs, newest first, from Temporal's visibility store."""

    async def go() -> None:
        client = await _client()
        found = await client.list_runs(agent=agent, state=state, limit=limit)
        saved = await client.cache_savings([r.run_id for r in found])
        rows = [
            (
                r.run_id,
                r.agent,
                r.state,
                r.highest_risk,
                r.manifest_version,
                r.started,
                _cached(saved.get(r.run_id)),
            )
            for r in found
        ]
        table("runs", ("run", "agent", "state", "risk", "manifest", "started", "cache"), rows)

    run(go())


@app.command("show")
def show_run(
    run_id: str = typer.Argument(...),
    as_json: bool = typer.Option(False, "--json", help="print the state as JSON"),
) -> None:
    """A run's current state: status, pending approval, every step."""

    async def go() -> None:
        client = await _client()
        state = await client.state(run_id)
        if as_json:
            console.print_json(state.model_dump_json())
        else:
            print_state(state)
            say(f"lineage: {' <- '.join(await client.lineage(run_id))}")

    run(go())


def _cached(saved: CacheSavings | None) -> str:
    """A run's cache column: how many turns the cache answered, and the tokens they saved."""
    return f"{saved.hits} hit(s), {saved.tokens} tokens saved" if saved else ""


def print_state(state: RunState) -> None:
    say(f"{state.run_id}: {state.status.value}  ({state.agent}, {state.mode}, {state.manifest_version})")
    spent = f"tokens {state.tokens_spent}, cost ${state.cost_spent:.4f}"
    say(f"turn {state.turn}, {spent}, highest risk {state.highest_risk}")
    if state.cache_saved.hits:
        saved = state.cache_saved
        say(f"model-response cache: {_cached(saved)}, cost ${saved.cost:.4f} saved")
    if state.outcome:
        say(f"outcome: {state.outcome}")
    pending = state.pending_approval
    if pending is not None:
        say(
            f"WAITING for approval of step {pending.step} ({pending.action}, amount {pending.amount}, "
            f"confidence {pending.confidence:.2f}) by {', '.join(pending.approvers)}",
            style="bold yellow",
        )
    doubt = state.awaiting_operator
    if doubt is not None:
        say(
            f"NEEDS THE OPERATOR: the outcome of step {doubt.step} ({doubt.action}) is unknown since "
            f"{doubt.since.isoformat(timespec='seconds')}. Check the service, then: aios effects resolve "
            f"{doubt.effect_key} --applied|--not-applied --as NAME --note TEXT",
            style="bold yellow",
        )
    if state.paused_until is not None:
        say(
            f"paused on a daily cap until {state.paused_until.isoformat(timespec='seconds')} "
            f"(or: aios resume {state.run_id} --override-day)",
            style="yellow",
        )
    if state.day_cap_override is not None:
        override = state.day_cap_override
        say(f"daily caps overridden by {override.by} at {override.at.isoformat(timespec='seconds')}")
    if state.delegated_tokens or state.delegated_cost:
        say(f"child runs spent tokens {state.delegated_tokens}, cost ${state.delegated_cost:.4f}")
    grades = {proposal.step: proposal for proposal in state.proposals}
    rows = []
    for step in state.steps:
        proposal = grades.get(step.step)
        rationale = proposal.proposed.rationale if proposal else ""
        rows.append((step.step, step.action, step.grade.value, step.status, step.decided_by, rationale))
    table("steps", ("#", "action", "policy", "status", "decided by", "rationale"), rows)
    for turn, model in sorted(
        {(p.turn, p.proposed.fallback_model) for p in state.proposals if p.proposed.fallback_model}
    ):
        say(f"turn {turn} was planned by the fallback model {model} (model.fallback)", style="yellow")
    for refused in state.refused_decisions:
        say(f"refused: {refused.reason}  <- {refused.received}", style="red")


def list_approvals() -> None:
    """Every run waiting for a decision (`aios approvals`, aios/cli/approvals.py)."""

    async def go() -> None:
        waiting, stuck = await (await _client()).waiting_runs()
        rows = []
        for state in waiting:
            pending = state.pending_approval
            assert pending is not None
            rows.append(
                (
                    state.run_id,
                    state.agent,
                    pending.step,
                    pending.action,
                    pending.amount,
                    f"{pending.confidence:.2f}",
                    ", ".join(pending.approvers),
                    pending.since.isoformat(timespec="seconds"),
                )
            )
        table(
            "waiting for approval",
            ("run", "agent", "step", "action", "amount", "confidence", "approvers", "since"),
            rows,
        )
        for problem in stuck:  # listed as waiting, but its workflow task fails: it cannot be decided
            say(str(problem), style="bold red")

    run(go())


def _decide(
    run_id: str | None, verdict: Verdict, approver: str, note: str, step: int | None, every: Every
) -> None:
    if not approver.strip():
        fail("--as needs the approver's name, e.g. --as alice", code=2)
    if (run_id is None) == (not every.all):
        fail(f"name one RUN, or --all for every run waiting for you (aios {verdict} --help)", code=2)
    if every.all and step is not None:
        fail("--step is for one run: --all decides each run's own pending step", code=2)
    if every.agent is not None and not every.all:
        fail("--agent goes with --all: name the RUN alone, or add --all", code=2)

    async def go() -> None:
        client = await _client()
        if run_id is not None:
            outcome = await client.decide(
                run_id, verdict, approver=approver, note=note, step=step, channel="cli"
            )
            say(f"{run_id}: {outcome.reason}")
            return
        bulk = await client.decide_waiting(verdict, approver=approver, note=note, agent=every.agent)
        say(
            f"{verdict} sent to {len(bulk.sent)} run(s) waiting for {approver}; each records it as it "
            "goes on (`aios approvals` lists what still waits)"
        )
        if bulk.not_theirs:
            say(f"left alone: {len(bulk.not_theirs)} run(s) waiting for other approvers")
        if bulk.ended:
            say(f"ended meanwhile: {len(bulk.ended)} run(s)")

    run(go())


@dataclass(frozen=True)
class Every:
    """--all and --agent: decide every run waiting for the approver (of one agent)."""

    all: bool
    agent: str | None


ALL_HELP = "every run waiting for you (one signal each, for its pending step), instead of one RUN"


@app.command("approve")
def approve(
    run_id: str | None = typer.Argument(None),
    approver: str = typer.Option(..., "--as", help="who approves; must be allowed by the manifest's policy"),
    note: str = typer.Option("", "--note"),
    step: int | None = typer.Option(None, "--step", help="the pending step (default: the current one)"),
    every: bool = typer.Option(False, "--all", help=ALL_HELP),
    agent: str | None = typer.Option(None, "--agent", help="with --all: only this agent's runs"),
) -> None:
    """Approve the pending action of a run (answers at once whether it counted), or of all (--all)."""
    _decide(run_id, "approve", approver, note, step, Every(every, agent))


@app.command("reject")
def reject(
    run_id: str | None = typer.Argument(None),
    approver: str = typer.Option(..., "--as", help="who rejects; must be allowed by the manifest's policy"),
    note: str = typer.Option("", "--note"),
    step: int | None = typer.Option(None, "--step"),
    every: bool = typer.Option(False, "--all", help=ALL_HELP),
    agent: str | None = typer.Option(None, "--agent", help="with --all: only this agent's runs"),
) -> None:
    """Reject the pending action: the run compensates what it already did (--all: every run's)."""
    _decide(run_id, "reject", approver, note, step, Every(every, agent))


@app.command("pause")
def pause(
    run_id: str | None = typer.Argument(None, help="the run to pause"),
    agent: str | None = typer.Option(None, "--agent", help="pause every run of this agent (kill switch)"),
    by: str = typer.Option("operator", "--as"),
    reason: str = typer.Option("", "--reason"),
) -> None:
    """Pause one run, or every run of an agent (and the runs it starts until resumed)."""
    _one_or_agent(run_id, agent)

    async def go() -> None:
        client = await _client()
        if agent:
            paused = await client.pause_agent(agent, by=by)
            say(f"agent {agent} paused; {len(paused)} running run(s) signalled")
        else:
            assert run_id is not None
            await client.pause(run_id, by=by, reason=reason)
            say(f"{run_id}: pause requested (takes effect before its next step)")

    run(go())


@app.command("resume")
def resume(
    run_id: str | None = typer.Argument(None),
    agent: str | None = typer.Option(None, "--agent", help="resume every run of this agent"),
    by: str = typer.Option("operator", "--as"),
    extra_tokens: int = typer.Option(0, "--extra-tokens", min=0, help="more tokens for a budget-paused run"),
    extra_cost: float = typer.Option(0.0, "--extra-cost", min=0, help="more USD for a budget-paused run"),
    override_day: bool = typer.Option(
        False,
        "--override-day",
        help="let this run's remaining turns go past its agent's daily caps (recorded in audit)",
    ),
) -> None:
    """Resume a paused run (optionally with more budget), or every run of an agent."""
    _one_or_agent(run_id, agent)
    if agent and override_day:
        fail("--override-day is for one run: name the RUN, not --agent", code=2)

    async def go() -> None:
        client = await _client()
        if agent:
            resumed = await client.resume_agent(agent, by=by)
            say(f"agent {agent} resumed; {len(resumed)} running run(s) signalled")
        else:
            assert run_id is not None
            await client.resume(
                run_id, by=by, extra_tokens=extra_tokens, extra_cost=extra_cost, override_day=override_day
            )
            past = " past its agent's daily caps (recorded)" if override_day else ""
            say(f"{run_id}: resumed{past}")

    run(go())


@app.command("cancel")
def cancel(run_id: str = typer.Argument(...)) -> None:
    """Cancel a run: it compensates what it did, then ends as cancelled."""

    async def go() -> None:
        await (await _client()).cancel(run_id)
        say(f"{run_id}: cancellation requested")

    run(go())


def _one_or_agent(run_id: str | None, agent: str | None) -> None:
    if (run_id is None) == (agent is None):
        fail("name exactly one: a RUN id, or --agent NAME")
