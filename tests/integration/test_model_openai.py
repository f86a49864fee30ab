"""The OpenAI-compatible model against a loopback fake of the API, alone and driving a whole run."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

import pytest

from aios.client import AiosClient
from aios.models.manifest import ModelSpec
from aios.models.run import RunStatus
from connectors.errors import NotConfigured
from connectors.http_base import RetryPolicy
from connectors.model import ChatMessage, ChatRequest, OpenAICompatibleModel, ToolSpec
from tests.support.effect_server import EffectServer
from tests.support.fake_openai import FAKE_OPENAI_KEY, FakeOpenAI, Reply, embedding_of
from tests.support.manifests import noop_manifest, refund_like_manifest

API_KEY = FAKE_OPENAI_KEY
TOOLS = [ToolSpec(name="step_1", parameters={"type": "object", "properties": {"confidence": {}}})]
REQUEST = ChatRequest(
    model="fake-model",
    messages=[ChatMessage(role="system", content="s"), ChatMessage(role="user", content="{}")],
    tools=TOOLS,
)


@pytest.fixture
async def model(fake_openai: FakeOpenAI) -> AsyncIterator[OpenAICompatibleModel]:
    connector = OpenAICompatibleModel(base_url=fake_openai.url, api_key=API_KEY, timeout_seconds=5)
    yield connector
    await connector.aclose()


async def test_tool_calls_and_usage_come_back(model: OpenAICompatibleModel, fake_openai: FakeOpenAI) -> None:
    fake_openai.script = [
        Reply(tool_calls=(("step_1", {"confidence": 0.8}),), prompt_tokens=31, completion_tokens=7)
    ]
    response = await model.chat(REQUEST)
    assert [(c.name, c.arguments) for c in response.tool_calls] == [("step_1", {"confidence": 0.8})]
    assert (response.prompt_tokens, response.completion_tokens) == (31, 7)
    assert response.model == "fake-model"
    assert not response.offline
    [sent] = fake_openai.chats()
    assert sent.body["tools"][0]["function"]["name"] == "step_1"
    assert sent.headers["Authorization"] == f"Bearer {API_KEY}"


async def test_malformed_arguments_do_not_crash(
    model: OpenAICompatibleModel, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script = [Reply(tool_calls=(("step_1", "{confidence: high"),))]
    [tool_call] = (await model.chat(REQUEST)).tool_calls
    assert tool_call.arguments == {"_unparsed": "{confidence: high"}


async def test_429_with_retry_after_is_waited_out_then_succeeds(
    model: OpenAICompatibleModel, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script = [Reply(status=429, retry_after="0.2"), Reply(text="after the wait")]
    started = asyncio.get_running_loop().time()
    response = await model.chat(REQUEST)
    assert response.text == "after the wait"
    assert asyncio.get_running_loop().time() - started >= 0.2
    first, second = fake_openai.chats()
    # The same request id on the retry: one logical call, asked twice.
    assert first.headers["X-Client-Request-Id"] == second.headers["X-Client-Request-Id"]


async def test_503_then_success(fake_openai: FakeOpenAI) -> None:
    fake_openai.script = [Reply(status=503), Reply(text="recovered")]
    connector = OpenAICompatibleModel(
        base_url=fake_openai.url, api_key=API_KEY, retry=RetryPolicy(base_delay=0.01, max_delay=0.01)
    )
    try:
        assert (await connector.chat(REQUEST)).text == "recovered"
    finally:
        await connector.aclose()


async def test_a_refused_key_is_not_configured_and_never_leaks(
    fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    wrong_key = "sk-wrong-LeakyKey-987654"
    connector = OpenAICompatibleModel(base_url=fake_openai.url, api_key=wrong_key)
    caplog.set_level(logging.DEBUG)
    try:
        with pytest.raises(NotConfigured) as caught:
            await connector.chat(REQUEST)
    finally:
        await connector.aclose()
    assert "AIOS_MODEL_API_KEY" in str(caught.value)
    assert "Incorrect API key provided" in str(caught.value)  # the service's words, redacted
    assert wrong_key not in str(caught.value)
    assert wrong_key not in caplog.text
    assert len(fake_openai.chats()) == 1  # a refusal is final: no retry


async def test_embeddings(model: OpenAICompatibleModel, fake_openai: FakeOpenAI) -> None:
    vectors = await model.embed(["alpha", "beta"], model="fake-embedder")
    assert vectors == [embedding_of("alpha"), embedding_of("beta")]
    [sent] = [r for r in fake_openai.requests if r.path == "/v1/embeddings"]
    assert sent.body == {"model": "fake-embedder", "input": ["alpha", "beta"]}


# -- a whole run on the conductor -------------------------------------------------------------


async def test_a_run_on_an_openai_model_completes_and_is_charged_what_it_reported(
    openai_client: AiosClient, fake_openai: FakeOpenAI
) -> None:
    sure = {"confidence": 0.95, "rationale": "the task says so"}
    fake_openai.script = [
        Reply(tool_calls=(("step_1", sure),), prompt_tokens=100, completion_tokens=20),
        Reply(tool_calls=(("step_2", sure),), prompt_tokens=150, completion_tokens=25),
        Reply(text="done", prompt_tokens=200, completion_tokens=10),
    ]
    manifest = noop_manifest(2, model={"provider": "openai", "name": "fake-model", "cost_per_1k_tokens": 0.5})
    started = await openai_client.start_run(manifest.name, {"note": "hi"}, manifest=manifest)
    final = await asyncio.wait_for(openai_client.result(started.run_id), timeout=60)

    assert final.status is RunStatus.COMPLETED
    assert [(step.action, step.status) for step in final.steps] == [
        ("step_1", "executed"),
        ("step_2", "executed"),
    ]
    tokens = 100 + 20 + 150 + 25 + 200 + 10
    assert final.tokens_spent == tokens
    assert final.cost_spent == pytest.approx(tokens / 1000 * 0.5)
    # The last turn saw both results, each answering its call by id.
    last = fake_openai.chats()[-1].body
    assert [t["function"]["name"] for t in last["tools"]] == ["step_1", "step_2"]
    assert [m.get("tool_call_id") for m in last["messages"] if m["role"] == "tool"] == ["call_1", "call_2"]


async def test_the_model_receives_each_step_s_result_as_the_connector_returned_it(
    openai_client: AiosClient, fake_openai: FakeOpenAI, effect_server: EffectServer
) -> None:
    """The tool loop: the next turn's tool message carries what the effect server answered (as
    the ledger recorded it), answering a tool call that carries the arguments the model gave."""
    sure = {"confidence": 0.95, "rationale": "the task says so"}
    fake_openai.script = [
        Reply(tool_calls=(("charge", {"customer": "c-tool", **sure}),)),
        Reply(text="done"),
    ]
    manifest = refund_like_manifest(effect_server.url).model_copy(
        update={"model": ModelSpec(provider="openai", name="fake-model")}
    )
    started = await openai_client.start_run(manifest.name, {"customer": "c-tool"}, manifest=manifest)
    final = await asyncio.wait_for(openai_client.result(started.run_id), timeout=60)
    assert final.status is RunStatus.COMPLETED, final.outcome

    key = f"{started.run_id}/step-1/charge"
    second = fake_openai.chats()[1].body["messages"]
    [called] = [m for m in second if m["role"] == "assistant" and m.get("tool_calls")]
    [call] = called["tool_calls"]
    assert call["function"]["name"] == "charge"
    assert json.loads(call["function"]["arguments"]) == {"customer": "c-tool"}
    [result] = [m for m in second if m["role"] == "tool"]
    assert result["tool_call_id"] == call["id"]
    told = json.loads(result["content"])
    assert told["status"] == "executed" and told["state"] == "succeeded"
    assert told["response"] == {"status": 200, "body": effect_server.responses[key]}
