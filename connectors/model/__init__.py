"""Model providers behind one interface: chat with tool calls, OpenAI-shaped."""

from connectors.model.offline import OfflineModel
from connectors.model.openai import OpenAICompatibleModel
from connectors.model.types import (
    ChatMessage,
    ChatRequest,
    ChatResponse,
    ModelProvider,
    ToolCall,
    ToolSpec,
)

__all__ = [
    "ChatMessage",
    "ChatRequest",
    "ChatResponse",
    "ModelProvider",
    "OfflineModel",
    "OpenAICompatibleModel",
    "ToolCall",
    "ToolSpec",
]
