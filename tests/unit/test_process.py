import socket
import subprocess
from pathlib import Path

import pytest

from aios.errors import StackError
from aios.stack.process import ServiceFiles, ensure_port_free, spawn, terminate


def test_stale_pid_file_is_recognised_and_removed(tmp_path: Path) -> None:
    files = ServiceFiles("thing", tmp_path)
    files.pid_file.parent.mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    files.pid_file.write_text(f"{dead.pid}\n")
    assert files.read_pid() is None
    assert not files.pid_file.exists()


def test_garbage_pid_file_reads_as_not_running(tmp_path: Path) -> None:
    files = ServiceFiles("thing", tmp_path)
    files.pid_file.parent.mkdir(parents=True)
    files.pid_file.write_text("not a pid")
    assert files.read_pid() is None


def test_busy_port_gets_a_clear_message() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(StackError, match=f"port {port} .* already in use.*AIOS_SOME_PORT"):
            ensure_port_free(port, "a service", "AIOS_SOME_PORT")


def test_spawned_process_is_recorded_and_terminated(tmp_path: Path) -> None:
    files = ServiceFiles("sleeper", tmp_path)
    pid = spawn(files, ["sleep", "60"])
    assert files.read_pid() == pid
    terminate(pid, timeout=5)
    assert files.read_pid() is None
