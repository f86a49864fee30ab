"""One connected trace per run: client start -> workflow -> activities -> connector -> HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from aios.client import AiosClient
from aios.models.run import RunStatus
from aios.observability.telemetry import configure_tracing
from tests.support.effect_server import EffectServer
from tests.support.manifests import refund_like_manifest
from tests.support.runs import wait_for_status

PRIVATE = "customer-private-4711"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    configure_tracing("aios-test").add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.clear()


async def test_a_run_with_an_approval_is_one_connected_trace(
    spans: InMemorySpanExporter, aios_client: AiosClient, effect_server: EffectServer
) -> None:
    manifest = refund_like_manifest(effect_server.url)
    started = await aios_client.start_run(
        manifest.name, {"customer": PRIVATE, "amount": 250}, manifest=manifest
    )
    await wait_for_status(aios_client, started.run_id, RunStatus.WAITING_APPROVAL)
    await aios_client.decide(started.run_id, "approve", approver="alice")
    assert (await aios_client.result(started.run_id)).status is RunStatus.COMPLETED

    finished = spans.get_finished_spans()
    start = next(
        s for s in finished if s.name == "StartWorkflow:AgentRun" and _workflow_id(s) == started.run_id
    )
    trace_id = start.context.trace_id
    in_trace = [s for s in finished if s.context.trace_id == trace_id]
    names = {s.name for s in in_trace}
    assert "RunWorkflow:AgentRun" in names
    assert "RunActivity:agent.think" in names  # a local activity
    assert "RunActivity:action.execute" in names
    assert {"http charge", "http payout"} <= names  # the connector's spans
    http_calls = [s for s in in_trace if s.name == "POST" and _method(s) == "POST"]
    assert len(http_calls) == 2, sorted(names)
    assert {"INSERT aios_effects", "UPDATE aios_effects"} <= names  # the ledger's SQL

    # One tree: every span of the trace hangs from the client's start span.
    by_id = {s.context.span_id: s for s in in_trace}
    for span in in_trace:
        root = span
        while root.parent is not None and root.parent.span_id in by_id:
            root = by_id[root.parent.span_id]
        assert root is start, f"{span.name} is not under the run's start span"

    # No payload bodies in attributes: the task's values never appear.
    for span in in_trace:
        assert all(PRIVATE not in str(value) for value in (span.attributes or {}).values()), span.name


def _method(span: object) -> object:
    attributes = getattr(span, "attributes", None) or {}
    # The stable HTTP semantic conventions name it http.request.method; the older ones http.method.
    return attributes.get("http.request.method", attributes.get("http.method"))


def _workflow_id(span: object) -> object:
    return (getattr(span, "attributes", None) or {}).get("temporalWorkflowID")
