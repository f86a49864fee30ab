"""Worker versions: the build id follows the code; `aios deploy` refuses what it cannot do."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from aios.deploy.build_id import code_build_id
from aios.deploy.versions import Deployments
from aios.errors import DeployRefused
from tests.support.cli import run_aios
from tests.support.env import child_env


def test_the_build_id_changes_with_the_code_and_only_with_it(tmp_path: Path, monkeypatch: Any) -> None:
    package = tmp_path / "agentcode"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "flow.py").write_text("STEPS = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    first = code_build_id(("agentcode",))
    assert code_build_id(("agentcode",)) == first
    (package / "flow.py").write_text("STEPS = 2\n")
    changed = code_build_id(("agentcode",))
    assert changed != first and len(changed) == 12
    (package / "notes.txt").write_text("not code")
    assert code_build_id(("agentcode",)) == changed
    sys.modules.pop("agentcode", None)


async def test_a_ramp_outside_0_to_100_is_refused_before_asking_the_server() -> None:
    deployments = Deployments(client=None, name="aios")  # type: ignore[arg-type]
    with pytest.raises(DeployRefused, match="from 0 to 100, got 150"):
        await deployments.ramp(150)


def test_deploy_without_a_deployment_name_says_how_to_turn_versioning_on() -> None:
    done = run_aios("deploy", "status", env=child_env(AIOS_WORKER_DEPLOYMENT=None))
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: worker versioning is off: set AIOS_WORKER_DEPLOYMENT=<name> for the workers and for "
        "this command"
    )
