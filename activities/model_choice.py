"""Which model plans a turn: the manifest's own, else the first of its `model.fallback` that can.

A model is passed over when its connector fails for good: its breaker is open (it failed
fast), or its server kept failing through the connector's own retries, or it refused the call
(a spent quota answers 429 or 402; a refused key 401). The last model of the chain fails the
turn as it always did, so an agent without `model.fallback` behaves as before. Decided inside
the think activity: the history records which model answered, and a replay reads the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from activities.actions import as_application_error
from aios.errors import ModelNotConfigured, application_error
from aios.models.manifest import ModelSpec
from connectors.errors import ConnectorError
from connectors.model import ChatRequest, ChatResponse, ModelProvider


@dataclass(frozen=True)
class Chosen:
    """The answer, who gave it at what price, and why the models before it were passed over."""

    response: ChatResponse
    provider: str
    cost_per_1k_tokens: float
    passed_over: str = ""

    @property
    def fallback(self) -> bool:
        return bool(self.passed_over)

    @property
    def label(self) -> str:
        return f"{self.provider}/{self.response.model}"


def chain(spec: ModelSpec) -> list[tuple[str, str, float]]:
    """(provider, model name, cost per 1k tokens): the manifest's model, then its fallbacks."""
    fallbacks = [(each.provider, each.name, each.cost_per_1k_tokens) for each in spec.fallback]
    return [(spec.provider, spec.name, spec.cost_per_1k_tokens), *fallbacks]


async def first_answer(models: Mapping[str, ModelProvider], spec: ModelSpec, chat: ChatRequest) -> Chosen:
    """The first model of the chain that answers; the last one's failure fails the turn."""
    models_in_order = chain(spec)
    passed: list[str] = []
    for index, (name, model_name, cost) in enumerate(models_in_order):
        provider = _provider(models, name, fallback=index > 0)
        try:
            response = await provider.chat(chat.model_copy(update={"model": model_name}))
        except ConnectorError as failure:
            if index == len(models_in_order) - 1:
                raise as_application_error(failure) from failure
            passed.append(f"{name}/{model_name} failed ({type(failure).__name__}: {failure})")
            continue
        return Chosen(response, name, cost, "; ".join(passed))
    raise AssertionError("a model chain is never empty")


def _provider(models: Mapping[str, ModelProvider], name: str, *, fallback: bool) -> ModelProvider:
    provider = models.get(name)
    if provider is not None:
        return provider
    role = "fallback model provider" if fallback else "model provider"
    raise application_error(
        ModelNotConfigured,
        f"{role} {name!r} is not configured in this worker (available: {sorted(models)}); for "
        "`openai`, set AIOS_MODEL_BASE_URL to an OpenAI-compatible API, e.g. http://127.0.0.1:11434/v1 "
        'for Ollama; for another name, add it to AIOS_MODEL_PROVIDERS, e.g. {"local": {"base_url": ...}}',
        non_retryable=True,
    )
