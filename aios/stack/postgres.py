"""A project-local PostgreSQL cluster under the data directory, made with initdb/pg_ctl.

Used only when no AIOS_DATABASE_URL is configured. PostgreSQL refuses to run as root,
so under root the cluster belongs to the system's `postgres` user and every server
command runs through `runuser`.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
from pathlib import Path

import psycopg

from aios.errors import StackError
from aios.settings import Settings
from aios.stack.process import ServiceFiles, ensure_port_free, log_hint, port_open, wait_until

SERVICE = "postgres"
DATABASE = "aios"
ROLE = "aios"
SERVER_USER_WHEN_ROOT = "postgres"
# sockaddr_un holds 108 bytes with the final NUL; PostgreSQL refuses to start on a longer path.
MAX_SOCKET_PATH = 107


def cluster_dir(settings: Settings) -> Path:
    return (settings.data_dir / "postgres" / "data").resolve()


def socket_dir(settings: Settings) -> Path:
    return (settings.data_dir / "postgres" / "socket").resolve()


def socket_directories(settings: Settings) -> str:
    """The server's socket directory, or none when the data directory sits too deep for one.

    aios itself only dials TCP on loopback; the socket is for a person's `psql -h`. A clone
    under a long path (a CI checkout) would otherwise stop PostgreSQL from starting at all.
    None is an empty value, quoted for the shell that pg_ctl starts the server through.
    """
    socket = socket_dir(settings) / f".s.PGSQL.{settings.postgres_port}"
    return str(socket_dir(settings)) if len(str(socket)) <= MAX_SOCKET_PATH else "''"


def files(settings: Settings) -> ServiceFiles:
    return ServiceFiles(SERVICE, settings.data_dir)


def find_bindir() -> Path:
    """Directory of initdb/pg_ctl/postgres: PATH first, then Debian's versioned directories."""
    initdb = shutil.which("initdb")
    if initdb is not None:
        return Path(os.path.realpath(initdb)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if candidates:
        return Path(candidates[0]).parent
    raise StackError(
        "PostgreSQL server binaries (initdb, pg_ctl) were not found. Run `make setup` "
        "(it installs Debian's `postgresql` package), install PostgreSQL yourself, or point "
        "AIOS_DATABASE_URL at an existing server."
    )


def _as_server_user(argv: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", SERVER_USER_WHEN_ROOT, "--", *argv]
    return argv


def _run(argv: list[str], what: str) -> str:
    result = subprocess.run(_as_server_user(argv), capture_output=True, text=True, check=False, timeout=120)
    if result.returncode != 0:
        raise StackError(f"{what} failed (exit {result.returncode}):\n{result.stderr.strip()}")
    return result.stdout


def _prepare_dirs(settings: Settings) -> None:
    for path in (
        cluster_dir(settings).parent,
        socket_dir(settings),
        files(settings).log_file.parent,
    ):
        path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        _check_reachable_by_server_user(cluster_dir(settings).parent)
        server_user = pwd.getpwnam(SERVER_USER_WHEN_ROOT)
        for path in (cluster_dir(settings).parent, socket_dir(settings)):
            os.chown(path, server_user.pw_uid, server_user.pw_gid)
        log = files(settings).log_file
        log.touch()
        os.chown(log, server_user.pw_uid, server_user.pw_gid)


def _check_reachable_by_server_user(path: Path) -> None:
    for ancestor in path.parents:
        if not os.stat(ancestor).st_mode & 0o001:
            raise StackError(
                f"the local PostgreSQL runs as the `{SERVER_USER_WHEN_ROOT}` user, which cannot "
                f"enter {ancestor} (mode {oct(os.stat(ancestor).st_mode & 0o777)}). Choose an "
                f"AIOS_DATA_DIR that other users can traverse, or `chmod o+x {ancestor}`."
            )


def _initdb(settings: Settings, bindir: Path) -> None:
    # Trust authentication on loopback only: this cluster is a developer's local store.
    _run(
        [
            str(bindir / "initdb"),
            "--pgdata",
            str(cluster_dir(settings)),
            "--username",
            ROLE,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--no-instructions",
        ],
        "initdb",
    )


def running_pid(settings: Settings) -> int | None:
    """The postmaster pid from the cluster's own pid file, if that process is alive."""
    pid_file = cluster_dir(settings) / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().splitlines()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def start(settings: Settings) -> str:
    pid = running_pid(settings)
    if pid is not None and port_open(settings.postgres_port):
        return f"already running (pid {pid})"
    if _answers(settings):
        return "already running (not started by aios)"
    bindir = find_bindir()
    _prepare_dirs(settings)
    if not (cluster_dir(settings) / "PG_VERSION").exists():
        _initdb(settings, bindir)
    ensure_port_free(settings.postgres_port, "PostgreSQL", "AIOS_POSTGRES_PORT")
    options = (
        f"-c listen_addresses=127.0.0.1 -p {settings.postgres_port} "
        f"-c unix_socket_directories={socket_directories(settings)} -c max_connections=200"
    )
    _start_server(settings, bindir, options)
    wait_until(
        lambda: port_open(settings.postgres_port),
        what="PostgreSQL",
        timeout=30,
        log_file=files(settings).log_file,
    )
    _create_database(settings, bindir)
    return f"started (pid {running_pid(settings)})"


def _start_server(settings: Settings, bindir: Path, options: str) -> None:
    try:
        _run(
            [
                str(bindir / "pg_ctl"),
                "start",
                "--pgdata",
                str(cluster_dir(settings)),
                "--log",
                str(files(settings).log_file.resolve()),
                "--options",
                options,
                "--wait",
                "--timeout",
                "60",
            ],
            "pg_ctl start",
        )
    except StackError as exc:
        # pg_ctl only says "Examine the log output": show it, so the cause is in the one error.
        raise StackError(f"{exc}\n{log_hint(files(settings).log_file)}") from exc


def _create_database(settings: Settings, bindir: Path) -> None:
    exists = _run(
        [
            str(bindir / "psql") if (bindir / "psql").exists() else "psql",
            "--host",
            "127.0.0.1",
            "--port",
            str(settings.postgres_port),
            "--username",
            ROLE,
            "--dbname",
            "postgres",
            "--tuples-only",
            "--no-align",
            "--command",
            f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'",
        ],
        "checking for the aios database",
    )
    if exists.strip() != "1":
        _run(
            [
                str(bindir / "createdb"),
                "--host",
                "127.0.0.1",
                "--port",
                str(settings.postgres_port),
                "--username",
                ROLE,
                DATABASE,
            ],
            "createdb",
        )


def _answers(settings: Settings) -> bool:
    """A server on our port that accepts our URL is reused, whoever started it."""
    if not port_open(settings.postgres_port):
        return False
    try:
        with psycopg.connect(settings.resolved_database_url, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def stop(settings: Settings) -> str:
    if running_pid(settings) is None:
        return "not running"
    _run(
        [
            str(find_bindir() / "pg_ctl"),
            "stop",
            "--pgdata",
            str(cluster_dir(settings)),
            "--mode",
            "fast",
            "--wait",
        ],
        "pg_ctl stop",
    )
    return "stopped"
