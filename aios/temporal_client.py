"""Connecting to Temporal the one way every aios process does it.

The pydantic data converter and the OpenTelemetry tracing interceptor are always on,
so a client and a worker can never disagree about payloads or lose a trace.
"""

from __future__ import annotations

from temporalio.client import Client, TLSConfig
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.contrib.pydantic import pydantic_data_converter

from aios.settings import Settings


def _tls_config(settings: Settings) -> TLSConfig | bool:
    if settings.temporal_tls_cert is None and settings.temporal_tls_ca is None:
        # Temporal Cloud with an API key needs TLS even without client certificates.
        return settings.temporal_api_key is not None
    return TLSConfig(
        server_root_ca_cert=settings.temporal_tls_ca.read_bytes() if settings.temporal_tls_ca else None,
        client_cert=settings.temporal_tls_cert.read_bytes() if settings.temporal_tls_cert else None,
        client_private_key=settings.temporal_tls_key.read_bytes() if settings.temporal_tls_key else None,
    )


async def connect(settings: Settings) -> Client:
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        interceptors=[TracingInterceptor()],
        tls=_tls_config(settings),
        api_key=api_key,
    )
