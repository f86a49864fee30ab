"""The realistic benchmark's loopback model and effect server, its latency bound and its profile sorting."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from bench.history_counts import HistoryCounts
from bench.profile_samples import OTHER, read_samples
from bench.realistic_figures import (
    APPROVAL_DELAY,
    BUDGET_VARIABLE,
    EFFECT_SECONDS,
    INLINE_VARIABLE,
    LEVELS_VARIABLE,
    STEPS,
    TIMING,
    LevelFigures,
    SideResult,
    budget_from_env,
    ideal_run_seconds,
    inline_from_env,
    levels_from_env,
)
from bench.realistic_floor import floor
from bench.realistic_servers import ModelTiming, Servers
from bench.report import Section
from connectors.model import OpenAICompatibleModel
from connectors.model.types import ChatMessage, ChatRequest, ToolSpec


@pytest.fixture
def servers() -> Iterator[Servers]:
    started = Servers.start(ModelTiming(mean=0.0, spread=0.0), effect_seconds=0.0)
    yield started
    started.stop()


def _request(task: dict[str, str], done: list[str]) -> ChatRequest:
    tools = [ToolSpec(name=f"step_{i}", description="", parameters={"type": "object"}) for i in (2, 1, 3)]
    messages = [ChatMessage(role="user", content=json.dumps(task, sort_keys=True))]
    messages += [ChatMessage(role="tool", name=name, content="done") for name in done]
    return ChatRequest(model="bench-model", messages=messages, tools=tools)


async def test_the_model_calls_each_offered_tool_in_order_then_says_done(servers: Servers) -> None:
    model = OpenAICompatibleModel(base_url=servers.model.url)
    try:
        called = []
        for _ in range(3):
            response = await model.chat(_request({"bench": "t"}, called))
            assert len(response.tool_calls) == 1
            assert response.tool_calls[0].arguments["confidence"] >= 0.7  # above the policy's default
            called.append(response.tool_calls[0].name)
        final = await model.chat(_request({"bench": "t"}, called))
    finally:
        await model.aclose()
    assert called == ["step_1", "step_2", "step_3"]
    assert final.tool_calls == [] and final.text == "done"


def test_a_turn_waits_the_same_seeded_time_whatever_the_order() -> None:
    def body(label: str, done: int) -> dict[str, object]:
        user = {"role": "user", "content": json.dumps({"bench": label})}
        return {"messages": [user] + [{"role": "tool"}] * done}

    keys = [(f"n10-{i}", turn) for i in range(10) for turn in range(3)]
    first = {key: TIMING.seconds(body(*key)) for key in keys}
    again = {key: TIMING.seconds(body(*key)) for key in reversed(keys)}
    assert first == again
    assert all(TIMING.mean - TIMING.spread <= s <= TIMING.mean + TIMING.spread for s in first.values())
    assert len(set(first.values())) > 20  # drawn, not constant
    other_seed = ModelTiming(seed=TIMING.seed + 1)
    assert [other_seed.seconds(body("n10-0", t)) for t in range(3)] != [first["n10-0", t] for t in range(3)]


async def test_the_effect_server_applies_a_repeated_key_once(servers: Servers) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(2):
            answer = await client.post(
                f"{servers.effects.url}/effects/step_1", json={}, headers={"Idempotency-Key": "k-1"}
            )
            assert answer.status_code == 200
    assert servers.effects.total_effects() == 1


def test_the_latency_bound_counts_every_answer_post_and_the_approval() -> None:
    low = (STEPS + 1) * (TIMING.mean - TIMING.spread) + STEPS * EFFECT_SECONDS + APPROVAL_DELAY
    high = (STEPS + 1) * (TIMING.mean + TIMING.spread) + STEPS * EFFECT_SECONDS + APPROVAL_DELAY
    ideal = ideal_run_seconds("n10-3")
    assert low <= ideal <= high
    assert ideal == ideal_run_seconds("n10-3")


def test_levels_come_from_the_environment_or_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LEVELS_VARIABLE, raising=False)
    assert levels_from_env() == [10, 50, 100]
    monkeypatch.setenv(LEVELS_VARIABLE, "2, 4")
    assert levels_from_env() == [2, 4]
    for bad in ("ten", "0,5"):
        monkeypatch.setenv(LEVELS_VARIABLE, bad)
        with pytest.raises(SystemExit, match=LEVELS_VARIABLE):
            levels_from_env()


def test_samples_are_sorted_by_the_files_on_their_stacks() -> None:
    raw = "\n".join(
        [
            "<module> (bench/main.py:1);run (temporalio/worker/_workflow.py:1);"
            "_find_and_load (<frozen importlib._bootstrap>:2);"
            "<module> (pydantic/main.py:3) 6",
            "run (temporalio/worker/_workflow.py:1);"
            "__getattr__ (temporalio/worker/workflow_sandbox/_restrictions.py:9) 3",
            "execute (psycopg/cursor_async.py:4) 1",
            "select (selectors.py:5) 2",
            "mystery (somewhere.py:1) 1",
        ]
    )
    samples = read_samples(raw)
    assert samples.total == 13
    assert samples.inclusive["Temporal SDK (worker, client, bridge)"] == 9
    assert samples.inclusive["module imports"] == 6
    assert samples.leaf["payload conversion (pydantic/JSON)"] == 6  # the leaf-most category
    assert samples.leaf["workflow sandbox"] == 3
    assert samples.leaf["Postgres client (psycopg)"] == 1
    assert samples.leaf[OTHER] == 1
    assert samples.modules == {"pydantic/main.py": 6}  # not the main script's body
    assert samples.sandbox == {"__getattr__ (temporalio/worker/workflow_sandbox/_restrictions.py)": 3}


def test_the_budget_comes_from_the_environment_or_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BUDGET_VARIABLE, raising=False)
    assert budget_from_env() == 75.0
    monkeypatch.setenv(BUDGET_VARIABLE, "8.5")
    assert budget_from_env() == 8.5
    for bad in ("soon", "0"):
        monkeypatch.setenv(BUDGET_VARIABLE, bad)
        with pytest.raises(SystemExit, match=BUDGET_VARIABLE):
            budget_from_env()


def test_a_batch_with_unfinished_runs_counts_only_finished_steps() -> None:
    level = LevelFigures(
        runs=4, steps=2 * STEPS, seconds=10.0, run_seconds=[2.0, 3.0], cpu={}, transactions=None
    )
    assert level.unfinished == 2
    assert level.steps_per_second == 2 * STEPS / 10.0
    assert level.run_latency(0.0) == 2.0
    assert level.run_latency(0.95) == float("inf")  # falls on an unfinished run


def test_a_batch_where_no_run_finished_has_no_per_step_figures() -> None:
    level = LevelFigures(runs=3, steps=0, seconds=4.0, run_seconds=[], cpu={"process": 1.0}, transactions=9)
    assert level.steps_per_second == 0.0
    assert level.cpu_ms_per_step("process") is None
    assert level.transactions_per_step() is None
    assert level.run_latency(0.5) == float("inf")


def test_the_inline_switch_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(INLINE_VARIABLE, raising=False)
    assert inline_from_env() is True
    monkeypatch.setenv(INLINE_VARIABLE, "0")
    assert inline_from_env() is False
    monkeypatch.setenv(INLINE_VARIABLE, "yes")
    with pytest.raises(SystemExit, match=INLINE_VARIABLE):
        inline_from_env()


def test_the_floor_divides_the_servers_cpu_by_the_workflow_tasks_of_the_finished_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 4 finished runs of 5 tasks each: the server's 2.0 s is 100 ms a task, so 100 ms a step.
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    level = LevelFigures(
        runs=5,
        steps=4 * STEPS,
        seconds=10.0,
        run_seconds=[1.0] * 4,
        cpu={"process": 1.0, "temporal": 2.0, "postgres": 0.1},
        transactions=None,
    )
    counts = HistoryCounts(
        runs=4, events=60, workflow_tasks=5, activities=2, local_activities=7,
        patch_markers=8, visibility_writes=10, timers=1, children=1,
    )  # fmt: skip
    section = Section("t", "c")
    # The peer: 40 steps in 2 s (20 steps/s) for 0.4 s of its process and 0.2 s of Postgres.
    peer_level = LevelFigures(
        runs=8, steps=40, seconds=2.0, run_seconds=[1.0] * 8, cpu={"process": 0.4, "postgres": 0.2},
        transactions=None,
    )  # fmt: skip
    peer = SideResult("langgraph", "realistic", levels=[peer_level])
    floor(section, SideResult("aios", "realistic", levels=[level]), counts, peer)
    rows = dict(section.rows)
    server = rows["floor: the Temporal server"]
    assert server.startswith("100.0 ms CPU per workflow task x 5.0 per run / 5 steps = 100.0 ms per step")
    [process] = [value for name, value in rows.items() if name.startswith("floor: the aios process")]
    assert process == "50.0 ms CPU per step: at most 20 steps/s"  # 1 s over 20 steps, one core
    # 100 + 50 + 5 ms a step on 2 cores; beside the peer's 10 + 5 ms, 115 ms: 17 steps/s, 0.87x its 20.
    assert rows["floor: the machine, aios as measured"] == (
        "100.0 + 50.0 + 5.0 ms CPU per step (server, process, Postgres) = 155.0 ms: "
        "at most 13 steps/s on 2 cores"
    )
    assert rows["floor: the Temporal server beside a process and Postgres as cheap as LangGraph's"] == (
        "100.0 + 15.0 ms CPU per step: at most 17 steps/s on 2 cores, "
        "0.87x LangGraph's best level (20.0 steps/s)"
    )
