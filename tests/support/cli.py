"""The `aios` command as a test runs it: a real subprocess with the suite's settings."""

from __future__ import annotations

import subprocess
import sys

from aios.settings import Settings
from tests.support.env import child_env

AIOS = [sys.executable, "-m", "aios.cli"]


def run_aios(
    *args: str, settings: Settings | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`aios ARGS`: with `env` as given, else the suite's settings (wide, so lines do not wrap)."""
    environment = env if env is not None else child_env(settings, COLUMNS="250")
    return subprocess.run(
        [*AIOS, *args], capture_output=True, text=True, timeout=120, env=environment, check=False
    )
