"""The model-response cache: a question asked again is answered without calling the model.

Decided inside the think activity, so a hit is an answer in the workflow's history like any
other, and a replay reads the same plan. An agent opts in with `model.cache` (its manifest);
even then a call is never cached when it is sampled hotter than `temperature_max` (its answer
is meant to vary) or when its task, events or steps carry a field the manifest marks personal.
The key is the whole call (aios/ledger/model_cache.py), so a run that recalled other memories,
or saw other results, asks another question.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from psycopg_pool import AsyncConnectionPool

from activities.model_choice import Chosen
from aios.governance.subjects import run_subject
from aios.ledger import model_cache
from aios.models.manifest import AgentManifest
from aios.models.run import PlanRequest
from connectors.model import ChatRequest


@dataclass(frozen=True)
class Answer:
    chosen: Chosen
    cached: bool


Ask = Callable[[ChatRequest], Awaitable[Chosen]]


def why_not_cached(manifest: AgentManifest, request: PlanRequest) -> str | None:
    """Why this call must go to the model, or None when the cache may answer it."""
    cache, model = manifest.model.cache, manifest.model
    if cache is None:
        return "the manifest sets no model.cache"
    temperature = model.sampling_temperature
    if temperature > cache.temperature_max:
        return f"temperature {temperature:g} is above cache.temperature_max {cache.temperature_max:g}"
    personal = sorted(set(cache.personal_fields) & set(_field_names(_carried(request))))
    if personal:
        return f"the call carries personal data: {', '.join(personal)}"
    return None


def _carried(request: PlanRequest) -> list[Any]:
    """What of the run reaches the model's messages: its task, events and steps' parameters."""
    return [request.task, *(event.data for event in request.events), *(step.params for step in request.done)]


def _field_names(values: Iterable[Any]) -> Iterable[str]:
    """Every key of every mapping, at any depth."""
    for value in values:
        if isinstance(value, dict):
            yield from (str(key) for key in value)
            yield from _field_names(value.values())
        elif isinstance(value, list):
            yield from _field_names(value)


class ModelCache:
    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self._pool = pool

    async def chat(self, ask: Ask, request: PlanRequest, chat: ChatRequest) -> Answer:
        """The cache's answer when it may and has one; else the models', kept when it may.

        A fallback model's answer is never kept: the question is the manifest's own model's.
        """
        manifest = request.manifest
        cache = manifest.model.cache
        if cache is None or why_not_cached(manifest, request) is not None:
            return Answer(await ask(chat), cached=False)
        subject = run_subject(request.task)
        asked = model_cache.question(
            manifest.model.provider,
            chat,
            agent=manifest.name,
            shared_by=subject if cache.scope == "subject" else "",
        )
        async with self._pool.connection() as conn:
            served = await model_cache.serve(conn, asked.key)
        if served is not None:
            model = manifest.model
            return Answer(Chosen(served, model.provider, model.cost_per_1k_tokens), cached=True)
        chosen = await ask(chat)
        if not chosen.fallback:
            async with self._pool.connection() as conn:
                await model_cache.keep(conn, asked, chosen.response, subject=subject, ttl=cache.ttl)
        return Answer(chosen, cached=False)
