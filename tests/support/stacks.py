"""Stacks a test starts for itself, on free ports and a fresh data directory of its own."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

from aios.settings import Settings
from aios.stack import cluster, temporal
from tests.support.env import child_env
from tests.support.ports import free_cluster_port, free_port


def own_stack_env(shared: Settings, name: str, profile: str, **overrides: str | None) -> dict[str, str]:
    """The environment of a stack of its own: `profile` dev (the CLI's dev server) or cluster
    (the real server on Postgres; the project's builds are linked in, not built again)."""
    data_dir = (shared.data_dir / "test-stacks" / f"{name}-{uuid.uuid4().hex[:8]}").resolve()
    (data_dir / "bin").mkdir(parents=True)
    if profile == "cluster":
        for build in cluster.BUILDS:
            (data_dir / "bin" / build).symlink_to(cluster.binary(shared, build).parent.resolve())
    binary = temporal.find_binary(shared)
    assert binary is not None, "the session stack fixture builds the Temporal CLI first"
    frontend = free_cluster_port() if profile == "cluster" else free_port()
    return child_env(
        TEMPORAL_CLI=str(binary.resolve()),
        AIOS_DATA_DIR=str(data_dir),
        AIOS_TEMPORAL_ADDRESS=f"127.0.0.1:{frontend}",
        AIOS_TEMPORAL_UI_PORT=str(free_port()),
        AIOS_POSTGRES_PORT=str(free_port()),
        AIOS_CODEC_PORT=str(free_port()),
        AIOS_APPROVALS_PORT=str(free_port()),
        AIOS_TEMPORAL_PROFILE=profile,
        AIOS_DATABASE_URL=None,
        **overrides,
    )


def data_dir(env: dict[str, str]) -> Path:
    return Path(env["AIOS_DATA_DIR"])


@contextlib.contextmanager
def running(env: dict[str, str]) -> Iterator[dict[str, str]]:
    """`aios dev up` on the stack of `env`; on the way out `aios dev down`, and its data goes."""
    aios = [sys.executable, "-m", "aios.cli", "dev"]
    up = subprocess.run([*aios, "up"], env=env, capture_output=True, text=True, timeout=900, check=False)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield env
    finally:
        subprocess.run([*aios, "down"], env=env, capture_output=True, check=False, timeout=300)
        shutil.rmtree(data_dir(env), ignore_errors=True)
