"""Webhook events: a service telling us how an effect ended, delivered to its reconciler.

An event arrives over HTTP (`aios webhook serve`: `POST /webhooks/<source>`) or from a
script (`aios webhook send`); both go through `WebhookIngestor.ingest`:

1. the body is validated into a `WebhookEvent` (a clear `WebhookInvalid` otherwise);
2. it is kept in `aios_webhook_events` under its event id, `INSERT ... ON CONFLICT DO
   NOTHING`: a redelivery of the same id stops here, so it reaches the run at most once;
3. a new event is signalled to the effect's reconciler, the `ReconcileEffect` workflow with
   id `reconcile-<effect key>`.

When no reconciler is running for the effect (it has not started yet, it already finished,
or Temporal is unreachable), the event is only kept: every reconciler reads the table on
each poll, so one that starts later still finds it. The ledger is never written from here:
the reconciler is the one writer that settles an unknown effect ("first conclusive answer
wins" in one place), and an unauthenticated endpoint cannot flip a finished effect.

The body, for every source:

    {"id": "evt_123",                  the sender's event id (the de-duplication key)
     "effect_key": "run-1/step-2/charge",
     "outcome": "succeeded" | "failed",
     "response": {...},                 optional: the effect's result, as the connector returns it
     "error": "..."}                    optional: why it failed

The endpoint binds to loopback unless told otherwise, and it checks no signatures: put it
behind something that verifies the sender before exposing it.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from psycopg_pool import AsyncConnectionPool
from pydantic import Field, ValidationError
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from aios.errors import AiosError
from aios.governance.subjects import SubjectVault
from aios.ledger import effects
from aios.models.base import Payload
from aios.settings import Settings
from aios.store.migrate import redact_url
from aios.web.server import HttpAnswer, HttpRequest, HttpServer

log = logging.getLogger("aios.ledger.webhooks")

RECONCILE_WORKFLOW = "ReconcileEffect"
WEBHOOK_SIGNAL = "webhook"
SOURCE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_BODY_BYTES = 1 << 20
WEBHOOK_PATH = "/webhooks/"
Outcome = Literal["succeeded", "failed"]


def reconcile_workflow_id(effect_key: str) -> str:
    """One reconciler per effect: webhooks find it by the key alone."""
    return f"reconcile-{effect_key}"


class WebhookInvalid(AiosError):
    """A webhook body is malformed; the message says which field and what is expected."""


class WebhookNotDelivered(AiosError):
    """The event could not be kept (Postgres unreachable): the sender should deliver it again."""


class WebhookEvent(Payload):
    """A webhook normalized: which effect, and how it ended. The signal's argument."""

    event_id: str = Field(min_length=1, max_length=255)
    source: str = Field(min_length=1, max_length=64)
    effect_key: str = Field(min_length=1)
    outcome: Outcome
    response: dict[str, Any] = Field(default_factory=dict)
    error: str = ""


def parse_event(source: str, body: bytes | str | Mapping[str, Any]) -> WebhookEvent:
    """Validate a webhook body (see the module docstring) into an event, or say what is wrong."""
    if not SOURCE_PATTERN.match(source):
        raise WebhookInvalid(
            f"webhook source {source!r} is not a valid name: letters, digits, '.', '_' or '-', "
            "at most 64 characters (e.g. `stripe`)"
        )
    data = _json_object(body)
    problems = []
    event_id = data.get("id")
    if isinstance(event_id, int) and not isinstance(event_id, bool):
        event_id = str(event_id)  # some senders number their events
    problems += _text_problem("id", "the sender's event id", event_id)
    effect_key = data.get("effect_key")
    problems += _text_problem("effect_key", "the effect's idempotency key", effect_key)
    outcome = data.get("outcome")
    if outcome not in ("succeeded", "failed"):
        problems.append(f"'outcome' must be 'succeeded' or 'failed', got {outcome!r}")
    response = data.get("response", {})
    if response is None:
        response = {}
    if not isinstance(response, dict):
        problems.append(f"'response' must be a JSON object, got {type(response).__name__}")
    error = data.get("error", "")
    if not isinstance(error, str):
        problems.append(f"'error' must be a string, got {type(error).__name__}")
    unknown = sorted(set(data) - {"id", "effect_key", "outcome", "response", "error"})
    if unknown:
        problems.append(f"unknown fields {unknown}; allowed: id, effect_key, outcome, response, error")
    if problems:
        raise WebhookInvalid("invalid webhook event: " + "; ".join(problems))
    try:
        return WebhookEvent(
            event_id=str(event_id).strip(),
            source=source,
            effect_key=str(effect_key).strip(),
            outcome=outcome,
            response=response,
            error=error,
        )
    except ValidationError as exc:  # e.g. an id longer than 255 characters
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise WebhookInvalid(f"invalid webhook event: {where}: {first['msg']}") from exc


def _text_problem(field: str, meaning: str, value: Any) -> list[str]:
    if value is None:
        return [f"'{field}' ({meaning}, a non-empty string) is missing"]
    if not isinstance(value, str) or not value.strip():
        return [f"'{field}' ({meaning}) must be a non-empty string, got {value!r}"]
    return []


def _json_object(body: bytes | str | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(body, Mapping):
        return dict(body)
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WebhookInvalid(f"a webhook body must be JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise WebhookInvalid(
            f"a webhook body must be a JSON object, got {type(data).__name__}: "
            '{"id": ..., "effect_key": ..., "outcome": "succeeded"|"failed", "response": {...}}'
        )
    return data


@dataclass(frozen=True)
class IngestResult:
    event: WebhookEvent
    duplicate: bool  # the event id was received before: nothing was signalled again
    signalled: bool  # a running reconciler got it
    note: str

    @property
    def workflow_id(self) -> str:
        return reconcile_workflow_id(self.event.effect_key)

    def as_json(self) -> dict[str, Any]:
        return {
            "event_id": self.event.event_id,
            "effect_key": self.event.effect_key,
            "duplicate": self.duplicate,
            "signalled": self.signalled,
            "note": self.note,
        }


class WebhookIngestor:
    """Keeps events once and signals reconcilers; one per process (a pool, a Temporal client)."""

    def __init__(self, settings: Settings, *, client: Client | None = None) -> None:
        self._settings = settings
        self._subjects = SubjectVault.for_settings(settings)
        self._client = client
        self._pool = AsyncConnectionPool(
            settings.resolved_database_url,
            min_size=1,
            max_size=4,
            open=False,
            name="aios-webhooks",
            kwargs={"autocommit": True},
        )

    async def __aenter__(self) -> WebhookIngestor:
        try:
            await self._pool.open(wait=True, timeout=10)
        except psycopg.Error as exc:  # PoolTimeout is one
            await self._pool.close()
            raise WebhookNotDelivered(self._unreachable(exc)) from exc
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._pool.close()

    async def ingest(self, event: WebhookEvent) -> IngestResult:
        try:
            async with self._pool.connection() as conn:
                new = await effects.record_webhook_event(
                    conn,
                    event_id=event.event_id,
                    source=event.source,
                    effect_key=event.effect_key,
                    payload=event.model_dump(mode="json"),
                    vault=self._subjects,
                )
        except psycopg.Error as exc:
            raise WebhookNotDelivered(self._unreachable(exc)) from exc
        if not new:
            return IngestResult(
                event, duplicate=True, signalled=False, note="already received: a redelivery changes nothing"
            )
        signalled, note = await self._signal(event)
        return IngestResult(event, duplicate=False, signalled=signalled, note=note)

    async def _signal(self, event: WebhookEvent) -> tuple[bool, str]:
        workflow_id = reconcile_workflow_id(event.effect_key)
        kept = "kept; a reconciler started later finds it when it polls"
        try:
            if self._client is None:
                from aios.temporal.connection import connect

                self._client = await connect(self._settings)
            await self._client.get_workflow_handle(workflow_id).signal(WEBHOOK_SIGNAL, event)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return False, f"no reconciler is running for this effect ({workflow_id}); {kept}"
            log.warning("signalling %s failed: %s", workflow_id, exc)
            return False, f"signalling {workflow_id} failed ({exc.message}); {kept}"
        except RuntimeError as exc:  # the client could not connect
            log.warning("Temporal unreachable for %s: %s", workflow_id, exc)
            return False, f"Temporal is unreachable ({exc}); {kept}"
        return True, f"delivered to {workflow_id}"

    def _unreachable(self, exc: Exception) -> str:
        url = redact_url(self._settings.resolved_database_url)
        return (
            f"could not keep the webhook event in Postgres at {url} ({type(exc).__name__}: {exc}); "
            "is the stack up (`aios dev up`) and migrated (`aios db migrate`)?"
        )


# -- the HTTP endpoint ------------------------------------------------------------------------


class WebhookServer(HttpServer):
    """`POST /webhooks/<source>` with a JSON event (aios/web/server.py serves it).

    Bodies up to 1 MiB. A malformed event gets 400 with the reason; an event that could not be
    kept gets 503 so the sender retries; a kept or duplicate event gets 200 with what happened.
    """

    def __init__(self, ingestor: WebhookIngestor) -> None:
        super().__init__(self._route, max_body=MAX_BODY_BYTES)
        self._ingestor = ingestor

    async def _route(self, request: HttpRequest) -> HttpAnswer:
        if not request.path.startswith(WEBHOOK_PATH):
            return HttpAnswer(404, {"error": f"no such endpoint {request.path!r}; POST /webhooks/<source>"})
        if request.method != "POST":
            return HttpAnswer(405, {"error": f"{request.method} is not allowed; POST a JSON event"})
        return await self._ingest(request.path.removeprefix(WEBHOOK_PATH), request.body)

    async def _ingest(self, source: str, body: bytes) -> HttpAnswer:
        try:
            event = parse_event(source, body)
            result = await self._ingestor.ingest(event)
        except WebhookInvalid as exc:
            return HttpAnswer(400, {"error": str(exc)})
        except WebhookNotDelivered as exc:
            log.error("webhook not kept: %s", exc)
            return HttpAnswer(503, {"error": "the event could not be kept; deliver it again later"})
        log.info("webhook %s from %s for %s: %s", event.event_id, source, event.effect_key, result.note)
        return HttpAnswer(200, result.as_json())
