"""Connecting to Temporal the one way every aios process does it.

The data converter (pydantic, the AES-GCM payload codec, failures with secrets masked, large
payloads kept in Postgres) and the OpenTelemetry tracing interceptor are always on, so a client
and a worker can never disagree about payloads or lose a trace. A worker built on this client
inherits its converter.
"""

from __future__ import annotations

import dataclasses

from temporalio.client import Client, TLSConfig
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter

from aios.settings import Settings
from aios.temporal.codec import codec_for
from aios.temporal.inbound import InboundPayloadConverter
from aios.temporal.payload_store import external_storage_for
from aios.temporal.redaction import failure_converter_class, redactor_for


def data_converter(settings: Settings) -> DataConverter:
    """Pydantic payloads, encrypted unless AIOS_PAYLOAD_ENCRYPTION=false, large ones offloaded.

    The SDK runs the codec before external storage (and the reverse when reading), so what
    aios/temporal/payload_store.py writes to Postgres is the ciphertext, never the plain payload.
    """
    codec = codec_for(settings)
    return dataclasses.replace(
        pydantic_data_converter,
        # Un-hinted decoding (every `*inputs` handler) never fails: aios/temporal/inbound.py.
        payload_converter_class=InboundPayloadConverter,
        payload_codec=codec,
        failure_converter_class=failure_converter_class(redactor_for(settings), encrypt=codec is not None),
        external_storage=external_storage_for(settings),
    )


def tls_config(settings: Settings) -> TLSConfig | bool:
    if settings.temporal_tls_cert is None and settings.temporal_tls_ca is None:
        # Temporal Cloud with an API key needs TLS even without client certificates.
        return settings.temporal_api_key is not None
    return TLSConfig(
        server_root_ca_cert=settings.temporal_tls_ca.read_bytes() if settings.temporal_tls_ca else None,
        client_cert=settings.temporal_tls_cert.read_bytes() if settings.temporal_tls_cert else None,
        client_private_key=settings.temporal_tls_key.read_bytes() if settings.temporal_tls_key else None,
    )


def _api_key(settings: Settings) -> str | None:
    return settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None


async def connect(settings: Settings) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings),
        interceptors=[TracingInterceptor()],
        tls=tls_config(settings),
        api_key=_api_key(settings),
    )


async def connect_admin(settings: Settings, namespace: str | None = None) -> Client:
    """A plain client for the stack's own calls (namespaces, search attributes): no payloads,
    the same address, TLS and key as every other process."""
    return await Client.connect(
        settings.temporal_address,
        namespace=namespace or settings.temporal_namespace,
        tls=tls_config(settings),
        api_key=_api_key(settings),
    )
