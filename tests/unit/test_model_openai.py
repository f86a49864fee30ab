"""The OpenAI-compatible model: request and response translation, errors, and the worker's wiring."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
from temporalio.exceptions import ApplicationError

from activities.agent import AgentActivities
from activities.deps import ActivityDeps, build_models
from aios.errors import ModelNotConfigured, SettingsInvalid
from aios.models.run import PlanRequest
from aios.settings import load_settings
from connectors.errors import ClientError, ConnectorError, NotConfigured, RateLimited, ServerError
from connectors.http_base import RetryPolicy
from connectors.model import (
    ChatMessage,
    ChatRequest,
    ChatResponse,
    ModelProvider,
    OfflineModel,
    OpenAICompatibleModel,
    ToolSpec,
)
from connectors.model.openai import chat_body, openai_messages, parse_arguments, parse_chat_response
from tests.support.fake_openai import Reply, completion
from tests.support.manifests import noop_manifest

API_KEY = "sk-unit-TopSecretKey-123"
BASE_URL = "https://models.test/v1"
Handler = Callable[[httpx.Request], httpx.Response]


def _model(handler: Handler, *, api_key: str | None = API_KEY) -> OpenAICompatibleModel:
    return OpenAICompatibleModel(
        base_url=BASE_URL,
        api_key=api_key,
        transport=httpx.MockTransport(handler),
        retry=RetryPolicy(max_attempts=1),
    )


def _system_user(*rest: ChatMessage) -> list[ChatMessage]:
    return [ChatMessage(role="system", content="be brief"), ChatMessage(role="user", content="{}"), *rest]


def _tool(name: str) -> ChatMessage:
    return ChatMessage(role="tool", name=name, content="done")


def _assert_valid_pairing(messages: list[dict[str, Any]]) -> None:
    """Every tool result answers an earlier assistant tool call by id, and every call is answered."""
    called: list[str] = []
    answered: list[str] = []
    for message in messages:
        if message["role"] == "assistant":
            assert not set(called) - set(answered), "a new assistant turn before all calls were answered"
            called += [call["id"] for call in message.get("tool_calls", [])]
        if message["role"] == "tool":
            assert message["tool_call_id"] in called
            answered.append(message["tool_call_id"])
    assert sorted(called) == sorted(answered)


# -- request translation ----------------------------------------------------------------------


def test_tool_results_get_a_synthesized_assistant_call_with_stable_ids() -> None:
    messages = openai_messages(_system_user(_tool("step_1"), _tool("step_2")))
    assert messages[:2] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "{}"},
    ]
    assistant, first, second = messages[2:]
    assert assistant["role"] == "assistant"
    assert assistant["content"] is None
    assert [(c["id"], c["type"], c["function"]["name"]) for c in assistant["tool_calls"]] == [
        ("call_1", "function", "step_1"),
        ("call_2", "function", "step_2"),
    ]
    assert all(json.loads(c["function"]["arguments"]) == {} for c in assistant["tool_calls"])
    assert first == {"role": "tool", "tool_call_id": "call_1", "content": "done"}
    assert second == {"role": "tool", "tool_call_id": "call_2", "content": "done"}
    _assert_valid_pairing(messages)


def test_the_same_conversation_translates_identically() -> None:
    conversation = _system_user(_tool("a"), _tool("b"))
    assert openai_messages(conversation) == openai_messages(conversation)


def test_an_assistant_message_before_tool_results_carries_their_calls() -> None:
    said = ChatMessage(role="assistant", content="calling a")
    messages = openai_messages(_system_user(said, _tool("a")))
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool"]
    assert messages[2]["content"] == "calling a"
    assert messages[2]["tool_calls"][0]["id"] == messages[3]["tool_call_id"] == "call_1"
    _assert_valid_pairing(messages)


def test_tool_results_split_by_a_user_message_get_one_assistant_call_each() -> None:
    conversation = _system_user(_tool("a"), ChatMessage(role="user", content="go on"), _tool("b"))
    messages = openai_messages(conversation)
    roles = " ".join(m["role"] for m in messages)
    assert roles == "system user assistant tool user assistant tool"
    assert messages[6]["tool_call_id"] == "call_2"
    _assert_valid_pairing(messages)


def test_tools_use_the_function_calling_format() -> None:
    schema = {"type": "object", "properties": {"amount": {}}, "required": ["amount"]}
    request = ChatRequest(
        model="m",
        messages=_system_user(),
        tools=[ToolSpec(name="pay", description="pays", parameters=schema)],
    )
    assert chat_body(request)["tools"] == [
        {"type": "function", "function": {"name": "pay", "description": "pays", "parameters": schema}}
    ]


def test_no_tools_key_without_tools() -> None:
    body = chat_body(ChatRequest(model="m", messages=_system_user()))
    assert body == {"model": "m", "messages": openai_messages(_system_user())}


# -- response translation ---------------------------------------------------------------------


REQUEST = ChatRequest(model="asked-model", messages=_system_user())


def test_tool_calls_text_usage_and_model_are_read() -> None:
    reply = Reply(
        text="paying",
        tool_calls=(("pay", {"amount": 5, "confidence": 0.9}), ("note", {})),
        prompt_tokens=123,
        completion_tokens=45,
        model="served-model",
    )
    response = parse_chat_response(completion(reply, "asked-model"), REQUEST)
    assert [(c.name, c.arguments) for c in response.tool_calls] == [
        ("pay", {"amount": 5, "confidence": 0.9}),
        ("note", {}),
    ]
    assert (response.text, response.prompt_tokens, response.completion_tokens) == ("paying", 123, 45)
    assert response.total_tokens == 168
    assert response.model == "served-model"
    assert response.offline is False


def test_a_final_answer_has_no_tool_calls_and_null_content_is_empty_text() -> None:
    assert parse_chat_response(completion(Reply(text="done"), "m"), REQUEST).tool_calls == []
    assert parse_chat_response(completion(Reply(text=None), "m"), REQUEST).text == ""


def test_malformed_arguments_become_an_unparsed_call_never_a_crash() -> None:
    reply = Reply(tool_calls=(("pay", '{"amount": 5,'),))
    [call] = parse_chat_response(completion(reply, "m"), REQUEST).tool_calls
    assert call.name == "pay"
    assert call.arguments == {"_unparsed": '{"amount": 5,'}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ({"a": 1}, {"a": 1}),  # some servers send an object
        ("", {}),
        (None, {}),
        ("[1, 2]", {"_unparsed": "[1, 2]"}),
        ("not json", {"_unparsed": "not json"}),
    ],
)
def test_parse_arguments(raw: Any, expected: dict[str, Any]) -> None:
    assert parse_arguments(raw) == expected


def test_a_missing_usage_is_estimated_not_free() -> None:
    payload = completion(Reply(text="done"), "m")
    del payload["usage"]
    response = parse_chat_response(payload, REQUEST)
    assert response.prompt_tokens > 0
    assert response.completion_tokens > 0


def test_an_answer_without_choices_is_a_server_error() -> None:
    with pytest.raises(ServerError, match="without choices"):
        parse_chat_response({"object": "error"}, REQUEST)


# -- over HTTP (MockTransport) ----------------------------------------------------------------


async def test_chat_posts_to_the_base_url_with_the_key_and_a_request_id() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=completion(Reply(text="hi"), "m"))

    response = await _model(handler).chat(REQUEST)
    assert response.text == "hi"
    [request] = seen
    assert str(request.url) == f"{BASE_URL}/chat/completions"
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert request.headers["X-Client-Request-Id"]
    assert json.loads(request.content)["model"] == "asked-model"


async def test_no_authorization_header_without_a_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=completion(Reply(text="hi"), "m"))

    await _model(handler, api_key=None).chat(REQUEST)
    assert "Authorization" not in seen[0].headers


def _echoing(status: int) -> Handler:
    """An error answer that repeats the credentials it got, as some services do."""

    def handler(request: httpx.Request) -> httpx.Response:
        said = f"rejected {request.headers.get('Authorization')}"
        return httpx.Response(status, json={"error": {"message": said}})

    return handler


@pytest.mark.parametrize(
    ("status", "error_type", "words"),
    [
        (401, NotConfigured, "AIOS_MODEL_API_KEY"),
        (403, NotConfigured, "AIOS_MODEL_API_KEY"),
        (404, NotConfigured, "AIOS_MODEL_BASE_URL"),
        (400, ClientError, "rejected"),
        (429, RateLimited, "slow down"),
        (500, ServerError, "failed"),
    ],
)
async def test_error_answers_map_to_the_error_tree_without_the_key(
    status: int, error_type: type[ConnectorError], words: str
) -> None:
    with pytest.raises(error_type) as caught:
        await _model(_echoing(status)).chat(REQUEST)
    assert type(caught.value) is error_type
    assert words in str(caught.value)
    assert API_KEY not in str(caught.value)


async def test_a_body_that_is_not_json_is_a_server_error() -> None:
    model = _model(lambda _: httpx.Response(200, text="<html>"))
    with pytest.raises(ServerError, match="not JSON"):
        await model.chat(REQUEST)


async def test_embeddings_come_back_in_the_order_of_the_texts() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert json.loads(request.content) == {"model": "emb", "input": ["a", "b"]}
        data = [{"index": 1, "embedding": [2, 2]}, {"index": 0, "embedding": [1, 1]}]
        return httpx.Response(200, json={"data": data})

    model = OpenAICompatibleModel(
        base_url=BASE_URL, embedding_model="emb", transport=httpx.MockTransport(handler)
    )
    assert await model.embed(["a", "b"]) == [[1.0, 1.0], [2.0, 2.0]]
    assert await model.embed([]) == []


async def test_embeddings_of_the_wrong_count_are_a_server_error() -> None:
    model = _model(lambda _: httpx.Response(200, json={"data": []}))
    with pytest.raises(ServerError, match="0 embeddings for 1 texts"):
        await model.embed(["a"])


# -- settings and wiring ----------------------------------------------------------------------


def test_the_model_base_url_must_be_http(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SettingsInvalid, match="AIOS_MODEL_BASE_URL"):
        load_settings(model_base_url="127.0.0.1:11434/v1")


async def test_the_openai_provider_exists_only_with_a_base_url(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    assert set(build_models(load_settings())) == {"offline"}
    models = build_models(load_settings(model_base_url="http://127.0.0.1:11434/v1", model_api_key=API_KEY))
    assert set(models) == {"offline", "openai"}
    assert isinstance(models["openai"], OpenAICompatibleModel)
    await models["openai"].aclose()


class _Refusing:
    async def chat(self, request: ChatRequest) -> ChatResponse:
        raise NotConfigured("the model API refused the credentials; set AIOS_MODEL_API_KEY")


def _agent(models: dict[str, ModelProvider]) -> AgentActivities:
    # Planning touches no database: the deps need only what the constructor reads.
    return AgentActivities(
        cast(ActivityDeps, SimpleNamespace(pool=None, models=models, connectors={}, subjects=None))
    )


def _plan_request(provider: str) -> PlanRequest:
    manifest = noop_manifest(1, model={"provider": provider, "name": "m"})
    return PlanRequest(run_id="r", turn=1, manifest=manifest, task={})


async def test_an_unconfigured_openai_provider_fails_for_good_naming_the_variable() -> None:
    with pytest.raises(ApplicationError) as caught:
        await _agent({"offline": OfflineModel()})._plan(_plan_request("openai"))
    assert caught.value.non_retryable
    assert caught.value.type == ModelNotConfigured.__name__
    assert "AIOS_MODEL_BASE_URL" in str(caught.value)


async def test_a_refused_key_fails_the_activity_for_good() -> None:
    with pytest.raises(ApplicationError) as caught:
        await _agent({"openai": _Refusing()})._plan(_plan_request("openai"))
    assert caught.value.non_retryable
    assert caught.value.type == "NotConfigured"
