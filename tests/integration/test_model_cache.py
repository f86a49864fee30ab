"""The model-response cache on the real stack, against the loopback OpenAI-compatible API.

A second run asking the same question is answered without a model call; the budget ledger
records the hit with what it saved, `aios show` and `aios runs` show it, and the run's history
replays. A call sampled above `temperature_max`, or carrying a field marked personal, always
goes to the model. Forgetting a subject deletes the answers its runs were given.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from aios.client import AiosClient
from aios.models.manifest import AgentManifest
from aios.models.run import RunState, RunStatus
from tests.support.cli import run_aios
from tests.support.env import child_env
from tests.support.fake_openai import FakeOpenAI, Reply
from tests.support.manifests import noop_manifest
from tests.support.runs import replay_run

pytestmark = pytest.mark.integration

SURE = {"confidence": 0.95, "rationale": "the task says so"}
COST_PER_1K = 0.5


def cached_manifest(**cache: Any) -> AgentManifest:
    temperature = cache.pop("temperature", 0.0)
    model = {
        "provider": "openai",
        "name": "fake-model",
        "cost_per_1k_tokens": COST_PER_1K,
        "temperature": temperature,
        "cache": {"ttl": "PT1H", **cache},
    }
    return noop_manifest(1, model=model)


def one_step_script() -> list[Reply]:
    """A run's two turns: one step, then done (repeated: the fake answers in order)."""
    turn = [
        Reply(tool_calls=(("step_1", SURE),), prompt_tokens=100, completion_tokens=20),
        Reply(text="done", prompt_tokens=150, completion_tokens=10),
    ]
    return turn * 2


async def run(client: AiosClient, manifest: AgentManifest, task: dict[str, Any]) -> RunState:
    started = await client.start_run(manifest.name, task, manifest=manifest)
    final = await asyncio.wait_for(client.result(started.run_id), timeout=60)
    assert final.status is RunStatus.COMPLETED, final.outcome
    return final


async def ledger_rows(client: AiosClient, run_id: str) -> list[tuple[bool, int, int, float]]:
    async with client.connection() as conn:
        cursor = await conn.execute(
            "SELECT cached, tokens, saved_tokens, saved_cost::float FROM aios_budget_reservations "
            "WHERE run_id = %s ORDER BY reservation_key",
            (run_id,),
        )
        return [(bool(r[0]), int(r[1]), int(r[2]), float(r[3])) for r in await cursor.fetchall()]


async def cached_answers(client: AiosClient, agent: str) -> int:
    async with client.connection() as conn:
        cursor = await conn.execute("SELECT count(*) FROM aios_model_cache WHERE agent = %s", (agent,))
        row = await cursor.fetchone()
        assert row is not None
        return int(row[0])


async def test_the_same_question_twice_is_answered_once_and_the_hit_recorded_with_its_savings(
    openai_client: AiosClient, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script = one_step_script()
    manifest = cached_manifest()
    task = {"note": f"same question {uuid.uuid4().hex[:6]}"}
    first = await run(openai_client, manifest, task)
    asked_first = len(fake_openai.chats())
    second = await run(openai_client, manifest, task)

    # The first turn's question is the same (the task alone); the cache answered it.
    hits = second.cache_saved.hits
    assert hits >= 1 and first.cache_saved.hits == 0
    assert len(fake_openai.chats()) == asked_first + (2 - hits)
    assert [(s.action, s.status) for s in second.steps] == [("step_1", "executed")]
    rows = await ledger_rows(openai_client, second.run_id)
    hit_rows = [row for row in rows if row[0]]
    assert len(hit_rows) == hits
    assert hit_rows[0][:3] == (True, 0, 120)  # nothing spent; the first turn's 100 + 20 saved
    assert hit_rows[0][3] == pytest.approx(120 / 1000 * COST_PER_1K)
    assert second.cache_saved.tokens == sum(row[2] for row in hit_rows)
    assert second.tokens_spent == first.tokens_spent - second.cache_saved.tokens

    env = child_env(openai_client.settings, COLUMNS="250", AIOS_TASK_QUEUE=openai_client.settings.task_queue)
    shown = await asyncio.to_thread(run_aios, "show", second.run_id, env=env)
    assert shown.returncode == 0, shown.stderr
    assert f"model-response cache: {hits} hit(s), {second.cache_saved.tokens} tokens saved" in shown.stdout
    listed = await asyncio.to_thread(run_aios, "runs", "--agent", manifest.name, env=env)
    assert listed.returncode == 0, listed.stderr
    [line] = [row for row in listed.stdout.splitlines() if second.run_id in row]
    assert f"{hits} hit(s)" in line

    # The report counts what the ledger recorded.
    report = await openai_client.report(agent=manifest.name, manifests=[manifest])
    [row] = report.agents
    assert row.cache_tokens_saved == sum(saved for _, _, saved, _ in rows)
    assert row.cache_cost_saved == pytest.approx(sum(cost for _, _, _, cost in rows))

    # A hit is an answer in the history like any other: the run replays without the cache.
    await replay_run(openai_client, second.run_id)


async def test_a_call_sampled_above_temperature_max_always_goes_to_the_model(
    openai_client: AiosClient, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script = one_step_script()
    manifest = cached_manifest(temperature=0.7, temperature_max=0.2)
    task = {"note": "a warm question"}
    first = await run(openai_client, manifest, task)
    second = await run(openai_client, manifest, task)
    assert (first.cache_saved.hits, second.cache_saved.hits) == (0, 0)
    assert len(fake_openai.chats()) == 4
    assert {chat.body["temperature"] for chat in fake_openai.chats()} == {0.7}
    assert await cached_answers(openai_client, manifest.name) == 0


async def test_a_call_carrying_a_personal_field_always_goes_to_the_model(
    openai_client: AiosClient, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script = one_step_script()
    manifest = cached_manifest(personal_fields=["email"])
    task = {"note": "write back", "contact": {"email": "ada@example.com"}}
    await run(openai_client, manifest, task)
    second = await run(openai_client, manifest, task)
    assert second.cache_saved.hits == 0
    assert len(fake_openai.chats()) == 4
    assert await cached_answers(openai_client, manifest.name) == 0


async def test_forgetting_a_subject_deletes_the_answers_its_runs_were_given(
    openai_client: AiosClient, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script = one_step_script()[:2]
    manifest = cached_manifest(scope="subject")
    customer = f"c-cache-{uuid.uuid4().hex[:8]}"
    await run(openai_client, manifest, {"customer": customer})
    assert await cached_answers(openai_client, manifest.name) == 2

    env = child_env(openai_client.settings, COLUMNS="250")
    forgot = await asyncio.to_thread(run_aios, "memory", "forget", "--subject", customer, env=env)
    assert forgot.returncode == 0, forgot.stderr
    assert "2 cached model answers" in forgot.stdout
    assert await cached_answers(openai_client, manifest.name) == 0
