"""Background service processes: pid files, port checks, waiting for readiness.

Each service `up` starts is recorded in a pid file under `<data_dir>/run/`, so
`down` stops only what `up` started and a stale pid file is recognised as such.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from aios.errors import StackError

TCP_LISTEN = "0A"  # the `st` column of /proc/net/tcp for a listening socket


@dataclass(frozen=True)
class ServiceFiles:
    """Where one service keeps its pid file and log."""

    name: str
    data_dir: Path

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "run" / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "logs" / f"{self.name}.log"

    def read_pid(self) -> int | None:
        """The pid of the running process `up` started, or None; removes a stale pid file."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if pid_alive(pid):
            return pid
        self.pid_file.unlink(missing_ok=True)
        return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _not_zombie(pid)


def _not_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def listening_pids(port: int) -> set[int]:
    """The processes holding a socket that listens on `port` (any address), read from Linux /proc.

    Empty when nothing listens, off Linux, or when the holder's fds are not readable by this user.
    """
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for row in Path(table).read_text().splitlines()[1:]:
                fields = row.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                if local_port == port and fields[3] == TCP_LISTEN:
                    inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return set()
    return {pid for pid in _all_pids() if _holds_any(pid, inodes)}


def _all_pids() -> list[int]:
    with contextlib.suppress(OSError):
        return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]
    return []


def _holds_any(pid: int, sockets: set[str]) -> bool:
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(fd) in sockets:
                    return True
    return False


def command_line(pid: int) -> list[str]:
    """The argv of a running process ([] when it cannot be read)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def working_directory(pid: int) -> Path | None:
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None


def environment_variable(pid: int, name: str) -> str | None:
    """One variable of a running process's start-up environment (None when unset or unreadable)."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    prefix = f"{name}=".encode()
    for entry in raw.split(b"\0"):
        if entry.startswith(prefix):
            return entry[len(prefix) :].decode(errors="replace")
    return None


def ensure_port_free(port: int, service: str, variable: str) -> None:
    if port_open(port):
        raise StackError(
            f"port {port} on 127.0.0.1 is already in use, so {service} cannot start there. "
            f"Stop whatever listens on it (see `ss -ltnp 'sport = :{port}'`) or choose "
            f"another port with {variable}."
        )


def spawn(files: ServiceFiles, argv: Sequence[str], *, env: dict[str, str] | None = None) -> int:
    """Start a detached process whose output goes to the service's log; record its pid."""
    files.log_file.parent.mkdir(parents=True, exist_ok=True)
    files.pid_file.parent.mkdir(parents=True, exist_ok=True)
    with files.log_file.open("ab") as log:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # survives the CLI that started it; not killed by Ctrl-C
            env=env,
        )
    files.pid_file.write_text(f"{process.pid}\n")
    return process.pid


def wait_until(
    ready: Callable[[], bool],
    *,
    what: str,
    timeout: float,
    alive: Callable[[], bool] | None = None,
    log_file: Path | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        if alive is not None and not alive():
            raise StackError(f"{what} exited during start-up; {log_hint(log_file)}")
        time.sleep(0.2)
    raise StackError(f"{what} did not become ready within {timeout:.0f}s; {log_hint(log_file)}")


def log_hint(log_file: Path | None) -> str:
    if log_file is None or not log_file.exists():
        return "no log was written"
    tail = log_file.read_text(errors="replace").splitlines()[-15:]
    return f"last lines of {log_file}:\n" + "\n".join(tail)


def terminate(pid: int, *, timeout: float = 15.0) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left after `timeout` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
