"""Fixtures for the conductor's integration tests: a worker on a fresh queue, an effect server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from psycopg_pool import AsyncConnectionPool
from pydantic import SecretStr
from temporalio.client import Client

from aios.client import AiosClient
from aios.settings import Settings
from aios.store.migrate import migrate
from tests.support.effect_server import EffectServer
from tests.support.fake_openai import FAKE_OPENAI_KEY, FakeOpenAI
from tests.support.stripe_mock import stripe_mock_fixture  # noqa: F401  (shared fixture)
from tests.support.workers import client_with_worker


@pytest.fixture
def effect_server() -> Iterator[EffectServer]:
    server = EffectServer().start()
    yield server
    server.stop()


@pytest.fixture
async def aios_client(
    stack_settings: Settings, temporal_client: Client, task_queue: str
) -> AsyncIterator[AiosClient]:
    """A client whose runs go to a worker running in this test, on this test's own queue."""
    settings = stack_settings.model_copy(update={"task_queue": task_queue})
    async with client_with_worker(settings, temporal_client) as client:
        yield client


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """The loopback OpenAI-compatible API, asking for FAKE_OPENAI_KEY."""
    server = FakeOpenAI(api_key=FAKE_OPENAI_KEY).start()
    yield server
    server.stop()


@pytest.fixture
async def openai_client(
    stack_settings: Settings, temporal_client: Client, task_queue: str, fake_openai: FakeOpenAI
) -> AsyncIterator[AiosClient]:
    """Like `aios_client`, with the worker's `openai` model pointed at the fake."""
    settings = stack_settings.model_copy(
        update={
            "task_queue": task_queue,
            "model_base_url": fake_openai.url,
            "model_api_key": SecretStr(FAKE_OPENAI_KEY),
        }
    )
    async with client_with_worker(settings, temporal_client) as client:
        yield client


@pytest.fixture
async def pool(scratch_database: str) -> AsyncIterator[AsyncConnectionPool]:
    """A connection pool on a freshly migrated scratch database (memory tests write freely)."""
    await migrate(scratch_database)
    async with AsyncConnectionPool(
        scratch_database, min_size=1, max_size=4, kwargs={"autocommit": True}
    ) as opened:
        yield opened
