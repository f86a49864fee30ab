"""Continuity when the model provider is down, on the real stack: the manifest's `model.fallback`
answers, the run records which model decided, and what the fallback planned waits for a person.

The primary is the loopback OpenAI-compatible API (`openai`, AIOS_MODEL_BASE_URL); the fallback a
second one named `local` in AIOS_MODEL_PROVIDERS.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from pydantic import SecretStr
from temporalio.client import Client

from aios.client import AiosClient
from aios.models.manifest import AgentManifest
from aios.models.run import RunStatus
from aios.settings import ModelEndpoint, Settings
from tests.support.cli import run_aios
from tests.support.env import child_env
from tests.support.fake_openai import FAKE_OPENAI_KEY, FakeOpenAI, Reply
from tests.support.manifests import noop_manifest
from tests.support.runs import audit_story, wait_for_status
from tests.support.workers import client_with_worker

pytestmark = pytest.mark.integration

SURE = {"confidence": 0.95, "rationale": "the task says so"}


@pytest.fixture
def local_model() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture
async def fallback_client(
    stack_settings: Settings,
    temporal_client: Client,
    task_queue: str,
    fake_openai: FakeOpenAI,
    local_model: FakeOpenAI,
) -> AsyncIterator[AiosClient]:
    settings = stack_settings.model_copy(
        update={
            "task_queue": task_queue,
            "model_base_url": fake_openai.url,
            "model_api_key": SecretStr(FAKE_OPENAI_KEY),
            "model_providers": {"local": ModelEndpoint(base_url=local_model.url)},
        }
    )
    async with client_with_worker(settings, temporal_client) as client:
        yield client


def with_fallback() -> AgentManifest:
    model = {
        "provider": "openai",
        "name": "primary-model",
        "fallback": [{"provider": "local", "name": "local-model"}],
    }
    return noop_manifest(1, model=model)


def one_step(model: FakeOpenAI) -> None:
    model.script = [Reply(tool_calls=(("step_1", SURE),)), Reply(text="done")]


async def test_with_the_primary_down_the_fallback_plans_and_its_action_waits_for_a_person(
    fallback_client: AiosClient, fake_openai: FakeOpenAI, local_model: FakeOpenAI
) -> None:
    fake_openai.stop()  # the primary's port refuses every connection
    one_step(local_model)
    manifest = with_fallback()
    started = await fallback_client.start_run(manifest.name, {"note": "hi"}, manifest=manifest)

    # step_1 is low risk (auto for the primary), but a fallback planned it: it waits.
    waiting = await wait_for_status(fallback_client, started.run_id, RunStatus.WAITING_APPROVAL, within=90)
    pending = waiting.pending_approval
    assert pending is not None and pending.action == "step_1"
    [proposal] = waiting.proposals
    assert proposal.proposed.fallback_model == "local/local-model"
    assert "planned by the fallback model local/local-model" in proposal.grade_reason
    assert {chat.body["model"] for chat in local_model.chats()} == {"local-model"}

    await fallback_client.decide(started.run_id, "approve", approver="operator", step=pending.step)
    final = await fallback_client.result(started.run_id, within=60)
    assert final.status is RunStatus.COMPLETED
    assert [(s.action, s.status, s.decided_by) for s in final.steps] == [("step_1", "executed", "operator")]

    story = await audit_story(fallback_client.settings, started.run_id)
    fallbacks = [row for row in story if row.action == "model" and row.outcome == "fallback"]
    assert len(fallbacks) == 2  # both turns: the step, then the reply
    first, second = (row.rationale for row in fallbacks)
    assert first.startswith("openai/primary-model failed (ConnectFailed"), first
    # Five failures opened the primary's breaker: the second turn passed it over at once.
    assert second.startswith("openai/primary-model failed (CircuitOpen"), second

    env = child_env(
        fallback_client.settings, COLUMNS="250", AIOS_TASK_QUEUE=fallback_client.settings.task_queue
    )
    shown = await asyncio.to_thread(run_aios, "show", started.run_id, env=env)
    assert shown.returncode == 0, shown.stderr
    assert "turn 1 was planned by the fallback model local/local-model" in shown.stdout


async def test_with_the_primary_up_it_answers_and_nothing_waits(
    fallback_client: AiosClient, fake_openai: FakeOpenAI, local_model: FakeOpenAI
) -> None:
    one_step(fake_openai)
    manifest = with_fallback()
    started = await fallback_client.start_run(manifest.name, {"note": "hi"}, manifest=manifest)
    final = await fallback_client.result(started.run_id, within=60)
    assert final.status is RunStatus.COMPLETED
    assert [(s.action, s.status, s.decided_by) for s in final.steps] == [("step_1", "executed", "policy")]
    assert final.proposals[0].proposed.fallback_model == ""
    assert local_model.chats() == []
    story = await audit_story(fallback_client.settings, started.run_id)
    assert not [row for row in story if row.outcome == "fallback"]


async def test_a_primary_answering_errors_falls_back_to_the_offline_model(
    fallback_client: AiosClient, fake_openai: FakeOpenAI
) -> None:
    """503s through the connector's retries, then the offline model: degraded, never stopped."""
    fake_openai.script = [Reply(status=503)] * 20
    model = {
        "provider": "openai",
        "name": "primary-model",
        "fallback": [{"provider": "offline"}],
        "fallback_requires_approval": False,
    }
    manifest = noop_manifest(1, model=model)
    started = await fallback_client.start_run(manifest.name, {"note": "hi"}, manifest=manifest)
    final = await fallback_client.result(started.run_id, within=90)
    assert final.status is RunStatus.COMPLETED, final.outcome
    [proposal] = final.proposals
    assert proposal.proposed.fallback_model.startswith("offline/")
    # Not forced through approval: the manifest said so.
    assert [(s.action, s.decided_by) for s in final.steps] == [("step_1", "policy")]
