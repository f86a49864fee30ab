"""OpenTelemetry set-up, configured by the standard OTEL_* variables.

Spans are exported over OTLP only when OTEL_EXPORTER_OTLP_ENDPOINT (or the traces-specific
variable) is set, so a process with no collector configured pays nothing for export.
"""

from __future__ import annotations

import os

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

OTLP_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def configure_tracing(default_service_name: str) -> TracerProvider:
    """Install a tracer provider for this process (once) and return it."""
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current
    service_name = os.environ.get("OTEL_SERVICE_NAME", default_service_name)
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if any(os.environ.get(variable) for variable in OTLP_ENDPOINT_VARIABLES):
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return provider


def current_trace_id() -> str | None:
    """The active span's trace id as 32 hex digits, for audit rows; None outside a trace."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None
