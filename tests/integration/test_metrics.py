"""Metrics read with an in-memory reader: aios's gauges from Postgres, Temporal's runtime metrics."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider, ObservableGauge
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, PeriodicExportingMetricReader
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client

from aios.client import AiosClient
from aios.models.run import RunStatus
from aios.observability.metrics import (
    AiosMetrics,
    MetricsService,
    ProcessMetrics,
    TemporalBridge,
    exporter_names,
    install_metrics,
    readers_from_env,
    temporal_runtime,
)
from aios.settings import Settings
from tests.support.effect_server import EffectServer
from tests.support.env import child_env
from tests.support.manifests import refund_like_manifest
from tests.support.runs import wait_for_status

LARGE = {"customer": "c-9", "amount": 250}  # payout needs approval


@pytest.fixture
async def pool(stack_settings: Settings) -> AsyncIterator[AsyncConnectionPool]:
    async with AsyncConnectionPool(
        stack_settings.resolved_database_url, min_size=1, max_size=2, kwargs={"autocommit": True}
    ) as opened:
        yield opened


def _points(reader: InMemoryMetricReader, name: str) -> dict[frozenset[tuple[str, Any]], float]:
    """A metric's current values by attribute set (gauge value, or counter sum)."""
    data = reader.get_metrics_data()
    found: dict[frozenset[tuple[str, Any]], float] = {}
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name != name:
                    continue
                for point in metric.data.data_points:
                    value = getattr(point, "value", None)
                    found[frozenset((point.attributes or {}).items())] = (
                        value if value is not None else getattr(point, "sum", 0)
                    )
    return found


def _reader() -> InMemoryMetricReader:
    # The development database keeps every agent the suite ever made (thousands after a few
    # fault runs): more series than the SDK's default limit of 2,000 per gauge, past which it
    # folds them into one overflow series and the test's agent would not be seen.
    return InMemoryMetricReader(cardinality_limits={ObservableGauge: 1_000_000})


def _value(reader: InMemoryMetricReader, name: str, **attributes: str) -> float | None:
    return _points(reader, name).get(frozenset(attributes.items()))


def test_exporters_follow_the_otel_variables() -> None:
    assert exporter_names({}) == []
    assert exporter_names({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"}) == ["otlp"]
    assert exporter_names({"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://c:4318/v1/metrics"}) == ["otlp"]
    assert exporter_names({"OTEL_METRICS_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "x"}) == []
    assert exporter_names({"OTEL_METRICS_EXPORTER": "console,otlp"}) == ["console", "otlp"]
    assert exporter_names({"OTEL_SDK_DISABLED": "true", "OTEL_METRICS_EXPORTER": "otlp"}) == []


def test_otlp_protocol_picks_the_exporter() -> None:
    (grpc,) = readers_from_env({"OTEL_METRICS_EXPORTER": "otlp"})
    (http,) = readers_from_env(
        {"OTEL_METRICS_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
    )
    assert isinstance(grpc, PeriodicExportingMetricReader)
    assert isinstance(http, PeriodicExportingMetricReader)
    assert "grpc" in type(grpc._exporter).__module__
    assert "http" in type(http._exporter).__module__
    assert readers_from_env({"OTEL_METRICS_EXPORTER": "prometheus"}) == []
    for reader in (grpc, http):
        reader.shutdown()


async def test_without_otel_variables_nothing_is_installed(
    stack_settings: Settings, pool: AsyncConnectionPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in (
        "OTEL_METRICS_EXPORTER",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    ):
        monkeypatch.delenv(variable, raising=False)
    service = install_metrics(stack_settings, pool)
    assert not service.enabled
    await service.close()


async def test_effects_approvals_and_budget_from_postgres(
    aios_client: AiosClient, effect_server: EffectServer, pool: AsyncConnectionPool
) -> None:
    reader = _reader()
    gauges = AiosMetrics(MeterProvider(metric_readers=[reader]).get_meter("aios"))
    manifest = refund_like_manifest(effect_server.url)
    agent = manifest.name
    started = await aios_client.start_run(agent, LARGE, manifest=manifest)
    await wait_for_status(aios_client, started.run_id, RunStatus.WAITING_APPROVAL)

    await gauges.refresh(pool)
    assert _value(reader, "aios.effects", agent=agent, connector="http", state="succeeded") == 1  # charge
    assert _value(reader, "aios.approvals.waiting", agent=agent) == 1
    age = _value(reader, "aios.approvals.oldest_age", agent=agent)
    assert age is not None
    assert 0 <= age < 60
    assert (_value(reader, "aios.budget.tokens_today", agent=agent) or 0) > 0

    await aios_client.decide(started.run_id, "approve", approver="alice")
    assert (await aios_client.result(started.run_id)).status is RunStatus.COMPLETED
    await gauges.refresh(pool)
    assert _value(reader, "aios.effects", agent=agent, connector="http", state="succeeded") == 2
    assert _value(reader, "aios.approvals.waiting", agent=agent) == 0  # gone from Postgres, still reported
    assert _value(reader, "aios.approvals.oldest_age", agent=agent) == 0


async def test_breaker_state_of_running_workers(aios_client: AiosClient, pool: AsyncConnectionPool) -> None:
    reader = _reader()
    gauges = AiosMetrics(MeterProvider(metric_readers=[reader]).get_meter("aios"))
    await asyncio.sleep(0.5)  # the worker reports its breakers when it starts
    await gauges.refresh(pool)
    http = {
        dict(key)["worker"]: value
        for key, value in _points(reader, "aios.connector.breaker").items()
        if dict(key)["connector"] == "http"
    }
    assert http, "a running worker reports its http breaker"
    assert set(http.values()) <= {0, 1, 2}


async def test_temporal_runtime_metrics_reach_opentelemetry(stack_settings: Settings) -> None:
    reader = _reader()
    runtime, buffer = temporal_runtime()
    bridge = TemporalBridge(buffer, MeterProvider(metric_readers=[reader]).get_meter("aios"))
    client = await Client.connect(stack_settings.temporal_address, runtime=runtime)
    await client.count_workflows("WorkflowType = 'NoSuchWorkflow'")
    assert bridge.drain() > 0
    requests = _points(reader, "temporal_request")
    assert any(dict(key).get("operation") == "CountWorkflowExecutions" for key in requests)
    latency = reader.get_metrics_data()
    assert latency is not None
    assert any(
        metric.name == "temporal_request_latency" and metric.unit == "ms"
        for resource in latency.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    )


async def test_service_keeps_both_fresh_while_it_runs(
    stack_settings: Settings, pool: AsyncConnectionPool
) -> None:
    reader = _reader()
    provider = MeterProvider(metric_readers=[reader])
    runtime, buffer = temporal_runtime()
    meter = provider.get_meter("aios")
    service = MetricsService(
        ProcessMetrics(provider, AiosMetrics(meter), TemporalBridge(buffer, meter)), pool
    )
    service.start()
    client = await Client.connect(stack_settings.temporal_address, runtime=runtime)
    await client.count_workflows("WorkflowType = 'NoSuchWorkflow'")
    await asyncio.sleep(1.5)  # one drain tick after the call
    await service.close()
    assert _points(reader, "temporal_request")
    assert _points(reader, "aios.effects")  # the first tick read Postgres


INSTALLED_WORKER = """
import asyncio
from psycopg_pool import AsyncConnectionPool
from aios.observability.metrics import install_metrics
from aios.settings import load_settings
from aios.temporal.connection import connect

async def main() -> None:
    settings = load_settings()
    async with AsyncConnectionPool(settings.resolved_database_url, kwargs={"autocommit": True}) as pool:
        service = install_metrics(settings, pool)
        client = await connect(settings)  # after install: on the runtime whose metrics are bridged
        await client.count_workflows("WorkflowType = 'NoSuchWorkflow'")
        await asyncio.sleep(1.5)
        await service.close()

asyncio.run(main())
"""


async def test_install_metrics_exports_both_through_the_configured_exporter() -> None:
    # In a process of its own: installing replaces the process's default Temporal runtime.
    env = child_env(OTEL_METRICS_EXPORTER="console", OTEL_METRIC_EXPORT_INTERVAL="60000")
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", INSTALLED_WORKER],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert '"name": "temporal_request"' in result.stdout
    assert '"name": "aios.effects"' in result.stdout
    assert '"service.name": "aios-worker"' in result.stdout
