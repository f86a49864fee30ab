"""`aios worker` as a process: it polls, and stops cleanly on SIGTERM and SIGINT."""

import signal
import subprocess
import sys
import time

import pytest

from aios.settings import Settings
from tests.support.env import child_env


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_worker_shuts_down_gracefully(
    stack_settings: Settings, task_queue: str, stop_signal: signal.Signals
) -> None:
    worker = subprocess.Popen(
        [sys.executable, "-m", "aios.cli", "worker"],
        env=child_env(stack_settings, AIOS_TASK_QUEUE=task_queue),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert worker.stdout is not None
    deadline = time.monotonic() + 60
    seen = ""
    while "polling task queue" not in seen and time.monotonic() < deadline:
        line = worker.stdout.readline()
        assert line, f"worker exited early:\n{seen}"
        seen += line
    worker.send_signal(stop_signal)
    rest, _ = worker.communicate(timeout=30)
    assert worker.returncode == 0, seen + rest
    assert "shutting down" in rest
    assert "Traceback" not in rest
