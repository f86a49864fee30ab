"""The real Temporal server on Postgres, locally: the step between the dev server and a cluster.

`aios dev up --profile cluster` (or AIOS_TEMPORAL_PROFILE=cluster) runs the server that
production runs, built from the same release as the CLI's dev server (v1.29.1), instead of
`temporal server start-dev`: persistence and visibility in two databases of the project's own
Postgres (`temporal`, `temporal_visibility`), their schemas set up and upgraded by Temporal's
SQL tool, 4 history shards, the frontend, history, matching and worker services in one process,
and the Web UI served by Temporal's ui-server with the codec endpoint. The binaries are built
once with Go into `<data_dir>/bin/<name>/` (the server and the ui-server are both `server`).

Ports follow Temporal's own layout from the frontend's port P (7233): history P+1, matching
P+2, worker P+6, HTTP P+10, and each service's membership port 300 below its gRPC port.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import psycopg
import yaml
from google.protobuf.duration_pb2 import Duration
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    RegisterNamespaceRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError

from aios.errors import StackError
from aios.settings import Settings, split_host_port
from aios.stack import postgres
from aios.stack.process import ServiceFiles, ensure_port_free, port_open, spawn, terminate, wait_until
from aios.stack.temporal import (
    DYNAMIC_CONFIG,
    SEARCH_ATTRIBUTES,
    Progress,
    add_missing_search_attributes,
    go_install,
)
from aios.temporal import codec_server
from aios.temporal.connection import connect_admin

SERVER_VERSION = "v1.29.1"  # the release the CLI's dev server embeds (aios/stack/temporal.py)
UI_SERVER_VERSION = "v2.42.1"
BUILDS = {
    "temporal-server": f"go.temporal.io/server/cmd/server@{SERVER_VERSION}",
    "temporal-sql-tool": f"go.temporal.io/server/cmd/tools/sql@{SERVER_VERSION}",
    "temporal-ui": f"github.com/temporalio/ui-server/v2/cmd/server@{UI_SERVER_VERSION}",
}
DATABASES = {"temporal": "temporal", "temporal_visibility": "visibility"}
NAMESPACE_RETENTION_DAYS = 3
SERVER = "temporal-server"
UI = "temporal-ui"


MEMBERSHIP_BELOW = 300
SMALLINT_MAX = 32767


@dataclass(frozen=True)
class Ports:
    OFFSETS: ClassVar[dict[str, int]] = {"frontend": 0, "history": 1, "matching": 2, "worker": 6}

    frontend: int

    @property
    def services(self) -> dict[str, int]:
        return {name: self.frontend + offset for name, offset in self.OFFSETS.items()}

    @property
    def http(self) -> int:
        return self.frontend + 10


def binary(settings: Settings, name: str) -> Path:
    return (
        settings.data_dir / "bin" / name / "server"
        if name != "temporal-sql-tool"
        else (settings.data_dir / "bin" / name / "sql")
    )


def build(settings: Settings, progress: Progress) -> None:
    """Build what is missing, once (minutes the first time; Go's module cache makes it shorter)."""
    for name, module in BUILDS.items():
        target = binary(settings, name)
        if not target.exists():
            go_install(_go(f"{name} ({module})"), module, target, progress, what=name)


def _go(needed_for: str) -> Path:
    go = shutil.which("go")
    if go is None:
        raise StackError(f"Go is needed for {needed_for}: install Go 1.24 or newer (https://go.dev/dl/)")
    return Path(go)


def schema_dir() -> Path:
    """The SQL schemas shipped in the server's module, from Go's module cache."""
    go = _go("the server's SQL schemas (in Go's module cache)")
    found = subprocess.run([str(go), "env", "GOMODCACHE"], capture_output=True, text=True, check=False)
    module = Path(found.stdout.strip()) / f"go.temporal.io/server@{SERVER_VERSION}"
    return module / "schema" / "postgresql" / "v12"


def prepare_databases(settings: Settings) -> None:
    """Create both databases if missing, set up their schema once, and upgrade it (idempotent)."""
    tool = binary(settings, "temporal-sql-tool")
    schemas = schema_dir()
    for database, schema in DATABASES.items():
        common = [
            str(tool),
            "--plugin",
            "postgres12",
            "--ep",
            "127.0.0.1",
            "--port",
            str(settings.postgres_port),
            "--user",
            postgres.ROLE,
            "--db",
            database,
        ]
        if not _database_exists(settings, database):
            _tool([*common, "create-database"], f"creating database {database}")
        if not _has_schema(settings, database):
            _tool([*common, "setup-schema", "-v", "0.0"], f"setting up the {database} schema")
        versioned = schemas / schema / "versioned"
        _tool([*common, "update-schema", "-d", str(versioned)], f"upgrading the {database} schema")


def _admin(settings: Settings, database: str) -> psycopg.Connection[Any]:
    url = f"postgresql://{postgres.ROLE}@127.0.0.1:{settings.postgres_port}/{database}"
    return psycopg.connect(url, autocommit=True, connect_timeout=5)


def _database_exists(settings: Settings, database: str) -> bool:
    with _admin(settings, "postgres") as conn:
        return (
            conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone() is not None
        )


def _has_schema(settings: Settings, database: str) -> bool:
    with _admin(settings, database) as conn:
        found = conn.execute("SELECT to_regclass('schema_version')").fetchone()
        return found is not None and found[0] is not None


def _tool(argv: list[str], what: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300)
    if done.returncode != 0:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise StackError(f"{what} failed (temporal-sql-tool): {last[0]}")


def write_config(settings: Settings) -> Path:
    """The server's configuration (YAML), regenerated at every start from the settings."""
    ports = Ports(settings.temporal_port)
    directory = settings.data_dir / "temporal-cluster"
    directory.mkdir(parents=True, exist_ok=True)
    dynamic = directory / "dynamicconfig.yaml"
    dynamic.write_text(yaml.safe_dump({key: [{"value": value}] for key, value in DYNAMIC_CONFIG.items()}))
    store = {
        "pluginName": "postgres12",
        "connectAddr": f"127.0.0.1:{settings.postgres_port}",
        "connectProtocol": "tcp",
        "user": postgres.ROLE,
        "password": "",
        "maxConns": 20,
        "maxIdleConns": 20,
        "maxConnLifetime": "1h",
    }
    config = {
        "log": {"stdout": True, "level": "warn"},
        "persistence": {
            "numHistoryShards": settings.temporal_history_shards,
            "defaultStore": "default",
            "visibilityStore": "visibility",
            "datastores": {
                "default": {"sql": {**store, "databaseName": "temporal"}},
                "visibility": {"sql": {**store, "databaseName": "temporal_visibility"}},
            },
        },
        "global": {
            "membership": {"maxJoinDuration": "30s", "broadcastAddress": "127.0.0.1"},
            **_frontend_tls(settings),
        },
        "services": {name: {"rpc": _rpc(name, port, ports)} for name, port in ports.services.items()},
        "clusterMetadata": {
            "enableGlobalNamespace": False,
            "failoverVersionIncrement": 10,
            "masterClusterName": "active",
            "currentClusterName": "active",
            "clusterInformation": {
                "active": {
                    "enabled": True,
                    "initialFailoverVersion": 1,
                    "rpcName": "frontend",
                    "rpcAddress": f"127.0.0.1:{ports.frontend}",
                    "httpAddress": f"127.0.0.1:{ports.http}",
                }
            },
        },
        "dcRedirectionPolicy": {"policy": "noop"},
        "archival": {"history": {"state": "disabled"}, "visibility": {"state": "disabled"}},
        "namespaceDefaults": {
            "archival": {"history": {"state": "disabled"}, "visibility": {"state": "disabled"}}
        },
        "dynamicConfigClient": {"filepath": str(dynamic.resolve()), "pollInterval": "10s"},
    }
    path = directory / "development.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _frontend_tls(settings: Settings) -> dict[str, Any]:
    """TLS on the frontend when AIOS_TEMPORAL_SERVER_TLS_CERT is set; mutual when the clients
    carry a certificate (AIOS_TEMPORAL_TLS_CERT), which the server's own system worker presents
    too. The services behind the frontend talk in the clear on loopback."""
    if settings.temporal_server_tls_cert is None or settings.temporal_server_tls_key is None:
        return {}
    ca = [str(settings.temporal_tls_ca.resolve())] if settings.temporal_tls_ca else []
    host, _ = split_host_port(settings.temporal_address)
    system_worker: dict[str, Any] = {"client": {"serverName": host, "rootCaFiles": ca, "forceTLS": True}}
    server: dict[str, Any] = {
        "certFile": str(settings.temporal_server_tls_cert.resolve()),
        "keyFile": str(settings.temporal_server_tls_key.resolve()),
    }
    cert, key = settings.temporal_tls_cert, settings.temporal_tls_key
    if cert is not None and key is not None:
        server |= {"requireClientAuth": True, "clientCaFiles": ca}
        system_worker |= {"certFile": str(cert.resolve()), "keyFile": str(key.resolve())}
    return {"tls": {"frontend": {"server": server}, "systemWorker": system_worker}}


def _rpc(service: str, port: int, ports: Ports) -> dict[str, Any]:
    rpc: dict[str, Any] = {
        "grpcPort": port,
        "membershipPort": port - MEMBERSHIP_BELOW,
        "bindOnIP": "127.0.0.1",
    }
    if service == "frontend":
        rpc["httpPort"] = ports.http
    return rpc


def write_ui_config(settings: Settings) -> Path:
    directory = settings.data_dir / "temporal-ui"
    directory.mkdir(parents=True, exist_ok=True)
    config = {
        "temporalGrpcAddress": settings.temporal_address,
        "host": "127.0.0.1",
        "port": settings.temporal_ui_port,
        "enableUi": True,
        "defaultNamespace": settings.temporal_namespace,
        "codec": {"endpoint": codec_server.url(settings)},
    }
    if settings.temporal_server_tls_cert is not None:
        config["tls"] = _ui_tls(settings)
    path = directory / "development.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _ui_tls(settings: Settings) -> dict[str, Any]:
    files = {
        "caFile": settings.temporal_tls_ca,
        "certFile": settings.temporal_tls_cert,
        "keyFile": settings.temporal_tls_key,
    }
    host, _ = split_host_port(settings.temporal_address)
    tls: dict[str, Any] = {"enableHostVerification": True, "serverName": host}
    return tls | {key: str(path.resolve()) for key, path in files.items() if path is not None}


def server_files(settings: Settings) -> ServiceFiles:
    return ServiceFiles(SERVER, settings.data_dir)


def ui_files(settings: Settings) -> ServiceFiles:
    return ServiceFiles(UI, settings.data_dir)


def start(settings: Settings, progress: Progress) -> str:
    """Build, prepare the databases, start the server and the Web UI; a one-line description."""
    server = server_files(settings)
    running = server.read_pid()
    if running is not None and port_open(settings.temporal_port):
        return f"already running (pid {running}, Temporal {SERVER_VERSION} on Postgres)"
    highest = SMALLINT_MAX + MEMBERSHIP_BELOW - max(Ports.OFFSETS.values())
    if settings.temporal_port > highest:
        raise StackError(
            f"the cluster profile needs a Temporal port of at most {highest} (AIOS_TEMPORAL_ADDRESS is "
            f"{settings.temporal_address}): the services' membership ports, {MEMBERSHIP_BELOW} below "
            "theirs, are kept in a smallint column"
        )
    build(settings, progress)
    for port, what in [
        (p, f"the Temporal {name} service") for name, p in Ports(settings.temporal_port).services.items()
    ]:
        ensure_port_free(port, what, "AIOS_TEMPORAL_ADDRESS")
    if ui_files(settings).read_pid() is None:  # a running ui-server of ours outlives a server restart
        ensure_port_free(settings.temporal_ui_port, "the Temporal Web UI", "AIOS_TEMPORAL_UI_PORT")
    progress("preparing the temporal and temporal_visibility databases")
    prepare_databases(settings)
    config = write_config(settings)
    pid = spawn(server, _argv(settings, SERVER, config, "--allow-no-auth"))
    wait_until(
        lambda: port_open(settings.temporal_port),
        what="the Temporal server",
        timeout=120,
        alive=lambda: server.read_pid() is not None,
        log_file=server.log_file,
    )
    try:
        asyncio.run(_namespace_ready(settings))
    except StackError as problem:
        raise StackError(f"{problem}; its log: {server.log_file}") from problem
    _start_ui(settings)
    shards = settings.temporal_history_shards
    return f"started (pid {pid}, Temporal {SERVER_VERSION} on Postgres, {shards} history shards)"


def _argv(settings: Settings, name: str, config: Path, *flags: str) -> list[str]:
    """Both servers read `<root>/<config dir>/<env>.yaml`: the generated file's directory as root."""
    root = str(config.parent.resolve())
    return [
        str(binary(settings, name).resolve()),
        "--root",
        root,
        "--config",
        ".",
        "--env",
        config.stem,
        *flags,
        "start",
    ]


def _start_ui(settings: Settings) -> None:
    ui = ui_files(settings)
    if ui.read_pid() is not None:
        return
    config = write_ui_config(settings)
    spawn(ui, _argv(settings, UI, config))
    wait_until(
        lambda: port_open(settings.temporal_ui_port),
        what="the Temporal Web UI (ui-server)",
        timeout=60,
        alive=lambda: ui.read_pid() is not None,
        log_file=ui.log_file,
    )


async def _namespace_ready(settings: Settings) -> None:
    """Register the namespace once, then aios's search attributes (a new namespace takes a few
    seconds to reach every service, so both are retried for a while)."""
    client = await _client(settings)
    namespace = settings.temporal_namespace
    try:
        await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=namespace))
    except RPCError:
        retention = Duration(seconds=NAMESPACE_RETENTION_DAYS * 86400)
        await client.workflow_service.register_namespace(
            RegisterNamespaceRequest(namespace=namespace, workflow_execution_retention_period=retention)
        )
    for _ in range(120):
        try:
            await add_missing_search_attributes(settings)
            await _query_by_search_attributes(settings)
            return
        except RPCError:
            await asyncio.sleep(0.5)
    raise StackError(f"the namespace {namespace!r} did not take aios's search attributes within a minute")


async def _query_by_search_attributes(settings: Settings) -> None:
    """Raise RPCError until the frontend maps aios's attributes: the namespace registry learns a
    new attribute on its next refresh (seconds), and a run started before that is refused."""
    client = await connect_admin(settings)
    probe = " AND ".join(f"{name} = 'probe'" for name in SEARCH_ATTRIBUTES)
    await client.count_workflows(probe)


async def _client(settings: Settings) -> Client:
    for _ in range(60):
        try:
            return await connect_admin(settings, namespace="temporal-system")
        except RuntimeError:
            await asyncio.sleep(1)
    raise StackError(f"the Temporal server at {settings.temporal_address} did not answer within a minute")


def stop(settings: Settings) -> str:
    stopped = []
    for files in (ui_files(settings), server_files(settings)):
        pid = files.read_pid()
        if pid is not None:
            terminate(pid)
            files.pid_file.unlink(missing_ok=True)
            stopped.append(files.name)
    return f"stopped {' and '.join(stopped)}" if stopped else "not running"
