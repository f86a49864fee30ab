"""Whose stack serves a configured port: the one started from this data directory, or another's.

Two checkouts on one machine each run a stack from their own data directory. A service that
answers on a port this checkout is configured for but was started from another data directory
is reported in one line naming the variable that moves this one, and `aios dev up` never adopts
it: a test would otherwise talk to one stack and scan the files of another.

The owner is read from the listening process itself (Linux /proc): the Temporal dev server's
`--db-filename`, the postmaster's `-D`, the codec server's AIOS_DATA_DIR and working directory.
Where /proc cannot tell (another user's process, no /proc), the pid file in this data directory
decides. Only the local stack's services are checked: a Postgres named by AIOS_DATABASE_URL or
a remote Temporal is configured on purpose.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aios.settings import Settings
from aios.stack import cluster, postgres, temporal
from aios.stack.process import (
    command_line,
    environment_variable,
    listening_pids,
    port_open,
    working_directory,
)
from aios.temporal import codec_server

DEFAULT_DATA_DIR = Path(".aios")  # Settings.data_dir's default, for a codec server started without one


@dataclass(frozen=True)
class LocalService:
    """One port of the local stack, and how to tell which data directory its listener came from."""

    key: str  # the name `aios dev status` shows
    port: int
    variable: str  # the assignment that moves this checkout's service elsewhere
    our_pid: int | None  # from this data directory's pid file
    started_from: Callable[[int], Path | None]


@dataclass(frozen=True)
class Foreign:
    """A configured port served by a process that this data directory's stack did not start."""

    key: str
    port: int
    variable: str
    data_dir: Path | None  # where the listener's stack lives, when it is a stack at all
    pid: int | None

    @property
    def state(self) -> str:
        """The short form for a status table."""
        return f"foreign (started from {self.data_dir})" if self.data_dir else "foreign (port in use)"


def describe(foreign: list[Foreign]) -> list[str]:
    """One line per foreign owner: which of our ports it holds and which variables move us away."""
    owners: dict[tuple[Path | None, int | None], list[Foreign]] = {}
    for service in foreign:
        owners.setdefault((service.data_dir, None if service.data_dir else service.pid), []).append(service)
    return [_line(services) for services in owners.values()]


def _line(services: list[Foreign]) -> str:
    first = services[0]
    if len(services) == 1:
        where = f"127.0.0.1:{first.port} is"
    else:
        where = f"ports {_listed([str(s.port) for s in services])} on 127.0.0.1 are"
    if first.data_dir is not None:
        who = f"served by a stack started from {first.data_dir}"
    elif first.pid is not None:
        who = f"already in use by another process (pid {first.pid}: {_short_command(first.pid)})"
    else:
        who = "already in use by a process not started from this data directory"
    return f"{where} {who}: stop it, or move this one with {_listed([s.variable for s in services])}"


def _listed(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def local_services(settings: Settings) -> list[LocalService]:
    services = []
    if settings.temporal_is_local:
        pid = temporal.files(settings).read_pid() or cluster.server_files(settings).read_pid()
        address = "AIOS_TEMPORAL_ADDRESS=127.0.0.1:<port>"
        services.append(LocalService("temporal", settings.temporal_port, address, pid, _temporal_dir))
        ui = "AIOS_TEMPORAL_UI_PORT=<port>"
        ui_pid = temporal.files(settings).read_pid() or cluster.ui_files(settings).read_pid()
        services.append(LocalService("temporal web ui", settings.temporal_ui_port, ui, ui_pid, _temporal_dir))
    if settings.postgres_is_local:
        pid = postgres.running_pid(settings)
        services.append(
            LocalService("postgres", settings.postgres_port, "AIOS_POSTGRES_PORT=<port>", pid, _postgres_dir)
        )
    if settings.payload_encryption:
        pid = codec_server.files(settings).read_pid()
        services.append(
            LocalService("codec server", settings.codec_port, "AIOS_CODEC_PORT=<port>", pid, _codec_dir)
        )
    return services


def foreign_services(settings: Settings) -> list[Foreign]:
    """Every configured local port that answers but is not served from `settings.data_dir`."""
    ours = settings.data_dir.resolve()
    found = []
    for service in local_services(settings):
        if not port_open(service.port):
            continue
        holders = listening_pids(service.port)
        if service.our_pid is not None and (not holders or service.our_pid in holders):
            continue  # our pid file's process holds it (or /proc cannot say otherwise)
        pid = min(holders) if holders else None
        data_dir = service.started_from(pid) if pid is not None else None
        if data_dir is not None and data_dir.resolve() == ours:
            continue  # ours, though its pid file is gone
        found.append(Foreign(service.key, service.port, service.variable, data_dir, pid))
    return found


def _temporal_dir(pid: int) -> Path | None:
    """`--db-filename <data_dir>/temporal/temporal.db`, as `temporal.start` passes it; or, for the
    cluster profile's server and ui-server, `--root <data_dir>/temporal-cluster` (`temporal-ui`)."""
    argv = command_line(pid)
    database = _flag_value(argv, "--db-filename")
    if database:
        return _grandparent(_absolute(pid, database))
    root = _flag_value(argv, "--root")
    return _absolute(pid, root).parent if root else None


def _postgres_dir(pid: int) -> Path | None:
    """`postgres -D <data_dir>/postgres/data`, as `pg_ctl start` runs the postmaster."""
    cluster = _flag_value(command_line(pid), "-D")
    return _grandparent(_absolute(pid, cluster)) if cluster else None


def _codec_dir(pid: int) -> Path | None:
    """The codec server reads its data directory from AIOS_DATA_DIR (default `.aios`) in its cwd."""
    if "aios.codec_server" not in command_line(pid):
        return None
    configured = environment_variable(pid, "AIOS_DATA_DIR")
    return _absolute(pid, configured or str(DEFAULT_DATA_DIR))


def _flag_value(argv: list[str], flag: str) -> str | None:
    for position, argument in enumerate(argv[:-1]):
        if argument == flag:
            return argv[position + 1]
    return None


def _absolute(pid: int, path: str) -> Path:
    candidate = Path(path)
    if candidate.is_absolute():
        return candidate
    cwd = working_directory(pid)
    return cwd / candidate if cwd is not None else candidate


def _grandparent(path: Path) -> Path | None:
    return path.parents[1] if len(path.parents) > 1 else None


def _short_command(pid: int, limit: int = 60) -> str:
    command = " ".join(command_line(pid)) or "unknown command"
    return command if len(command) <= limit else command[: limit - 1] + "…"
