"""`aios agents test`: each check of a checks file as one shadow run of the version under test.

The runs go through admission like any other (StartRequest.shadow_only: exactly this manifest,
no rollout, nothing executed), on the real workers. A check's run id is derived from the agent,
the manifest version, the check's place and its task: a rerun of the same version finds its
runs and reads their results instead of starting new ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from dataclasses import dataclass

from temporalio.exceptions import WorkflowAlreadyStartedError

from aios.checks.expect import Row, judge
from aios.client import AiosClient
from aios.errors import AiosError, ChecksInvalid
from aios.models.checks import Check, ChecksFile
from aios.models.manifest import AgentManifest
from aios.models.run import Cause
from aios.models.start import StartRequest

# A shadow run of the offline model ends in seconds; a real model may take a minute per turn.
DEFAULT_WITHIN = 300.0
TESTER = "aios-agents-test"


@dataclass(frozen=True)
class CheckReport:
    """The rows of every check of one version, and the run each came from."""

    agent: str
    version: str
    rows: list[Row]
    run_ids: dict[str, str]

    @property
    def failed_checks(self) -> list[str]:
        return list(dict.fromkeys(row.check for row in self.rows if not row.passed))

    @property
    def passed(self) -> bool:
        return not self.failed_checks


def check_run_id(manifest: AgentManifest, index: int, check: Check) -> str:
    """Same agent, version, place and task: same run, so a rerun reuses its result."""
    task = json.dumps(check.task, sort_keys=True, default=str)
    digest = hashlib.sha256(task.encode()).hexdigest()[:8]
    return f"check-{manifest.name}-{manifest.version}-{index}-{digest}"


async def run_checks(
    client: AiosClient, manifest: AgentManifest, checks: ChecksFile, *, within: float = DEFAULT_WITHIN
) -> CheckReport:
    """Start (or find) every check's shadow run, wait for them all, and judge each."""
    if checks.agent != manifest.name:
        raise ChecksInvalid(
            f"the checks are for agent {checks.agent!r} but the manifest is {manifest.name!r}; "
            f"set `agent: {manifest.name}` in the checks file or pass the other agent's manifest"
        )
    run_ids = {check.name: check_run_id(manifest, index, check) for index, check in enumerate(checks.checks)}
    for check in checks.checks:
        await _start(client, manifest, check, run_ids[check.name])
    judged = await asyncio.gather(
        *(_judged(client, check, run_ids[check.name], within) for check in checks.checks)
    )
    rows = [row for check_rows in judged for row in check_rows]
    return CheckReport(agent=manifest.name, version=manifest.version, rows=rows, run_ids=run_ids)


async def _start(client: AiosClient, manifest: AgentManifest, check: Check, run_id: str) -> None:
    request = StartRequest(
        agent=manifest.name,
        task=check.task,
        cause=Cause(ref=TESTER),
        run_id=run_id,
        manifest=manifest,
        shadow_only=True,
    )
    # This version's check ran before when its id is taken: its result is read below.
    with contextlib.suppress(WorkflowAlreadyStartedError):
        await client.start(request)


async def _judged(client: AiosClient, check: Check, run_id: str, within: float) -> list[Row]:
    try:
        state = await client.result(run_id, within=within)
    except AiosError as error:  # failed, terminated, or still going after `within`
        return [Row(check.name, "the run ends", f"{type(error).__name__}: {error}", False)]
    return judge(check, state)
