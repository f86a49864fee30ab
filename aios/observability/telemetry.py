"""OpenTelemetry set-up, configured by the standard OTEL_* variables.

Spans go over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT (or the traces-specific variable) is
set. Otherwise, on a development machine, they go to a JSON-lines file under the data
directory, which `aios trace RUN` prints as a tree: no trace backend needs to be installed.
HTTP calls made with httpx are traced by the well-kept httpx instrumentation.
"""

from __future__ import annotations

import os
from pathlib import Path

from opentelemetry import trace
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from aios.observability.tracefile import JsonLinesSpanExporter
from aios.temporal.redaction import RedactingSpanExporter

OTLP_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
TRACER_NAME = "aios"


def configure_tracing(default_service_name: str, *, trace_file: Path | None = None) -> TracerProvider:
    """Install a tracer provider for this process (once) and return it."""
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current
    service_name = os.environ.get("OTEL_SERVICE_NAME", default_service_name)
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if any(os.environ.get(variable) for variable in OTLP_ENDPOINT_VARIABLES):
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(RedactingSpanExporter(OTLPSpanExporter())))
    elif trace_file is not None:
        provider.add_span_processor(
            BatchSpanProcessor(RedactingSpanExporter(JsonLinesSpanExporter(trace_file)))
        )
    trace.set_tracer_provider(provider)
    HTTPXClientInstrumentor().instrument()
    return provider


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


def current_trace_id() -> str | None:
    """The active span's trace id as 32 hex digits, for audit rows; None outside a trace."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None
