"""OpenTelemetry metrics: Temporal's runtime metrics and aios's own, read from Postgres.

Configured by the standard OTEL_* variables, like the traces (aios/observability/telemetry.py):
OTEL_METRICS_EXPORTER names the exporters (otlp, console, none); without it, metrics go over
OTLP when OTEL_EXPORTER_OTLP_ENDPOINT (or the metrics-specific one) is set, and nowhere
otherwise: nothing is collected, no task runs. OTLP's protocol, endpoint, headers and the
export interval are the exporter's own OTEL_* variables.

Temporal's runtime (Rust core) metrics reach the same MeterProvider through a MetricBuffer
drained every second, rather than through the core's own OTLP exporter: one pipeline, so one
set of variables (protocol, headers, temporality) applies to both, and tests can read both
with an in-memory reader.

aios's own metrics are observable gauges over a snapshot that a task refreshes from
Postgres every few seconds. The collecting thread only reads the snapshot: it never waits on
the database or on the worker's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Counter, Histogram, Meter, Observation, _Gauge
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from temporalio.runtime import (
    BUFFERED_METRIC_KIND_COUNTER,
    BUFFERED_METRIC_KIND_GAUGE,
    BufferedMetric,
    BufferedMetricUpdate,
    MetricBuffer,
    MetricBufferDurationFormat,
    Runtime,
    TelemetryConfig,
)

from aios.ledger import budget, health
from aios.settings import Settings

log = logging.getLogger("aios.observability.metrics")

METER_NAME = "aios"
DRAIN_EVERY = 1.0  # seconds between drains of Temporal's metric buffer
REFRESH_EVERY_TICKS = 10  # Postgres is read every 10 drains
# Large, as the SDK asks: a full buffer drops updates. A busy worker makes a few thousand a second.
TEMPORAL_BUFFER_SIZE = 100_000
FLUSH_TIMEOUT_MILLIS = 5_000
OTLP_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
# Gauges want numbers; the order is how bad it is.
BREAKER_LEVELS = {"closed": 0, "half_open": 1, "open": 2}

EFFECTS_BY_STATE = """
SELECT coalesce(r.agent, '') AS agent, e.connector, e.state, count(*)
FROM aios_effects e LEFT JOIN aios_runs r ON r.run_id = e.run_id
GROUP BY 1, 2, 3
"""
APPROVALS_WAITING = """
SELECT agent, count(*), min(coalesce((state->'pending_approval'->>'since')::timestamptz, updated_at))
FROM aios_runs WHERE status = 'waiting_approval'
GROUP BY agent
"""
BUDGET_SPENT = """
SELECT agent, sum(tokens), sum(cost) FROM aios_budget_reservations WHERE day = %s GROUP BY agent
"""


# -- choosing exporters from the environment -----------------------------------------------


def exporter_names(env: Mapping[str, str]) -> list[str]:
    """The metric exporters the OTEL_* variables ask for; empty means no metrics at all."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    chosen = env.get("OTEL_METRICS_EXPORTER", "").strip().lower()
    if chosen:
        return [name.strip() for name in chosen.split(",") if name.strip() not in ("", "none")]
    return ["otlp"] if any(env.get(variable) for variable in OTLP_ENDPOINT_VARIABLES) else []


def _exporter(name: str, env: Mapping[str, str]) -> MetricExporter | None:
    if name == "console":
        return ConsoleMetricExporter()
    if name != "otlp":
        log.warning("OTEL_METRICS_EXPORTER=%s is not supported by aios (otlp, console, none)", name)
        return None
    protocol = (
        env.get("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc"
    )
    if protocol.startswith("http"):
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as Http

        return Http()
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as Grpc

    return Grpc()


def readers_from_env(env: Mapping[str, str]) -> list[MetricReader]:
    exporters = [_exporter(name, env) for name in exporter_names(env)]
    # Each reader takes its interval from OTEL_METRIC_EXPORT_INTERVAL (default 60 s).
    return [PeriodicExportingMetricReader(exporter) for exporter in exporters if exporter is not None]


# -- aios's own metrics --------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """What Postgres said at one moment, keyed by the metrics' attributes."""

    effects: dict[tuple[str, str, str], int] = field(default_factory=dict)  # agent, connector, state
    approvals_waiting: dict[str, int] = field(default_factory=dict)  # agent
    waiting_since: dict[str, datetime | None] = field(default_factory=dict)  # agent: the oldest
    tokens_today: dict[str, int] = field(default_factory=dict)
    cost_today: dict[str, float] = field(default_factory=dict)
    breakers: dict[tuple[str, str], str] = field(default_factory=dict)  # connector, worker

    def carried_over(self, previous: Snapshot) -> Snapshot:
        """Series seen before and gone now read 0: a gauge that stops reporting looks stuck."""
        return Snapshot(
            effects={**dict.fromkeys(previous.effects, 0), **self.effects},
            approvals_waiting={**dict.fromkeys(previous.approvals_waiting, 0), **self.approvals_waiting},
            waiting_since={**dict.fromkeys(previous.waiting_since), **self.waiting_since},
            tokens_today={**dict.fromkeys(previous.tokens_today, 0), **self.tokens_today},
            cost_today={**dict.fromkeys(previous.cost_today, 0.0), **self.cost_today},
            breakers=self.breakers,  # a worker that stopped reporting has no breakers any more
        )


async def read_snapshot(conn: AsyncConnection[Any]) -> Snapshot:
    effects = await _rows(conn, EFFECTS_BY_STATE)
    waiting = await _rows(conn, APPROVALS_WAITING)
    spent = await _rows(conn, BUDGET_SPENT, (budget.today(),))
    breakers = await health.recent(conn)
    return Snapshot(
        effects={(agent, connector, state): int(count) for agent, connector, state, count in effects},
        approvals_waiting={agent: int(count) for agent, count, _ in waiting},
        waiting_since={agent: since for agent, _, since in waiting},
        tokens_today={agent: int(tokens) for agent, tokens, _ in spent},
        cost_today={agent: float(cost) for agent, _, cost in spent},
        breakers={(row["connector"], row["worker_id"]): row["state"] for row in breakers},
    )


async def _rows(conn: AsyncConnection[Any], query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    cursor = await conn.execute(query, params)
    return list(await cursor.fetchall())


Callback = Callable[[CallbackOptions], Iterable[Observation]]


class AiosMetrics:
    """aios's gauges; `refresh` reads Postgres, the callbacks only read the last snapshot."""

    def __init__(self, meter: Meter) -> None:
        self._snapshot = Snapshot()
        gauges: list[tuple[str, str, str, Callback]] = [
            (
                "aios.effects",
                "{effect}",
                "effects in the ledger by agent, connector and state",
                self._effects,
            ),
            ("aios.approvals.waiting", "{run}", "runs waiting for an approval, by agent", self._waiting),
            ("aios.approvals.oldest_age", "s", "how long the oldest approval has waited", self._oldest),
            ("aios.budget.tokens_today", "{token}", "tokens spent today (UTC) by agent", self._tokens),
            ("aios.budget.cost_today", "USD", "model cost spent today (UTC) by agent", self._cost),
            (
                "aios.connector.breaker",
                "1",
                "circuit breaker per connector and worker: 0 closed, 1 half open, 2 open",
                self._breakers,
            ),
        ]
        for name, unit, description, callback in gauges:
            meter.create_observable_gauge(name, callbacks=[callback], unit=unit, description=description)

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def update(self, snapshot: Snapshot) -> None:
        # One reference swap: the collecting thread sees the old snapshot or the new, never half.
        self._snapshot = snapshot.carried_over(self._snapshot)

    async def refresh(self, pool: AsyncConnectionPool) -> None:
        async with pool.connection() as conn:
            self.update(await read_snapshot(conn))

    def _effects(self, _: CallbackOptions) -> Iterable[Observation]:
        for (agent, connector, state), count in self._snapshot.effects.items():
            yield Observation(count, {"agent": agent, "connector": connector, "state": state})

    def _waiting(self, _: CallbackOptions) -> Iterable[Observation]:
        for agent, count in self._snapshot.approvals_waiting.items():
            yield Observation(count, {"agent": agent})

    def _oldest(self, _: CallbackOptions) -> Iterable[Observation]:
        now = datetime.now(UTC)  # the age grows between refreshes, as it does in reality
        for agent, since in self._snapshot.waiting_since.items():
            age = (now - since).total_seconds() if since is not None else 0.0
            yield Observation(max(age, 0.0), {"agent": agent})

    def _tokens(self, _: CallbackOptions) -> Iterable[Observation]:
        for agent, tokens in self._snapshot.tokens_today.items():
            yield Observation(tokens, {"agent": agent})

    def _cost(self, _: CallbackOptions) -> Iterable[Observation]:
        for agent, cost in self._snapshot.cost_today.items():
            yield Observation(cost, {"agent": agent})

    def _breakers(self, _: CallbackOptions) -> Iterable[Observation]:
        for (connector, worker), state in self._snapshot.breakers.items():
            yield Observation(BREAKER_LEVELS.get(state, 2), {"connector": connector, "worker": worker})


# -- Temporal's runtime metrics ------------------------------------------------------------


Instrument = Counter | Histogram | _Gauge


class TemporalBridge:
    """Replays the updates Temporal's core buffered into OpenTelemetry instruments."""

    def __init__(self, buffer: MetricBuffer, meter: Meter) -> None:
        self._buffer = buffer
        self._meter = meter
        self._instruments: dict[str, Instrument] = {}

    def drain(self) -> int:
        updates = self._buffer.retrieve_updates()
        for update in updates:
            self._record(update)
        return len(updates)

    def _record(self, update: BufferedMetricUpdate) -> None:
        instrument = self._instrument(update.metric)
        attributes = dict(update.attributes)
        if isinstance(instrument, Counter):
            instrument.add(update.value, attributes)  # counters arrive as deltas
        elif isinstance(instrument, Histogram):
            instrument.record(update.value, attributes)
        else:
            instrument.set(update.value, attributes)

    def _instrument(self, metric: BufferedMetric) -> Instrument:
        known = self._instruments.get(metric.name)
        if known is not None:
            return known
        unit, description = metric.unit or "", metric.description or ""
        created: Instrument
        if metric.kind == BUFFERED_METRIC_KIND_COUNTER:
            created = self._meter.create_counter(metric.name, unit=unit, description=description)
        elif metric.kind == BUFFERED_METRIC_KIND_GAUGE:
            created = self._meter.create_gauge(metric.name, unit=unit, description=description)
        else:
            created = self._meter.create_histogram(metric.name, unit=unit, description=description)
        self._instruments[metric.name] = created
        return created


def temporal_runtime() -> tuple[Runtime, MetricBuffer]:
    """A Temporal runtime whose metrics go to a buffer for the bridge to drain."""
    # Milliseconds: the SDK's default histogram buckets (0, 5, 10, 25, ... 10000) are cut for
    # them; in seconds every latency would land in the first bucket.
    buffer = MetricBuffer(TEMPORAL_BUFFER_SIZE, duration_format=MetricBufferDurationFormat.MILLISECONDS)
    return Runtime(telemetry=TelemetryConfig(metrics=buffer)), buffer


# -- the worker's metrics ------------------------------------------------------------------


@dataclass(frozen=True)
class ProcessMetrics:
    """Set up once per process: the provider, aios's gauges, the bridge from Temporal."""

    provider: MeterProvider
    aios: AiosMetrics
    bridge: TemporalBridge


@functools.cache  # once per process: a second provider or Runtime would split the metrics
def _process_metrics(service_name: str, namespace: str) -> ProcessMetrics:
    resource = Resource.create({"service.name": service_name, "service.namespace": namespace})
    provider = MeterProvider(resource=resource, metric_readers=readers_from_env(os.environ))
    metrics.set_meter_provider(provider)
    meter = provider.get_meter(METER_NAME)
    runtime, buffer = temporal_runtime()
    # Clients connected from now on use this runtime: the worker must connect after this.
    Runtime.set_default(runtime, error_if_already_set=False)
    return ProcessMetrics(provider, AiosMetrics(meter), TemporalBridge(buffer, meter))


class MetricsService:
    """Keeps the metrics fresh while a worker runs: drains Temporal's buffer, reads Postgres."""

    def __init__(self, process: ProcessMetrics | None, pool: AsyncConnectionPool) -> None:
        self._process = process
        self._pool = pool
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return self._process is not None

    def start(self) -> None:
        if self._process is not None and self._task is None:
            self._task = asyncio.create_task(self._loop(self._process))

    async def _loop(self, process: ProcessMetrics) -> None:
        tick = 0
        while True:
            process.bridge.drain()
            if tick % REFRESH_EVERY_TICKS == 0:
                try:
                    await process.aios.refresh(self._pool)
                except Exception:  # metrics must never take the worker down
                    log.warning("could not read aios metrics from Postgres", exc_info=True)
            tick += 1
            await asyncio.sleep(DRAIN_EVERY)

    async def close(self) -> None:
        """Stop refreshing and export what is there; the provider stays for the process."""
        if self._task is None or self._process is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        self._process.bridge.drain()
        await asyncio.to_thread(self._process.provider.force_flush, FLUSH_TIMEOUT_MILLIS)


def install_metrics(
    settings: Settings, pool: AsyncConnectionPool, *, service_name: str = "aios-worker"
) -> MetricsService:
    """Start the worker's metrics, if the environment asks for any; call before connecting."""
    if not exporter_names(os.environ):
        return MetricsService(None, pool)
    name = os.environ.get("OTEL_SERVICE_NAME", service_name)
    service = MetricsService(_process_metrics(name, settings.temporal_namespace), pool)
    service.start()
    return service
