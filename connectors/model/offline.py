"""A deterministic model that needs no network: for the demo, tests and benchmarks.

It plays an agent that works through its tools in the order given, one call per turn,
filling each tool's arguments from the task (the user message, JSON), and says it is done
when every tool has been called. It reads the tools' results too: a message it writes quotes
the id of the latest result that has one (the refund's id in the reply to the customer). Its
every word is marked "[offline model]", so nobody mistakes its output for a real model's.
"""

from __future__ import annotations

import json
from typing import Any

from connectors.model.types import ChatRequest, ChatResponse, ToolCall, ToolSpec

MARK = "[offline model]"
DEFAULT_CONFIDENCE = 0.9
CHARS_PER_TOKEN = 4  # the usual rough estimate for English text
QUOTING_PARAMS = frozenset({"message", "body", "text"})  # text it writes quotes a result's id


class OfflineModel:
    name = "offline-planner"

    async def chat(self, request: ChatRequest) -> ChatResponse:
        task = _task_from(request)
        called = {message.name for message in request.messages if message.role == "tool"}
        pending = [tool for tool in request.tools if tool.name not in called]
        prompt_tokens = _estimate_tokens("".join(message.content for message in request.messages))
        if not pending:
            text = f"{MARK} every available action has been taken; done."
            return self._response(text, [], prompt_tokens)
        tool = pending[0]
        position = len(called) + 1
        arguments = _arguments(tool, task, position, len(request.tools))
        call = ToolCall(name=tool.name, arguments=_quoting_results(arguments, _results(request)))
        text = f"{MARK} next: {tool.name}"
        return self._response(text, [call], prompt_tokens)

    def _response(self, text: str, calls: list[ToolCall], prompt_tokens: int) -> ChatResponse:
        completion = _estimate_tokens(text + json.dumps([call.arguments for call in calls]))
        return ChatResponse(
            text=text,
            tool_calls=calls,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion,
            model=self.name,
            offline=True,
        )


def _task_from(request: ChatRequest) -> dict[str, Any]:
    """The first user message carries the task as JSON; anything else is treated as text."""
    for message in request.messages:
        if message.role == "user":
            try:
                loaded = json.loads(message.content)
            except json.JSONDecodeError:
                return {"text": message.content}
            return loaded if isinstance(loaded, dict) else {"text": message.content}
    return {}


def _arguments(tool: ToolSpec, task: dict[str, Any], position: int, total: int) -> dict[str, Any]:
    properties = tool.parameters.get("properties", {})
    arguments = {name: task[name] for name in properties if name in task}
    # A task may steer the offline model's confidence, so tests can exercise the policy.
    confidence = task.get("confidence", DEFAULT_CONFIDENCE)
    if "confidence" in properties:
        arguments["confidence"] = confidence
    if "rationale" in properties:
        arguments["rationale"] = (
            f"{MARK} step {position} of {total}: {tool.name} is the next action the manifest allows"
        )
    return arguments


def _results(request: ChatRequest) -> list[dict[str, Any]]:
    """What earlier tools returned (their `response`, and its HTTP `body`), newest first."""
    found: list[dict[str, Any]] = []
    for message in reversed(request.messages):
        if message.role != "tool":
            continue
        try:
            told = json.loads(message.content)
        except json.JSONDecodeError:
            continue  # "done": a step from before results were told
        response = told.get("response") if isinstance(told, dict) else None
        if isinstance(response, dict):
            body = response.get("body")
            found += [body, response] if isinstance(body, dict) else [response]
    return found


def _quoting_results(arguments: dict[str, Any], results: list[dict[str, Any]]) -> dict[str, Any]:
    """The arguments, with the latest result's id quoted in the text the model writes."""
    reference = next((result["id"] for result in results if result.get("id")), None)
    if reference is None:
        return arguments
    quoted = dict(arguments)
    for name in QUOTING_PARAMS & quoted.keys():
        if isinstance(quoted[name], str):
            quoted[name] += f" (reference: {reference})"
    return quoted


def _estimate_tokens(text: str) -> int:
    return max(1, len(text) // CHARS_PER_TOKEN)
