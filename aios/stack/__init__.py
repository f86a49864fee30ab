"""The local stack behind `aios dev up | down | status | logs`.

`up` is idempotent: it starts only what is not yet running, waits until each service
answers, and applies migrations. `down` stops only the processes `up` started. A service on
a configured port that another data directory's stack started is never adopted (stack.owner).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from aios.errors import StackError
from aios.settings import Settings
from aios.stack import cluster, postgres, qdrant, temporal
from aios.stack.owner import Foreign, describe, foreign_services
from aios.stack.process import terminate
from aios.store.migrate import migrate, redact_url
from aios.temporal import codec_server
from aios.temporal.codec import key_file, load_keyring

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ServiceState:
    name: str
    location: str
    state: str
    problem: str | None = None  # one line for the operator, shown under the table


def refuse_foreign(settings: Settings) -> None:
    """Raise StackError when another data directory's stack holds a port: one line per owner."""
    foreign = foreign_services(settings)
    if foreign:
        raise StackError("\n".join(describe(foreign)))


def up(settings: Settings, progress: Progress) -> list[ServiceState]:
    refuse_foreign(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # The codec server first: the Web UI the dev server serves points at it. The cluster
    # profile's server keeps its state in Postgres, so Postgres comes before it.
    if settings.temporal_profile == "cluster":
        states = [_up_codec_server(settings), _up_postgres(settings), _up_temporal(settings, progress)]
    else:
        states = [_up_codec_server(settings), _up_temporal(settings, progress), _up_postgres(settings)]
    applied = asyncio.run(migrate(settings.resolved_database_url))
    states.append(ServiceState("migrations", "aios_migrations", f"{len(applied)} applied, schema current"))
    states.append(ServiceState("qdrant", qdrant.describe(settings), qdrant.prepare(settings)))
    return states


def _up_temporal(settings: Settings, progress: Progress) -> ServiceState:
    if not settings.temporal_is_local:
        return ServiceState("temporal", settings.temporal_address, "external (not started here)")
    if settings.temporal_profile == "cluster":
        state = cluster.start(settings, progress)
    else:
        state = temporal.start(settings, progress)
    return ServiceState("temporal", f"{settings.temporal_ui_url} (gRPC {settings.temporal_address})", state)


def _up_codec_server(settings: Settings) -> ServiceState:
    location = codec_server.url(settings)
    if not settings.payload_encryption:
        return ServiceState("codec server", location, "not started (AIOS_PAYLOAD_ENCRYPTION=false)")
    # Made (or checked) here, so a bad key file stops `up` with its message, not a worker later.
    keyring = load_keyring(settings)
    state = codec_server.start(settings)
    return ServiceState("codec server", f"{location} (key {keyring.current})", state)


def _up_postgres(settings: Settings) -> ServiceState:
    location = redact_url(settings.resolved_database_url)
    if not settings.postgres_is_local:
        return ServiceState("postgres", location, "external (not started here)")
    return ServiceState("postgres", location, postgres.start(settings))


def down(settings: Settings) -> list[ServiceState]:
    states = []
    pid = temporal.files(settings).read_pid()
    if pid is not None:
        terminate(pid)
        temporal.files(settings).pid_file.unlink(missing_ok=True)
    states.append(ServiceState("temporal", settings.temporal_address, "stopped" if pid else "not running"))
    states.append(ServiceState("temporal cluster", settings.temporal_address, cluster.stop(settings)))
    states.append(ServiceState("codec server", codec_server.url(settings), codec_server.stop(settings)))
    if settings.postgres_is_local:
        states.append(
            ServiceState("postgres", redact_url(settings.resolved_database_url), postgres.stop(settings))
        )
    return states


def status(settings: Settings) -> list[ServiceState]:
    foreign = foreign_services(settings)
    return [
        _unless_foreign(
            ServiceState(
                "temporal",
                f"{settings.temporal_ui_url} (gRPC {settings.temporal_address})",
                "healthy" if temporal.healthy(settings) else "down",
            ),
            [service for service in foreign if service.key in {"temporal", "temporal web ui"}],
        ),
        _unless_foreign(
            ServiceState(
                "postgres",
                redact_url(settings.resolved_database_url),
                asyncio.run(_postgres_health(settings)),
            ),
            [service for service in foreign if service.key == "postgres"],
        ),
        ServiceState("qdrant", qdrant.describe(settings), qdrant.health(settings)),
        _unless_foreign(
            _codec_server_status(settings), [service for service in foreign if service.key == "codec server"]
        ),
    ]


def _unless_foreign(state: ServiceState, foreign: list[Foreign]) -> ServiceState:
    """A port another data directory's stack serves is that stack's, whatever its health says."""
    if not foreign:
        return state
    problem = "\n".join(describe(foreign))
    return ServiceState(state.name, state.location, foreign[0].state, problem=problem)


def _codec_server_status(settings: Settings) -> ServiceState:
    location = codec_server.url(settings)
    if not settings.payload_encryption:
        return ServiceState("codec server", location, "off (AIOS_PAYLOAD_ENCRYPTION=false)")
    keys = "AIOS_PAYLOAD_KEYS" if settings.payload_keys is not None else key_file(settings)
    state = "healthy" if codec_server.healthy(settings) else "down"
    return ServiceState("codec server", f"{location} (keys in {keys})", state)


async def _postgres_health(settings: Settings) -> str:
    import psycopg

    try:
        async with await psycopg.AsyncConnection.connect(
            settings.resolved_database_url, connect_timeout=3
        ) as conn:
            cursor = await conn.execute("SELECT max(version) FROM aios_migrations")
            row = await cursor.fetchone()
    except psycopg.errors.UndefinedTable:
        return "healthy (not migrated: run `aios db migrate`)"
    except psycopg.Error as exc:
        return f"down ({type(exc).__name__})"
    return f"healthy (schema version {row[0] if row else 0})"


def log_files(settings: Settings) -> dict[str, str]:
    return {
        "temporal": str(temporal.files(settings).log_file),
        "postgres": str(postgres.files(settings).log_file),
        "codec-server": str(codec_server.files(settings).log_file),
    }
