"""A model provider for any OpenAI-compatible API: OpenAI, Ollama, vLLM, the llama.cpp server.

The base URL selects the service and includes the API version (`https://api.openai.com/v1`,
`http://127.0.0.1:11434/v1` for Ollama); the API key is optional, as local servers want none.

`ChatRequest` records what the agent already did as tool messages (the tool's name, the
arguments it was called with, its result), while the OpenAI format wants every tool result to
answer a tool call of an assistant message by its `tool_call_id`. The translation therefore
gives each tool message a stable id (`call_1`, `call_2`, ... in order) and puts the matching
tool calls on the assistant message just before it, synthesizing that message when the
conversation has none. Stable ids keep the
same conversation byte-identical across turns, which lets servers reuse their prompt cache.

Calls go through `ResilientHttp`: a 429 or 5xx is retried (asking a model again applies no
effect anywhere), a refused key becomes `NotConfigured` naming AIOS_MODEL_API_KEY, and the key
is redacted from every message.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx

from connectors.breaker import BreakerSnapshot, CircuitBreaker
from connectors.errors import ConnectorError, NotConfigured, ServerError
from connectors.http_base import ResilientHttp, RetryPolicy, error_for_response
from connectors.model.types import ChatMessage, ChatRequest, ChatResponse, ToolCall, ToolSpec
from connectors.redaction import Redactor, safe_url

DEFAULT_TIMEOUT_SECONDS = 60.0
CONNECT_TIMEOUT_SECONDS = 5.0
DEFAULT_EMBEDDING_MODEL = "text-embedding-3-small"
# OpenAI's header for a caller-chosen request id; other servers ignore it. Sending one per call
# (the same on each retry) also marks the POST as repeatable for ResilientHttp.
REQUEST_ID_HEADER = "X-Client-Request-Id"
UNPARSED = "_unparsed"
CHARS_PER_TOKEN = 4  # the usual rough estimate, for servers that report no usage

Json = dict[str, Any]


class OpenAICompatibleModel:
    name = "openai"

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | None = None,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        embedding_model: str = DEFAULT_EMBEDDING_MODEL,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._embedding_model = embedding_model
        self._http = ResilientHttp(
            "model",
            base_url=base_url,
            transport=transport,
            timeout=httpx.Timeout(timeout_seconds, connect=min(timeout_seconds, CONNECT_TIMEOUT_SECONDS)),
            headers=headers,
            secrets=[api_key],
            retry=retry,
            breaker=breaker,
            error_mapper=model_error,
            idempotency_header=REQUEST_ID_HEADER,
        )

    def breaker_state(self) -> BreakerSnapshot:
        return self._http.breaker_state()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def chat(self, request: ChatRequest) -> ChatResponse:
        payload = await self._post("/chat/completions", chat_body(request))
        return parse_chat_response(payload, request)

    async def embed(self, texts: list[str], *, model: str | None = None) -> list[list[float]]:
        """One vector per text, in the order given."""
        if not texts:
            return []
        payload = await self._post("/embeddings", {"model": model or self._embedding_model, "input": texts})
        return parse_embeddings(payload, expected=len(texts))

    async def _post(self, path: str, body: Json) -> Json:
        response = await self._http.request("POST", path, json=body, idempotency_key=uuid.uuid4().hex)
        try:
            payload = response.json()
        except ValueError as exc:
            raise _unreadable(response, "a body that is not JSON") from exc
        if not isinstance(payload, dict):
            raise _unreadable(response, "JSON that is not an object")
        return payload


def model_error(response: httpx.Response, redact: Redactor) -> ConnectorError:
    """The base mapping, with the fix named where the fix is a setting."""
    error = error_for_response(response, redact)
    where = f"{response.request.method} {safe_url(response.request.url)} answered {response.status_code}"
    if response.status_code in (401, 403):
        return NotConfigured(
            f"{where}: the model API refused the credentials; set AIOS_MODEL_API_KEY to a valid key "
            f"for AIOS_MODEL_BASE_URL ({error})",
            status=response.status_code,
        )
    if response.status_code == 404:
        return NotConfigured(
            f"{where}: no such endpoint or model; AIOS_MODEL_BASE_URL usually ends in /v1, and the "
            f"manifest's model name must exist on the server ({error})",
            status=response.status_code,
        )
    return error


def _unreadable(response: httpx.Response, what: str) -> ServerError:
    where = f"{response.request.method} {safe_url(response.request.url)} answered {response.status_code}"
    return ServerError(f"{where} with {what}", status=response.status_code)


# -- request ----------------------------------------------------------------------------------


def chat_body(request: ChatRequest) -> Json:
    body: Json = {"model": request.model, "messages": openai_messages(request.messages)}
    if request.tools:  # some servers refuse an empty list
        body["tools"] = [openai_tool(tool) for tool in request.tools]
    if request.temperature is not None:
        body["temperature"] = request.temperature
    return body


def openai_tool(tool: ToolSpec) -> Json:
    return {
        "type": "function",
        "function": {"name": tool.name, "description": tool.description, "parameters": tool.parameters},
    }


def openai_messages(messages: list[ChatMessage]) -> list[Json]:
    """The conversation in the OpenAI format, each tool result paired with a tool call by id."""
    translated: list[Json] = []
    calls = 0
    for message in messages:
        if message.role != "tool":
            translated.append({"role": message.role, "content": message.content})
            continue
        calls += 1
        call_id = f"call_{calls}"
        call = _tool_call(call_id, message.name or "tool", message.arguments)
        _calling_message(translated)["tool_calls"].append(call)
        translated.append({"role": "tool", "tool_call_id": call_id, "content": message.content})
    return translated


def _calling_message(translated: list[Json]) -> Json:
    """The assistant message that carries the tool calls answered by the tool messages after it.

    Consecutive tool results share the one assistant message before them (parallel calls).
    A plain assistant message just before takes the calls itself, since some chat templates
    (llama.cpp, Mistral) refuse two assistant messages in a row.
    """
    last = translated[-1] if translated else None
    if last is not None and last["role"] == "tool":
        # Walk back past the other results of this batch to the assistant message that called them.
        return next(m for m in reversed(translated) if m["role"] == "assistant")
    if last is not None and last["role"] == "assistant":
        last.setdefault("tool_calls", [])
        return last
    synthesized: Json = {"role": "assistant", "content": None, "tool_calls": []}
    translated.append(synthesized)
    return synthesized


def _tool_call(call_id: str, name: str, arguments: dict[str, Any] | None) -> Json:
    # Unrecorded arguments (a request from before results were passed) are "{}": still valid.
    text = json.dumps(arguments or {}, sort_keys=True)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": text}}


# -- response ---------------------------------------------------------------------------------


def parse_chat_response(payload: Json, request: ChatRequest) -> ChatResponse:
    message = _first_message(payload)
    text = message.get("content")
    text = text if isinstance(text, str) else ""
    calls = [_parse_tool_call(call) for call in message.get("tool_calls") or [] if isinstance(call, dict)]
    prompt_tokens, completion_tokens = _usage(payload, request, text, calls)
    model = payload.get("model")
    return ChatResponse(
        text=text,
        tool_calls=calls,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        model=model if isinstance(model, str) and model else request.model,
        offline=False,
    )


def _first_message(payload: Json) -> Json:
    choices = payload.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise ServerError(f"the model API answered without choices: {_excerpt(payload)}")
    message = choices[0].get("message")
    if not isinstance(message, dict):
        raise ServerError(f"the model API answered a choice without a message: {_excerpt(payload)}")
    return message


def _parse_tool_call(call: Json) -> ToolCall:
    function = call.get("function")
    function = function if isinstance(function, dict) else {}
    return ToolCall(
        name=str(function.get("name") or ""), arguments=parse_arguments(function.get("arguments"))
    )


def parse_arguments(raw: Any) -> dict[str, Any]:
    """A call's arguments; text that is not a JSON object is kept under `_unparsed`, never raised.

    The arguments are the model's own writing and may be broken. Keeping the text lets the run
    go on (the policy sees no confidence and asks a human) and shows what the model wrote.
    """
    if isinstance(raw, dict):  # some servers (older Ollama) send an object, not a string
        return raw
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    text = raw if isinstance(raw, str) else json.dumps(raw)
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        return {UNPARSED: text}
    return parsed if isinstance(parsed, dict) else {UNPARSED: text}


def _usage(payload: Json, request: ChatRequest, text: str, calls: list[ToolCall]) -> tuple[int, int]:
    usage = payload.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if isinstance(prompt, int) and isinstance(completion, int):
        return prompt, completion
    # A server that reports no usage still spent tokens: estimate, so the budget never sees a free call.
    written = text + "".join(call.name + json.dumps(call.arguments) for call in calls)
    said = "".join(message.content for message in request.messages)
    return _estimate(said), _estimate(written)


def _estimate(text: str) -> int:
    return max(1, len(text) // CHARS_PER_TOKEN)


def parse_embeddings(payload: Json, *, expected: int) -> list[list[float]]:
    data = payload.get("data")
    items = [item for item in data if isinstance(item, dict)] if isinstance(data, list) else []
    if len(items) != expected or not all(isinstance(item.get("embedding"), list) for item in items):
        raise ServerError(f"the model API answered {len(items)} embeddings for {expected} texts")
    # The API may answer out of order; `index` says which text each vector belongs to.
    ordered = sorted(enumerate(items), key=lambda pair: _index(pair[1], default=pair[0]))
    return [[float(value) for value in item["embedding"]] for _, item in ordered]


def _index(item: Json, *, default: int) -> int:
    index = item.get("index")
    return index if isinstance(index, int) else default


def _excerpt(payload: Json) -> str:
    return json.dumps(payload)[:200]
