"""The model-response cache on a replayed workload with repeated questions.

One agent (one `noop` step, then a reply) on the loopback OpenAI-compatible API, which answers
after MODEL_LATENCY_S as a hosted model would. The workload is RUNS runs drawn from QUESTIONS
distinct tasks, the popular ones asked most (weights 1/rank, seeded): an inbox where the same
few questions come back. It is played twice through the real stack (worker in this process,
dev server, Postgres): once without `model.cache`, once with it, and the figures compare the
model calls, tokens and run latency of the two passes.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from typing import Any

from aios.client import AiosClient
from aios.models.manifest import ActionSpec, AgentManifest, PolicySpec, RiskClass
from aios.models.run import RunState, RunStatus
from aios.settings import load_settings
from bench.report import Section, summarize_ms
from tests.support.fake_openai import FakeOpenAI, Reply
from workers.main import run_worker

RUNS = 60
QUESTIONS = 12
MODEL_LATENCY_S = 0.15
COST_PER_1K = 0.002
SEED = 7
SURE = {"confidence": 0.95, "rationale": "the question is a known one"}


def _model_answer(body: dict[str, Any]) -> Reply:
    """One step, then the reply: what a model would do with a simple question."""
    if any(message.get("role") == "tool" for message in body.get("messages", [])):
        return Reply(text="answered", prompt_tokens=420, completion_tokens=60)
    return Reply(tool_calls=(("look_up", SURE),), prompt_tokens=380, completion_tokens=25)


def _manifest(cache: bool) -> AgentManifest:
    model: dict[str, Any] = {
        "provider": "openai",
        "name": "bench-model",
        "cost_per_1k_tokens": COST_PER_1K,
        "temperature": 0,
    }
    if cache:
        model["cache"] = {"ttl": "PT1H", "scope": "agent"}
    return AgentManifest.model_validate(
        {
            "name": f"bench-cache-{'on' if cache else 'off'}-{uuid.uuid4().hex[:6]}",
            "model": model,
            "actions": {"look_up": ActionSpec(connector="noop", risk=RiskClass.LOW)},
            "policy": PolicySpec(approvers=["operator"]),
        }
    )


def _workload() -> list[dict[str, str]]:
    ranks = range(1, QUESTIONS + 1)
    drawn = random.Random(SEED).choices(list(ranks), weights=[1 / rank for rank in ranks], k=RUNS)
    return [{"question": f"frequent question {rank}"} for rank in drawn]


async def _play(
    client: AiosClient, manifest: AgentManifest, tasks: list[dict[str, str]]
) -> tuple[list[RunState], list[float]]:
    finals, seconds = [], []
    for task in tasks:
        began = time.perf_counter()
        started = await client.start_run(manifest.name, task, manifest=manifest)
        final = await client.result(started.run_id, within=120)
        if final.status is not RunStatus.COMPLETED:
            raise RuntimeError(f"{started.run_id} ended {final.status}: {final.outcome}")
        seconds.append(time.perf_counter() - began)
        finals.append(final)
    return finals, seconds


async def measure() -> Section:
    section = Section(
        "The model-response cache: a workload with repeated questions",
        "python -m bench model_cache",
        notes=f"{RUNS} runs drawn from {QUESTIONS} questions (weights 1/rank, seed {SEED}); each run "
        f"is two model turns (a step, then the reply) on a loopback model answering in "
        f"{MODEL_LATENCY_S * 1000:.0f} ms; played without, then with `model.cache` (scope agent).",
    )
    model = FakeOpenAI(responder=_model_answer, latency=lambda _: MODEL_LATENCY_S).start()
    queue = f"bench-cache-{uuid.uuid4().hex[:6]}"
    settings = load_settings().model_copy(update={"task_queue": queue, "model_base_url": model.url})
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop=stop, task_queue=queue))
    tasks = _workload()
    try:
        client = await AiosClient.connect(settings)
        for cache in (False, True):
            asked_before = len(model.chats())
            finals, seconds = await _play(client, _manifest(cache), tasks)
            _report(
                section,
                "with cache" if cache else "without cache",
                finals,
                seconds,
                len(model.chats()) - asked_before,
            )
    finally:
        stop.set()
        await worker
        model.stop()
    return section


def _report(section: Section, label: str, finals: list[RunState], seconds: list[float], calls: int) -> None:
    turns = sum(final.turn for final in finals)
    hits = sum(final.cache_saved.hits for final in finals)
    spent = sum(final.tokens_spent for final in finals)
    saved = sum(final.cache_saved.tokens for final in finals)
    section.add(f"{label}: model calls", f"{calls} for {turns} turns (hit rate {hits / turns:.0%})")
    section.add(
        f"{label}: tokens",
        f"{spent} spent, {saved} saved (${sum(f.cache_saved.cost for f in finals):.4f} at ${COST_PER_1K}/1k)",
    )
    section.add(f"{label}: run latency", summarize_ms(seconds))
