"""The realistic workload's loopback servers: a model with a seeded latency that answers with real
tool calls, and an effect server whose every POST takes a fixed service time.

The model (tests/support/fake_openai.py with a responder) reads the conversation it is sent:
with n tool results in it, it calls the (n+1)-th tool offered (`step_<n+1>`, arguments
`{"confidence": ...}`), and once every tool has a result it answers "done". Its latency is
drawn per request from a generator seeded by (seed, the task's message, n), so the same run's
same turn waits as long on both sides, whatever order the requests arrive in.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from tests.support.effect_server import EffectServer
from tests.support.fake_openai import FakeOpenAI, Reply

CONFIDENCE = 0.95  # above the policy's default min_confidence: only the high-risk step waits


@dataclass(frozen=True)
class ModelTiming:
    """Each answer waits `mean ± spread` seconds, uniformly, seeded."""

    mean: float = 0.150
    spread: float = 0.050
    seed: int = 16

    def seconds(self, body: dict[str, Any]) -> float:
        draw = random.Random(f"{self.seed}:{_task_message(body)}:{_results(body)}")
        return max(0.0, self.mean + draw.uniform(-self.spread, self.spread))


def answer(body: dict[str, Any]) -> Reply:
    """The next tool in order, or "done" when every offered tool has been called."""
    tools = [tool["function"]["name"] for tool in body.get("tools", [])]
    done = _results(body)
    if done >= len(tools):
        return Reply(text="done")
    ordered = sorted(tools, key=_step_number)
    return Reply(tool_calls=((ordered[done], {"confidence": CONFIDENCE}),))


def _step_number(name: str) -> int:
    return int(name.rsplit("_", 1)[-1]) if name.rsplit("_", 1)[-1].isdigit() else 0


def _results(body: dict[str, Any]) -> int:
    return sum(1 for message in body.get("messages", []) if message.get("role") == "tool")


def _task_message(body: dict[str, Any]) -> str:
    users = [m.get("content") for m in body.get("messages", []) if m.get("role") == "user"]
    return str(users[0]) if users else ""


@dataclass
class Servers:
    model: FakeOpenAI
    effects: EffectServer

    @classmethod
    def start(cls, timing: ModelTiming, effect_seconds: float) -> Servers:
        model = FakeOpenAI(responder=answer, latency=timing.seconds, record_requests=False).start()
        return cls(model, EffectServer(latency_seconds=effect_seconds).start())

    def stop(self) -> None:
        self.model.stop()
        self.effects.stop()
