"""What the model is told of the steps it took: each as an OpenAI-style tool result.

A result is the step's status and what its connector returned, read from the effect ledger
(the record of what happened, opened with the run's subject key), errors included, redacted of
anything that looks like a credential and cut to TOOL_RESULT_CHARS: a large response (a
document, a list) must not crowd the task out of the model's context. A step without a ledger
row (a rejected or forbidden one) is told by its status alone.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from psycopg import AsyncConnection

from aios.governance.subjects import SubjectVault
from aios.ledger import effects
from aios.models.run import DoneStep
from connectors.model import ChatMessage
from connectors.redaction import Redactor

TOOL_RESULT_CHARS = 2000
TRUNCATED = "...(truncated)"
_REDACT = Redactor()  # no known secrets here: the credential patterns alone


async def ledger_results(
    conn: AsyncConnection[Any], done: list[DoneStep], vault: SubjectVault
) -> dict[str, effects.EffectRecord]:
    """The ledger's row of each told step that has one, by effect key (one query)."""
    keys = [step.effect_key for step in done if step.effect_key is not None]
    return await effects.find_many(conn, keys, vault=vault) if keys else {}


def tool_messages(
    done_actions: list[str],
    done: list[DoneStep],
    ledger: dict[str, effects.EffectRecord],
    previous_turns: Literal["whole", "summary"] = "whole",
) -> list[ChatMessage]:
    """Every step as a tool message: the older ones by name ("done"), the told ones with results.

    With `previous_turns: summary` only the latest result is told whole; the steps before it by
    their status alone: fewer tokens per turn, for agents whose next move depends on the last.
    """
    older = done_actions[: max(len(done_actions) - len(done), 0)]  # the told steps are the last
    messages = [ChatMessage(role="tool", name=name, content="done") for name in older]
    for index, step in enumerate(done):
        whole = previous_turns == "whole" or index == len(done) - 1
        record = ledger.get(step.effect_key) if step.effect_key and whole else None
        messages.append(
            ChatMessage(
                role="tool", name=step.action, arguments=step.params, content=result_text(step, record)
            )
        )
    return messages


def result_text(step: DoneStep, record: effects.EffectRecord | None) -> str:
    """The result as JSON text: status, response (or error), redacted and cut to the budget."""
    told: dict[str, Any] = {"step": step.step, "status": step.status}
    if record is not None:
        told["state"] = record.state
        if record.response is not None:
            told["response"] = record.response
    error = step.error or (record.error if record is not None else "")
    if error:
        told["error"] = error
    text = _REDACT(json.dumps(told, sort_keys=True, default=str))
    return text if len(text) <= TOOL_RESULT_CHARS else text[: TOOL_RESULT_CHARS - len(TRUNCATED)] + TRUNCATED
