"""The shapes every model provider speaks: OpenAI-style chat messages, tools and tool calls."""

from __future__ import annotations

from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class ChatMessage(_Frozen):
    role: Literal["system", "user", "assistant", "tool"]
    content: str
    name: str | None = Field(default=None, description="for tool messages: the tool's name")
    arguments: dict[str, Any] | None = Field(
        default=None, description="for tool messages: the arguments the tool was called with"
    )


class ToolSpec(_Frozen):
    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(description="JSON Schema of the arguments")


class ToolCall(_Frozen):
    name: str
    arguments: dict[str, Any]


class ChatRequest(_Frozen):
    model: str
    messages: list[ChatMessage]
    tools: list[ToolSpec] = Field(default_factory=list)
    temperature: float | None = Field(default=None, description="unset: the provider's default")


class ChatResponse(_Frozen):
    text: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str
    offline: bool = False

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class ModelProvider(Protocol):
    async def chat(self, request: ChatRequest) -> ChatResponse: ...
