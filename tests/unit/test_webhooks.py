"""Webhook bodies are validated with messages that name the field and the fix; no I/O here."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from aios.cli.effects import is_loopback, webhook_app
from aios.ledger import effects
from aios.ledger.webhooks import WebhookEvent, WebhookInvalid, parse_event, reconcile_workflow_id

VALID = {"id": "evt_1", "effect_key": "run-1/step-1/charge", "outcome": "succeeded", "response": {"id": "x"}}


def test_a_valid_body_becomes_an_event() -> None:
    event = parse_event("stripe", json.dumps(VALID).encode())
    assert event == WebhookEvent(
        event_id="evt_1",
        source="stripe",
        effect_key="run-1/step-1/charge",
        outcome="succeeded",
        response={"id": "x"},
    )


def test_a_numbered_event_id_is_taken_as_text() -> None:
    assert parse_event("svc", {**VALID, "id": 42}).event_id == "42"


def test_response_and_error_are_optional() -> None:
    event = parse_event("svc", {"id": "e", "effect_key": "k", "outcome": "failed", "error": "declined"})
    assert event.response == {}
    assert event.error == "declined"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({**VALID, "id": None}, "'id' (the sender's event id, a non-empty string) is missing"),
        ({k: v for k, v in VALID.items() if k != "id"}, "'id'"),
        ({**VALID, "id": "  "}, "'id' (the sender's event id) must be a non-empty string, got '  '"),
        ({**VALID, "id": ["x"]}, "must be a non-empty string, got ['x']"),
        ({**VALID, "effect_key": ""}, "'effect_key'"),
        ({**VALID, "outcome": "ok"}, "'outcome' must be 'succeeded' or 'failed', got 'ok'"),
        ({k: v for k, v in VALID.items() if k != "outcome"}, "got None"),
        ({**VALID, "response": [1]}, "'response' must be a JSON object, got list"),
        ({**VALID, "error": 3}, "'error' must be a string"),
        ({**VALID, "amount": 3}, "unknown fields ['amount']"),
        ({**VALID, "id": "e" * 300}, "event_id"),
    ],
)
def test_a_malformed_body_is_refused_with_the_reason(body: dict[str, object], message: str) -> None:
    with pytest.raises(WebhookInvalid) as caught:
        parse_event("stripe", json.dumps(body))
    assert message in str(caught.value)


def test_every_problem_is_named_at_once() -> None:
    with pytest.raises(WebhookInvalid) as caught:
        parse_event("stripe", {"outcome": "maybe"})
    text = str(caught.value)
    assert "'id'" in text
    assert "'effect_key'" in text
    assert "'outcome'" in text


@pytest.mark.parametrize(
    ("body", "message"),
    [(b"{not json", "must be JSON"), (b"[1, 2]", "must be a JSON object, got list"), (b"\xff", "JSON")],
)
def test_a_body_that_is_not_a_json_object_is_refused(body: bytes, message: str) -> None:
    with pytest.raises(WebhookInvalid, match=message):
        parse_event("stripe", body)


@pytest.mark.parametrize("source", ["", "a/b", "-x", "x" * 65, "sp ace"])
def test_a_bad_source_name_is_refused(source: str) -> None:
    with pytest.raises(WebhookInvalid, match="not a valid name"):
        parse_event(source, VALID)


def test_one_reconciler_per_effect_key() -> None:
    assert reconcile_workflow_id("run-1/step-2/charge") == "reconcile-run-1/step-2/charge"


def test_a_redelivery_inserts_nothing_and_the_first_event_answers() -> None:
    # The de-duplication is the primary key plus DO NOTHING; RETURNING tells new from seen.
    sql = " ".join(effects.RECORD_WEBHOOK_EVENT.split())
    assert "ON CONFLICT (event_id) DO NOTHING RETURNING" in sql
    assert "ORDER BY received_at, event_id LIMIT 1" in " ".join(effects.FIRST_WEBHOOK_EVENT.split())
    # Settling is conditional: a finished effect is never rewritten.
    assert "state IN ('pending', 'unknown')" in effects.RESOLVE_EFFECT


def test_the_cli_refuses_a_bad_event_before_touching_anything() -> None:
    result = CliRunner().invoke(
        webhook_app, ["send", "--source", "s", "--event-id", "e", "--effect", "k", "--outcome", "done"]
    )
    assert result.exit_code == 2
    said = " ".join(result.output.split())  # the error console wraps long lines
    assert "'outcome' must be 'succeeded' or 'failed', got 'done'" in said
    assert "Traceback" not in said


def test_the_cli_refuses_a_response_that_is_not_json() -> None:
    args = ["send", "--source", "s", "--event-id", "e", "--effect", "k", "--outcome", "succeeded"]
    result = CliRunner().invoke(webhook_app, [*args, "--response", "{oops"])
    assert result.exit_code == 1
    assert "--response is not valid JSON" in " ".join(result.output.split())


def test_serve_binds_loopback_unless_told_otherwise() -> None:
    assert is_loopback("127.0.0.1")
    assert is_loopback("::1")
    assert is_loopback("localhost")
    assert not is_loopback("0.0.0.0")
    result = CliRunner().invoke(webhook_app, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "--allow-remote" in " ".join(result.output.split())
