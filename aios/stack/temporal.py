"""The Temporal CLI dev server: finding or building the binary, starting it, checking it.

The binary comes from, in order: TEMPORAL_CLI, `temporal` on PATH, `<data_dir>/bin/temporal`
built with `go install` when Go is present (docs/ARCHITECTURE.md, decision 1).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest

from aios.errors import StackError
from aios.settings import Settings
from aios.stack.process import ServiceFiles, ensure_port_free, port_open, spawn, wait_until
from aios.temporal import codec_server
from aios.temporal.connection import connect_admin
from aios.temporal.search_attributes import ALL_KEYS

TEMPORAL_CLI_MODULE = "github.com/temporalio/cli/cmd/temporal"
# v1.5.1 is the newest tag whose go.mod has no `replace` directive, so `go install` accepts it.
TEMPORAL_CLI_VERSION = "v1.5.1"
SERVICE = "temporal"

# Registered at start so workflows can upsert them and the Web UI can filter on them.
SEARCH_ATTRIBUTES: dict[str, str] = {key.name: "Keyword" for key in ALL_KEYS}

# Measured with bench/conductor_overhead.py (see docs/BENCHMARKS.md): the dev server has one
# history shard whose transfer-queue reader polls at most 20 times a second by default, which
# held every workflow and activity task ~40 ms before matching. At 1000 the wait is ~1 ms and
# idle CPU is unchanged; visibility has the same limit. Eager activity execution lets a worker
# that completes a workflow task start the activities it scheduled on its own queue at once.
# The cluster profile's server gets the same (aios/stack/cluster.py).
DYNAMIC_CONFIG: dict[str, int | bool] = {
    "history.transferProcessorMaxPollRPS": 1000,
    "history.visibilityProcessorMaxPollRPS": 1000,
    "system.enableActivityEagerExecution": True,
}

Progress = Callable[[str], None]


def built_binary_path(settings: Settings) -> Path:
    return settings.data_dir / "bin" / "temporal"


def find_binary(settings: Settings) -> Path | None:
    if settings.temporal_cli is not None:
        if not os.access(settings.temporal_cli, os.X_OK):
            raise StackError(
                f"TEMPORAL_CLI is set to {settings.temporal_cli}, which is not an executable file; "
                "point it at the Temporal CLI binary or unset it."
            )
        return settings.temporal_cli
    on_path = shutil.which("temporal")
    if on_path is not None:
        return Path(on_path)
    built = built_binary_path(settings)
    return built if os.access(built, os.X_OK) else None


def ensure_binary(settings: Settings, progress: Progress) -> Path:
    """Return the Temporal CLI, building it with Go once if it is nowhere to be found."""
    found = find_binary(settings)
    if found is not None:
        return found
    go = shutil.which("go")
    if go is None:
        raise StackError(
            "the Temporal CLI was not found (TEMPORAL_CLI, `temporal` on PATH, "
            f"{built_binary_path(settings)}) and Go is not installed to build it. Install Go "
            "(https://go.dev/dl/) or the Temporal CLI, or set TEMPORAL_CLI to its path."
        )
    package = f"{TEMPORAL_CLI_MODULE}@{TEMPORAL_CLI_VERSION}"
    return go_install(Path(go), package, built_binary_path(settings), progress, what="the Temporal CLI")


def go_install(go: Path, package: str, target: Path, progress: Progress, *, what: str) -> Path:
    """`go install PACKAGE` into TARGET's directory, with a line every 15 s while it builds."""
    target.parent.mkdir(parents=True, exist_ok=True)
    progress(f"building {what} ({package}) into {target.parent}; this takes minutes, once")
    # The machine's own GOPROXY/GOSUMDB apply: checksum verification stays on.
    env = {**os.environ, "GOBIN": str(target.parent.resolve())}
    process = subprocess.Popen(
        [str(go), "install", package],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    ticker = _Ticker(progress, f"still building {what}")
    ticker.start()
    try:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line.rstrip())
        returncode = process.wait()
    finally:
        ticker.stop()
    if returncode != 0 or not target.exists():
        raise StackError(f"`go install {package}` failed (exit {returncode}):\n" + "\n".join(output[-20:]))
    progress(f"built {target}")
    return target


class _Ticker:
    """Prints a line every 15 s so a long build never looks hung."""

    def __init__(self, progress: Progress, message: str, interval: float = 15.0) -> None:
        self._progress = progress
        self._message = message
        self._interval = interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stopped.wait(self._interval):
            self._progress(f"{self._message} ({time.monotonic() - started:.0f}s)")


def files(settings: Settings) -> ServiceFiles:
    return ServiceFiles(SERVICE, settings.data_dir)


def database_file(settings: Settings) -> Path:
    return settings.data_dir / "temporal" / "temporal.db"


def start(settings: Settings, progress: Progress) -> str:
    """Start the dev server unless it already runs; return a one-line description."""
    service = files(settings)
    if healthy(settings):
        pid = service.read_pid()
        added = asyncio.run(add_missing_search_attributes(settings))
        if pid is None:
            return f"already running (not started by aios){added}"
        return f"already running (pid {pid}){_missing_codec_note(pid)}{added}"
    binary = ensure_binary(settings, progress)
    ensure_port_free(settings.temporal_port, "the Temporal dev server", "AIOS_TEMPORAL_ADDRESS")
    ensure_port_free(settings.temporal_ui_port, "the Temporal Web UI", "AIOS_TEMPORAL_UI_PORT")
    database_file(settings).parent.mkdir(parents=True, exist_ok=True)
    pid = spawn(service, _server_argv(binary, settings))
    wait_until(
        lambda: healthy(settings) and port_open(settings.temporal_ui_port),
        what="the Temporal dev server",
        timeout=90,
        alive=lambda: service.read_pid() is not None,
        log_file=service.log_file,
    )
    return f"started (pid {pid})"


async def add_missing_search_attributes(settings: Settings) -> str:
    """Register the attributes a server started by an older aios lacks; say which, if any."""
    client = await connect_admin(settings)
    namespace = settings.temporal_namespace
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    missing = [name for name in SEARCH_ATTRIBUTES if name not in listed.custom_attributes]
    if not missing:
        return ""
    keyword = IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(namespace=namespace, search_attributes=dict.fromkeys(missing, keyword))
    )
    return f"; registered search attributes {', '.join(missing)}"


def _server_argv(binary: Path, settings: Settings) -> list[str]:
    argv = [
        str(binary),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(settings.temporal_port),
        "--ui-ip",
        "127.0.0.1",
        "--ui-port",
        str(settings.temporal_ui_port),
        "--db-filename",
        str(database_file(settings).resolve()),
        "--namespace",
        settings.temporal_namespace,
        "--log-level",
        "warn",
        # The Web UI asks this server (from the operator's browser) to decrypt payloads.
        "--ui-codec-endpoint",
        codec_server.url(settings),
    ]
    for key, value in DYNAMIC_CONFIG.items():  # the CLI reads each value as JSON
        argv += ["--dynamic-config-value", f"{key}={json.dumps(value)}"]
    for name, kind in SEARCH_ATTRIBUTES.items():
        argv += ["--search-attribute", f"{name}={kind}"]
    return argv


def _missing_codec_note(pid: int) -> str:
    """A server started before the codec server existed shows encrypted payloads in its UI."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return ""  # not Linux: nothing to check cheaply
    if b"--ui-codec-endpoint" in argv:
        return ""
    return "; its Web UI has no codec endpoint: `aios dev down && aios dev up` to see payloads decrypted"


def cli_connection_flags(settings: Settings) -> list[str]:
    """The `temporal` CLI's flags for the server the settings name, TLS files included."""
    flags = ["--address", settings.temporal_address]
    for flag, path in (
        ("--tls-ca-path", settings.temporal_tls_ca),
        ("--tls-cert-path", settings.temporal_tls_cert),
        ("--tls-key-path", settings.temporal_tls_key),
    ):
        if path is not None:
            flags += [flag, str(path)]
    return flags


def healthy(settings: Settings) -> bool:
    """The frontend answers gRPC health checks (via the CLI, so no client library is needed)."""
    if not port_open(settings.temporal_port):
        return False
    binary = find_binary(settings)
    if binary is None:
        return True  # a server we did not start; the open port is all we can check here
    result = subprocess.run(
        [str(binary), "operator", "cluster", "health", *cli_connection_flags(settings)],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    return result.returncode == 0 and "SERVING" in result.stdout
