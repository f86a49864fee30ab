"""Which model plans a turn: the first of the chain that answers; names that cannot work refused."""

from __future__ import annotations

import pytest
from temporalio.exceptions import ApplicationError

from activities.model_choice import first_answer
from aios.errors import SettingsInvalid
from aios.models.manifest import ModelSpec
from aios.settings import load_settings
from connectors.errors import CircuitOpen, ServerError
from connectors.model import ChatMessage, ChatRequest, ChatResponse, OfflineModel
from tests.support.manifests import noop_manifest

CHAT = ChatRequest(model="ignored", messages=[ChatMessage(role="user", content="{}")])


class Failing:
    def __init__(self, error: Exception) -> None:
        self.error = error
        self.asked: list[str] = []

    async def chat(self, request: ChatRequest) -> ChatResponse:
        self.asked.append(request.model)
        raise self.error


def spec(**fields: object) -> ModelSpec:
    return ModelSpec.model_validate({"provider": "openai", "name": "big", **fields})


async def test_the_first_model_that_answers_plans_and_says_who_was_passed_over() -> None:
    primary = Failing(CircuitOpen("model: circuit open"))
    chosen = await first_answer(
        {"openai": primary, "offline": OfflineModel()}, spec(fallback=[{"provider": "offline"}]), CHAT
    )
    assert primary.asked == ["big"]
    assert (chosen.provider, chosen.fallback) == ("offline", True)
    assert chosen.passed_over == "openai/big failed (CircuitOpen: model: circuit open)"


async def test_without_a_fallback_the_failure_is_the_turn_s_as_before() -> None:
    with pytest.raises(ApplicationError) as failed:
        await first_answer({"openai": Failing(ServerError("503"))}, spec(), CHAT)
    assert failed.value.type == "ServerError" and not failed.value.non_retryable


async def test_a_fallback_no_worker_knows_is_named_when_it_is_needed() -> None:
    models = {"openai": Failing(ServerError("503"))}
    with pytest.raises(ApplicationError, match="fallback model provider 'local' is not configured"):
        await first_answer(models, spec(fallback=[{"provider": "local", "name": "llama"}]), CHAT)


def test_the_fallback_knobs_leave_other_manifests_versions_alone() -> None:
    plain = noop_manifest(1, name="versions")
    same = noop_manifest(1, name="versions", model={"fallback": [], "fallback_requires_approval": True})
    assert plain.version == same.version
    other = noop_manifest(1, name="versions", model={"fallback": [{"provider": "offline"}]})
    assert other.version != plain.version


def test_a_provider_may_not_take_a_built_in_name() -> None:
    with pytest.raises(SettingsInvalid, match="AIOS_MODEL_PROVIDERS: provider name 'openai'"):
        load_settings(model_providers={"openai": {"base_url": "http://127.0.0.1:1/v1"}})
