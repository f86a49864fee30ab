"""What the model-response cache may answer, and how a question is keyed."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from activities.model_cache import why_not_cached
from aios.ledger.model_cache import question
from aios.models.events import RunEvent
from aios.models.manifest import AgentManifest
from aios.models.run import CacheSavings, DoneStep, PlanRequest, PlanResponse
from connectors.model import ChatMessage, ChatRequest
from tests.support.manifests import noop_manifest

CHAT = ChatRequest(model="m", messages=[ChatMessage(role="user", content="{}")], temperature=0.0)


def manifest(**model: Any) -> AgentManifest:
    return noop_manifest(1, name="cachy", model={"provider": "openai", "name": "m", **model})


def plan_request(agent: AgentManifest, task: dict[str, Any], **fields: Any) -> PlanRequest:
    return PlanRequest(run_id="r", turn=1, manifest=agent, task=task, **fields)


def test_without_a_cache_or_above_temperature_max_the_model_is_asked() -> None:
    assert why_not_cached(manifest(), plan_request(manifest(), {})) == "the manifest sets no model.cache"
    # Unset, the temperature is the provider's default, 1.0: too hot for the default maximum, 0.
    unset = manifest(cache={})
    assert why_not_cached(unset, plan_request(unset, {})) == "temperature 1 is above cache.temperature_max 0"
    cool = manifest(temperature=0.1, cache={"temperature_max": 0.2})
    assert why_not_cached(cool, plan_request(cool, {"note": "x"})) is None


def test_a_personal_field_anywhere_in_what_the_model_is_told_keeps_the_call_out() -> None:
    agent = manifest(temperature=0, cache={"personal_fields": ["email", "phone"]})
    nested = plan_request(agent, {"contact": [{"email": "a@b"}]})
    assert why_not_cached(agent, nested) == "the call carries personal data: email"
    event = RunEvent(event_id="e", topic="t", data={"phone": "1"})
    assert why_not_cached(agent, plan_request(agent, {}, events=[event])) == (
        "the call carries personal data: phone"
    )
    step = DoneStep(step=1, action="step_1", status="executed", params={"email": "a@b"})
    assert why_not_cached(agent, plan_request(agent, {}, done=[step])) is not None
    assert why_not_cached(agent, plan_request(agent, {"note": "email me"})) is None  # a value, not a field


def test_a_question_is_the_whole_call_and_who_shares_its_answer() -> None:
    key = question("openai", CHAT, agent="a", shared_by="").key
    assert question("openai", CHAT, agent="a", shared_by="").key == key
    assert question("openai", CHAT, agent="b", shared_by="").key != key
    assert question("openai", CHAT, agent="a", shared_by="c-1").key != key
    assert question("other", CHAT, agent="a", shared_by="").key != key
    warmer = CHAT.model_copy(update={"temperature": 0.5})
    assert question("openai", warmer, agent="a", shared_by="").key != key


def test_savings_add_up_only_for_cached_turns() -> None:
    paid = PlanResponse(done=True, model="m", offline=False, tokens_used=10, cost=0.1)
    hit = PlanResponse(
        done=True,
        model="m",
        offline=False,
        tokens_used=0,
        cost=0,
        cached=True,
        saved_tokens=10,
        saved_cost=0.1,
    )
    assert CacheSavings().plus(paid) == CacheSavings()
    assert CacheSavings().plus(hit).plus(hit) == CacheSavings(hits=2, tokens=20, cost=0.2)


def test_the_cache_knobs_leave_other_manifests_versions_alone() -> None:
    assert manifest().version == manifest(temperature=None, cache=None).version
    assert manifest(cache={"temperature_max": 0.2}).version != manifest().version
    with pytest.raises(ValidationError, match="positive duration"):
        manifest(cache={"ttl": "PT0S"})
