"""The project-local PostgreSQL where a checkout really lives: under a deep path, with a bad config.

A CI checkout sits deep enough that the server's Unix socket path passes the kernel's 107 bytes,
and PostgreSQL then refuses to start at all; this happened to the cluster suite in CI.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from aios.errors import StackError
from aios.settings import Settings, load_settings
from aios.stack import postgres
from tests.support.ports import free_port


@pytest.fixture
def deep_postgres() -> Iterator[Settings]:
    """A local PostgreSQL of its own, under a data directory too deep for its socket; stopped after."""
    # Under the project, not /tmp/pytest-of-root (mode 700): under root the local Postgres
    # runs as the `postgres` user, which must reach its cluster directory.
    base = (load_settings().data_dir / "test-stacks" / f"deep-{uuid.uuid4().hex[:8]}").resolve()
    deep = base / ("d" * 60) / ("e" * 40)
    deep.mkdir(parents=True)
    settings = Settings(data_dir=deep, postgres_port=free_port(), database_url=None)
    yield settings
    postgres.stop(settings)
    shutil.rmtree(base, ignore_errors=True)


def test_a_checkout_too_deep_for_a_socket_still_gets_its_postgres(deep_postgres: Settings) -> None:
    assert len(str(postgres.socket_dir(deep_postgres))) > postgres.MAX_SOCKET_PATH
    assert postgres.start(deep_postgres).startswith("started")
    with psycopg.connect(deep_postgres.resolved_database_url, connect_timeout=5) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("aios",)


def test_a_server_that_will_not_start_says_why_in_the_one_error(deep_postgres: Settings) -> None:
    postgres.start(deep_postgres)
    postgres.stop(deep_postgres)
    conf = postgres.cluster_dir(deep_postgres) / "postgresql.conf"
    conf.write_text(conf.read_text() + "\nnot_a_setting_at_all = 1\n")
    with pytest.raises(StackError) as refused:
        postgres.start(deep_postgres)
    assert "not_a_setting_at_all" in str(refused.value)
