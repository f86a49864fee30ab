"""Behaviour checks through the `aios` CLI on the real stack: the refund desk passes its checks;
a deliberately broken version (no approval above an amount) fails them, the canary refuses it,
and an override starts it with who and why in the audit trail; a malformed checks file is one line."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from aios.client import AiosClient
from aios.governance import audit
from aios.governance.subjects import SubjectVault
from aios.ledger import runs
from tests.support.cli import run_aios
from tests.support.env import child_env

pytestmark = pytest.mark.integration

AGENTS = Path(__file__).parents[2] / "agents"


def agents_dir(tmp_path: Path) -> tuple[Path, str]:
    """A copy of the refund desk and its checks under a name of its own (rollouts are per agent)."""
    name = f"refund-checks-{uuid.uuid4().hex[:6]}"
    manifest = yaml.safe_load((AGENTS / "refund-desk.yaml").read_text())
    checks = yaml.safe_load((AGENTS / "refund-desk.checks.yaml").read_text())
    manifest["name"], checks["agent"] = name, name
    (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(manifest))
    (tmp_path / f"{name}.checks.yaml").write_text(yaml.safe_dump(checks))
    broken = {
        **manifest,
        "policy": {k: v for k, v in manifest["policy"].items() if k != "approval_amount_over"},
    }
    (tmp_path / "candidate").mkdir()
    (tmp_path / "candidate" / f"{name}.yaml").write_text(yaml.safe_dump(broken))
    return tmp_path, name


def broken_file(directory: Path, name: str) -> str:
    return str(directory / "candidate" / f"{name}.yaml")


async def rollout_version(client: AiosClient, agent: str) -> str | None:
    async with client.connection() as conn:
        found = await runs.get_rollout(conn, agent)
    return found[0].version if found else None


def aios(client: AiosClient, directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = child_env(
        client.settings,
        COLUMNS="250",
        AIOS_TASK_QUEUE=client.settings.task_queue,
        AIOS_AGENTS_DIR=str(directory),
    )
    return run_aios(*args, env=env)


async def test_the_refund_desk_passes_its_checks_and_a_broken_version_fails_them(
    aios_client: AiosClient, tmp_path: Path
) -> None:
    directory, name = agents_dir(tmp_path)
    passed = await asyncio.to_thread(aios, aios_client, directory, "agents", "test", name, "--json")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    rows = json.loads(passed.stdout)["rows"]
    assert rows and all(row["passed"] for row in rows)
    assert {row["check"] for row in rows} == {
        "small refund goes through",
        "large refund needs a person",
        "an unsure model asks first",
    }

    failed = await asyncio.to_thread(
        aios, aios_client, directory, "agents", "test", name, "--manifest", broken_file(directory, name)
    )
    assert failed.returncode == 1, failed.stdout + failed.stderr
    [line] = failed.stderr.strip().splitlines()
    assert "1 of 3 checks failed (large refund needs a person)" in line
    [row] = [r for r in failed.stdout.splitlines() if "approval required" in r and "large refund" in r]
    assert "FAIL" in row and "not_required" in row


async def test_the_canary_refuses_a_failing_version_unless_a_person_overrides_with_a_reason(
    aios_client: AiosClient, tmp_path: Path
) -> None:
    directory, name = agents_dir(tmp_path)
    broken = broken_file(directory, name)
    refused = await asyncio.to_thread(
        aios, aios_client, directory, "agents", "canary", broken, "--share", "0.5"
    )
    assert refused.returncode == 1, refused.stdout + refused.stderr
    [line] = refused.stderr.strip().splitlines()
    assert "fails its checks (large refund needs a person)" in line and "--skip-checks" in line
    assert await rollout_version(aios_client, name) is None

    no_reason = await asyncio.to_thread(
        aios, aios_client, directory, "agents", "canary", broken, "--share", "0.5", "--skip-checks"
    )
    assert no_reason.returncode == 2 and "needs --reason" in no_reason.stderr

    overridden = await asyncio.to_thread(
        aios,
        aios_client,
        directory,
        "agents",
        "canary",
        broken,
        "--share",
        "0.5",
        "--skip-checks",
        "--reason",
        "hotfix, reviewed by hand",
        "--by",
        "alice",
    )
    try:
        assert overridden.returncode == 0, overridden.stdout + overridden.stderr
        assert await rollout_version(aios_client, name) is not None
    finally:
        await asyncio.to_thread(aios, aios_client, directory, "agents", "canary-end", name)
    vault = SubjectVault.for_settings(aios_client.settings)
    rows = await audit.story_from_database(aios_client.settings.resolved_database_url, "canary", vault=vault)
    [row] = [r for r in rows if r.detail.get("agent") == name]
    assert (row.actor, row.outcome, row.rationale) == (
        "alice",
        "checks_overridden",
        "hotfix, reviewed by hand",
    )
    assert row.detail["failed_checks"] == ["large refund needs a person"]


async def test_a_malformed_checks_file_is_one_line_naming_the_field(
    aios_client: AiosClient, tmp_path: Path
) -> None:
    directory, name = agents_dir(tmp_path)
    (directory / f"{name}.checks.yaml").write_text(
        f"agent: {name}\nchecks:\n  - name: x\n    task: {{}}\n    expect: {{approval: maybe}}\n"
    )
    result = await asyncio.to_thread(aios, aios_client, directory, "agents", "test", name)
    assert result.returncode == 2, result.stdout + result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "checks[0].expect.approval" in line and "Traceback" not in result.stderr
