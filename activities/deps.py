"""What activities need from the process that hosts them, opened once per worker."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import httpx
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client

from aios.errors import EventInvalid
from aios.events.bus import EventBus, new_event
from aios.governance.subjects import SubjectVault
from aios.memory.factory import WorkerMemory, open_memory
from aios.memory.holder import MemoryHolder
from aios.memory.service import MemoryService
from aios.settings import Settings
from connectors.actions.base import ActionConnector
from connectors.actions.email import EmailConnector, SmtpConfig
from connectors.actions.events import EventsConnector
from connectors.actions.http import HttpActionConnector
from connectors.actions.noop import NoopConnector
from connectors.actions.payments import PaymentsConnector
from connectors.actions.unconfigured import UnconfiguredConnector
from connectors.errors import ClientError, ServerError
from connectors.model import ModelProvider, OfflineModel, OpenAICompatibleModel

HTTP_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


@runtime_checkable
class Closeable(Protocol):
    async def aclose(self) -> None: ...


@dataclass
class ActivityDeps:
    settings: Settings
    pool: AsyncConnectionPool
    http: httpx.AsyncClient
    connectors: dict[str, ActionConnector] = field(default_factory=dict)
    models: dict[str, ModelProvider] = field(default_factory=dict)
    memory: MemoryService | None = None
    memory_unavailable: str = ""
    # The memory task queue, and this worker's part in holding an embedded store (workers/memory.py).
    memory_queue: str | None = None
    memory_holder: MemoryHolder | None = None
    # Seals what runs record about their subjects; None: built from `settings` when first used.
    subject_vault: SubjectVault | None = None
    # Starts the runs triggers admit (activities/admission.py); set by the worker once connected.
    temporal: Client | None = None

    async def publish_event(
        self, event_id: str, topic: str, data: dict[str, Any], source: str
    ) -> dict[str, Any]:
        """The events connector's way out: the same bus as `aios events send` (aios/events/bus.py)."""
        if self.temporal is None:
            raise ServerError("this worker is not connected to Temporal yet; the event is retried")
        try:
            event = new_event(event_id, topic, data, source)
        except EventInvalid as invalid:
            raise ClientError(str(invalid)) from invalid
        published = await EventBus(self.temporal, self.settings, self.pool.connection).publish(event)
        deliveries = [delivery.model_dump(mode="json") for delivery in published.deliveries]
        return {"event_id": event_id, "topic": topic, "new": published.new, "deliveries": deliveries}

    @property
    def subjects(self) -> SubjectVault:
        if self.subject_vault is None:
            self.subject_vault = SubjectVault.for_settings(self.settings)
        return self.subject_vault


async def open_deps(settings: Settings, *, memory: bool = True, elect: bool = False) -> ActivityDeps:
    """The pool, connectors and models; long-term memory too unless `memory` is False (an
    embedded store serves one process, so a second set of deps in a worker's process must
    leave it to the worker). `elect`: a worker, which competes to hold an embedded store and
    serves its memory queue while it does (aios/memory/holder.py); others only open it if free."""
    # Autocommit: a ledger intent must be durable before the connector is called.
    pool = AsyncConnectionPool(
        settings.resolved_database_url,
        min_size=1,
        max_size=10,
        open=False,
        name="aios",
        kwargs={"autocommit": True},
    )
    await pool.open(wait=True, timeout=30)
    http = httpx.AsyncClient(timeout=HTTP_TIMEOUT)
    connectors = build_connectors(settings, http)
    models = build_models(settings)
    # Opened before the worker polls: building the vector index holds the GIL for a while.
    opened = (
        await open_memory(settings, pool, elect=elect)
        if memory
        else WorkerMemory(unavailable="not opened here")
    )
    deps = ActivityDeps(
        settings=settings,
        pool=pool,
        http=http,
        connectors=connectors,
        models=models,
        memory=opened.service,
        memory_unavailable=opened.unavailable,
        memory_queue=opened.queue,
        memory_holder=opened.holder,
        subject_vault=SubjectVault.for_settings(settings),
    )
    connectors["events"] = EventsConnector(deps.publish_event)
    return deps


def build_connectors(settings: Settings, http: httpx.AsyncClient) -> dict[str, ActionConnector]:
    """Every action connector; one whose settings are missing fails when called, not at start-up."""
    return {
        "noop": NoopConnector(),
        "http": HttpActionConnector(http),
        "payments": payments_connector(settings),
        "email": email_connector(settings),
    }


def build_models(settings: Settings) -> dict[str, ModelProvider]:
    """The offline model always; `openai` only when its URL is set (else a run using it fails);
    each of AIOS_MODEL_PROVIDERS by its name."""
    models: dict[str, ModelProvider] = {"offline": OfflineModel()}
    if settings.model_base_url is not None:
        api_key = settings.model_api_key.get_secret_value() if settings.model_api_key else None
        models["openai"] = OpenAICompatibleModel(
            base_url=settings.model_base_url,
            api_key=api_key,
            timeout_seconds=settings.model_timeout_seconds,
        )
    for name, endpoint in settings.model_providers.items():
        models[name] = OpenAICompatibleModel(
            base_url=endpoint.base_url,
            api_key=endpoint.api_key.get_secret_value() if endpoint.api_key else None,
            timeout_seconds=endpoint.timeout_seconds,
        )
    return models


def payments_connector(settings: Settings) -> ActionConnector:
    api_key = settings.resolved_stripe_api_key
    if api_key is None:
        return UnconfiguredConnector(
            "payments",
            missing=["AIOS_STRIPE_API_KEY"],
            hint="or AIOS_STRIPE_BASE_URL=http://127.0.0.1:<port> for a local stripe-mock",
        )
    return PaymentsConnector(
        api_key=api_key.get_secret_value(), base_url=settings.stripe_base_url, timeout=HTTP_TIMEOUT
    )


def email_connector(settings: Settings) -> ActionConnector:
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    required = {"AIOS_SMTP_HOST": settings.smtp_host, "AIOS_SMTP_FROM": settings.smtp_from}
    missing = [variable for variable, value in required.items() if not value]
    if settings.smtp_username and not password:
        missing.append("AIOS_SMTP_PASSWORD")
    if missing or settings.smtp_host is None or settings.smtp_from is None:
        return UnconfiguredConnector("email", missing=missing)
    config = SmtpConfig(
        host=settings.smtp_host,
        port=settings.smtp_port,
        sender=settings.smtp_from,
        username=settings.smtp_username,
        password=password,
        starttls=settings.smtp_starttls,
    )
    return EmailConnector(config)


async def close_deps(deps: ActivityDeps) -> None:
    for closeable in [*deps.connectors.values(), *deps.models.values()]:
        if isinstance(closeable, Closeable):
            await closeable.aclose()
    await deps.http.aclose()
    if deps.memory_holder is not None:
        await deps.memory_holder.give_back("the worker stopped")
    if deps.memory is not None:
        await deps.memory.close()
    await deps.pool.close()
