"""The canary's gate: a candidate version that fails its behaviour checks does not start.

A person may start it anyway (`--skip-checks --reason ...`): the override is written to the
audit trail with who, why, which version and which checks failed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from aios.checks.files import load_checks
from aios.checks.runner import DEFAULT_WITHIN, CheckReport, run_checks
from aios.client import AiosClient
from aios.errors import CanaryRefused
from aios.governance.audit import AuditEntry, append
from aios.models.manifest import AgentManifest

CANARY_RUN = "canary"  # the audit rows' run id: the gate is about a version, not one run
OVERRIDE = "checks_overridden"


@dataclass(frozen=True)
class Override:
    by: str
    reason: str


async def gate(
    client: AiosClient,
    candidate: AgentManifest,
    checks_file: Path,
    *,
    override: Override | None = None,
    within: float = DEFAULT_WITHIN,
) -> CheckReport | None:
    """Run the candidate's checks (None when it has no checks file); raise CanaryRefused on a
    failure unless `override` says who lets it through and why (then audited)."""
    if not checks_file.is_file():  # noqa: ASYNC240 (one stat, before any await)
        return None
    report = await run_checks(client, candidate, load_checks(checks_file), within=within)
    if report.passed:
        return report
    if override is None:
        raise CanaryRefused(
            f"{candidate.name} version {candidate.version} fails its checks "
            f"({', '.join(report.failed_checks)}); see `aios agents test {candidate.name} --manifest FILE`, "
            f"fix the manifest, or start it anyway with --skip-checks --reason '...' (recorded)"
        )
    async with client.connection() as conn:
        await append(conn, [override_entry(report, override)])
    return report


def override_entry(report: CheckReport, override: Override) -> AuditEntry:
    return AuditEntry(
        event_key=f"canary:{report.agent}:{report.version}:{OVERRIDE}:{uuid.uuid4().hex[:12]}",
        run_id=CANARY_RUN,
        step="checks",
        actor=override.by,
        action="canary",
        outcome=OVERRIDE,
        rationale=override.reason,
        detail={
            "agent": report.agent,
            "version": report.version,
            "failed_checks": report.failed_checks,
            "check_runs": [report.run_ids[name] for name in report.failed_checks],
        },
        manifest_version=report.version,
    )
