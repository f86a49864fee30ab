"""What the model is told of its steps: results cut and redacted, older steps by name, and the
offline model quoting a result's id in the message it writes."""

from __future__ import annotations

import json

from activities.tool_results import TOOL_RESULT_CHARS, TRUNCATED, result_text, tool_messages
from aios.ledger.effects import EffectRecord
from aios.models.run import DoneStep
from connectors.model import ChatMessage, ChatRequest, OfflineModel, ToolSpec


def done(step: int, action: str, key: str | None = None, **fields: object) -> DoneStep:
    return DoneStep.model_validate(
        {"step": step, "action": action, "status": "executed", "effect_key": key, **fields}
    )


def record(response: dict[str, object] | None, state: str = "succeeded", error: str = "") -> EffectRecord:
    return EffectRecord(state=state, response=response, error=error, attempts=1)  # type: ignore[arg-type]


def test_a_result_carries_status_response_and_error() -> None:
    told = json.loads(result_text(done(2, "charge", "k"), record({"status": 200, "body": {"id": "ch_1"}})))
    assert told == {
        "step": 2,
        "status": "executed",
        "state": "succeeded",
        "response": {"status": 200, "body": {"id": "ch_1"}},
    }
    failed = json.loads(
        result_text(done(3, "ship", "k2", status="failed"), record(None, "failed", "400: no address"))
    )
    assert failed["error"] == "400: no address" and "response" not in failed
    rejected = json.loads(result_text(done(4, "payout", None, status="rejected"), None))
    assert rejected == {"step": 4, "status": "rejected"}


def test_a_large_result_is_cut_and_a_credential_masked() -> None:
    text = result_text(done(1, "fetch", "k"), record({"body": "x" * 10_000, "token": "Bearer abcdefgh12345"}))
    assert len(text) == TOOL_RESULT_CHARS and text.endswith(TRUNCATED)
    masked = result_text(done(1, "fetch", "k"), record({"auth": "Bearer abcdefgh12345"}))
    assert "abcdefgh12345" not in masked and "[REDACTED]" in masked


def test_older_steps_are_told_by_name_and_the_last_ones_with_results() -> None:
    told = [done(3, "c", "k3", params={"x": 1})]
    messages = tool_messages(["a", "b", "c"], told, {"k3": record({"ok": True})})
    assert [(m.name, m.content) for m in messages[:2]] == [("a", "done"), ("b", "done")]
    assert messages[2].name == "c" and messages[2].arguments == {"x": 1}
    assert json.loads(messages[2].content)["response"] == {"ok": True}
    # A request from before results were told: every step by name.
    assert [m.content for m in tool_messages(["a", "b"], [], {})] == ["done", "done"]


def test_summarised_previous_turns_tell_only_the_latest_result_whole() -> None:
    told = [done(1, "charge", "k1"), done(2, "refund", "k2", status="failed", error="card expired")]
    ledger = {"k1": record({"id": "ch_1"}), "k2": record({"id": "re_1"}, "failed")}
    earlier, latest = tool_messages(["charge", "refund"], told, ledger, "summary")
    assert json.loads(earlier.content) == {"step": 1, "status": "executed"}
    assert json.loads(latest.content)["response"] == {"id": "re_1"}
    assert json.loads(latest.content)["error"] == "card expired"
    whole = tool_messages(["charge", "refund"], told, ledger)
    assert json.loads(whole[0].content)["response"] == {"id": "ch_1"}


async def test_the_offline_model_quotes_the_latest_result_s_id_in_its_message() -> None:
    tools = [
        ToolSpec(name="issue_refund", parameters={"type": "object", "properties": {"amount": {}}}),
        ToolSpec(name="send_reply", parameters={"type": "object", "properties": {"message": {}}}),
    ]
    refunded = json.dumps({"step": 1, "status": "executed", "response": {"id": "cbtxn_42", "amount": -500}})
    request = ChatRequest(
        model="offline",
        messages=[
            ChatMessage(role="user", content=json.dumps({"amount": 500, "message": "Refunded."})),
            ChatMessage(role="tool", name="issue_refund", content=refunded),
        ],
        tools=tools,
    )
    [call] = (await OfflineModel().chat(request)).tool_calls
    assert call.arguments["message"] == "Refunded. (reference: cbtxn_42)"
    before = request.model_copy(
        update={
            "messages": [*request.messages[:1], ChatMessage(role="tool", name="issue_refund", content="done")]
        }
    )
    [plain] = (await OfflineModel().chat(before)).tool_calls
    assert plain.arguments["message"] == "Refunded."
