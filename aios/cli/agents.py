"""`aios agents ...`: validate, list and show agent manifests."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Annotated

import typer
import yaml

from aios.checks.files import checks_path, load_checks
from aios.checks.gate import Override, gate
from aios.checks.runner import DEFAULT_WITHIN, CheckReport, run_checks
from aios.cli.common import fail, run, say, settings, table
from aios.client import AiosClient
from aios.errors import ChecksFailed, ChecksInvalid, ManifestInvalid
from aios.governance.manifests import agents_dir, find_manifest, list_manifests, load_manifest
from aios.governance.rollouts import VersionDiff
from aios.models.manifest import AgentManifest
from aios.triggers.schedules import Applied

app = typer.Typer(help="Agent manifests: validate, list, show; canary rollouts and their diff.")

Outcome = AgentManifest | ManifestInvalid


@app.command()
def validate(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="manifest files; default: every *.yaml in the agents directory", show_default=False
        ),
    ] = None,
) -> None:
    """Check manifests and print each one's version; exits 1 if any is invalid."""
    results = [(path, _load(path)) for path in paths] if paths else _all_manifests()
    if not results:
        fail(f"no *.yaml manifests in {agents_dir()}")
    for path, outcome in results:
        _report(path, outcome)
    if any(isinstance(outcome, ManifestInvalid) for _, outcome in results):
        raise typer.Exit(1)


@app.command("list")
def list_agents() -> None:
    """A table of every manifest, broken ones included with their error."""
    rows = [_row(path, outcome) for path, outcome in _all_manifests()]
    table(f"agent manifests in {agents_dir()}", _COLUMNS, rows)


@app.command()
def show(
    name: str = typer.Argument(..., help="the agent's name, e.g. refund-desk"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of YAML"),
) -> None:
    """Print a manifest with every default filled in, and its version."""
    try:
        manifest = find_manifest(name)
    except ManifestInvalid as exc:
        fail(str(exc))
    content = manifest.model_dump(mode="json")
    if as_json:
        # Plain echo, not rich: the output is for programs, so no wrapping and no colour.
        document = {"name": manifest.name, "version": manifest.version, "manifest": content}
        typer.echo(json.dumps(document, indent=2))
        return
    say(f"# {manifest.name}  version {manifest.version}")
    say(yaml.safe_dump(content, sort_keys=False, allow_unicode=True).rstrip())


_COLUMNS = ("name", "version", "mode", "actions", "model", "file", "state")


def _load(path: Path) -> Outcome:
    try:
        return load_manifest(path)
    except ManifestInvalid as exc:
        return exc


def _all_manifests() -> list[tuple[Path, Outcome]]:
    try:
        return list_manifests()
    except ManifestInvalid as exc:  # the directory itself is missing
        fail(str(exc))


def _report(path: Path, outcome: Outcome) -> None:
    if isinstance(outcome, AgentManifest):
        say(f"ok  {path}  {outcome.name}  version {outcome.version}", style="green")
        return
    for line in str(outcome).splitlines():
        say(f"invalid  {line}", style="red")


def _row(path: Path, outcome: Outcome) -> tuple[str, ...]:
    if isinstance(outcome, ManifestInvalid):
        cells = (path.stem, "-", "-", "-", "-", str(path), f"invalid: {outcome}")
    else:
        model = f"{outcome.model.provider}/{outcome.model.name}"
        actions = str(len(outcome.actions))
        cells = (outcome.name, outcome.version, outcome.mode, actions, model, str(path), "ok")
    return cells


@app.command()
def canary(
    candidate_file: Path = typer.Argument(..., help="the new version's manifest file"),
    share: float = typer.Option(0.0, "--share", min=0.0, max=1.0, help="fraction of new runs it takes"),
    shadow: bool = typer.Option(False, "--shadow", help="run it in shadow beside every live run instead"),
    checks: Path | None = typer.Option(
        None, "--checks", help="its checks file; default: <agents dir>/NAME.checks.yaml, if there is one"
    ),
    skip_checks: bool = typer.Option(
        False, "--skip-checks", help="start it even if its checks fail (needs --reason; recorded)"
    ),
    reason: str = typer.Option("", "--reason", help="why failing checks are overridden (the audit trail)"),
    by: str = typer.Option(getpass.getuser(), "--by", help="who overrides (the audit trail)"),
) -> None:
    """Roll out a new manifest version to a share of runs, or in shadow beside them.

    Its behaviour checks run first: a version that fails them is refused."""
    if (share > 0) == shadow:
        fail("choose one: --share FRACTION (live canary) or --shadow")
    if skip_checks and not reason.strip():
        fail("--skip-checks needs --reason '...': the override is recorded in the audit trail", code=2)
    candidate = _manifest_file(candidate_file)
    current = find_manifest(candidate.name)
    if current.version == candidate.version:
        fail(f"{candidate_file} is already the current version ({current.version}); nothing to roll out")
    checks_file = checks or checks_path(candidate.name)
    override = Override(by=by, reason=reason.strip()) if skip_checks else None

    async def go() -> CheckReport | None:
        client = await AiosClient.connect(settings())
        report = await gate(client, candidate, checks_file, override=override)
        await client.start_canary(candidate, share=share, shadow=shadow)
        return report

    report = run(go())
    if report is None:
        say(f"{candidate.name}: no checks file ({checks_file}); starting without checks", style="yellow")
    elif not report.passed:
        failed = ", ".join(report.failed_checks)
        say(f"{candidate.name}: checks failed ({failed}); overridden by {by}, recorded")
    how = "in shadow beside every run" if shadow else f"on {share:.0%} of new runs"
    say(f"{candidate.name}: version {candidate.version} now runs {how} (current: {current.version})")


@app.command("test")
def test_agent(
    agent: str = typer.Argument(..., help="the agent's name, e.g. refund-desk"),
    manifest_file: Path | None = typer.Option(
        None, "--manifest", help="the version under test; default: the agent's manifest file"
    ),
    checks: Path | None = typer.Option(None, "--checks", help="default: <agents dir>/NAME.checks.yaml"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
    within: float = typer.Option(DEFAULT_WITHIN, "--within", min=1, help="seconds to wait for each run"),
) -> None:
    """Run the agent's behaviour checks as shadow runs and print a pass/fail table; exits 1 on a failure."""
    manifest = _manifest_file(manifest_file) if manifest_file else _find(agent)
    if manifest.name != agent:
        fail(f"{manifest_file} is the manifest of {manifest.name!r}, not {agent!r}", code=2)
    try:
        loaded = load_checks(checks or checks_path(agent))
    except ChecksInvalid as exc:
        fail(str(exc), code=exc.exit_code)

    async def go() -> CheckReport:
        client = await AiosClient.connect(settings())
        return await run_checks(client, manifest, loaded, within=within)

    report = run(go())
    _print_report(report, as_json=as_json)
    if not report.passed:
        error = ChecksFailed(
            f"{agent} version {report.version}: {len(report.failed_checks)} of {len(loaded.checks)} "
            f"checks failed ({', '.join(report.failed_checks)})"
        )
        fail(str(error), code=error.exit_code)


def _print_report(report: CheckReport, *, as_json: bool) -> None:
    if as_json:
        rows = [
            {
                "check": row.check,
                "expectation": row.expectation,
                "observed": row.observed,
                "passed": row.passed,
            }
            for row in report.rows
        ]
        document = {
            "agent": report.agent,
            "version": report.version,
            "passed": report.passed,
            "failed_checks": report.failed_checks,
            "runs": report.run_ids,
            "rows": rows,
        }
        typer.echo(json.dumps(document, indent=2))
        return
    cells = [
        (row.check, row.expectation, row.observed, "PASS" if row.passed else "FAIL") for row in report.rows
    ]
    table(f"{report.agent} version {report.version}: behaviour checks", _CHECK_COLUMNS, cells)
    if report.passed:
        say(f"all {len(report.run_ids)} checks passed", style="green")


_CHECK_COLUMNS = ("check", "expectation", "observed", "result")


def _manifest_file(path: Path) -> AgentManifest:
    try:
        return load_manifest(path)
    except ManifestInvalid as exc:
        fail(str(exc), code=exc.exit_code)


def _find(agent: str) -> AgentManifest:
    try:
        return find_manifest(agent)
    except ManifestInvalid as exc:
        fail(str(exc), code=exc.exit_code)


@app.command("canary-end")
def canary_end(agent: str = typer.Argument(...)) -> None:
    """Stop a rollout: every new run uses the manifest file again."""

    async def go() -> bool:
        return await (await AiosClient.connect(settings())).end_canary(agent)

    say(f"{agent}: rollout ended" if run(go()) else f"{agent}: no rollout was active")


@app.command()
def diff(
    agent: str = typer.Argument(...),
    limit: int = typer.Option(200, "--limit", min=1, help="how many recent runs to compare"),
) -> None:
    """Compare the actions two versions proposed: shadow pairs side by side, then totals."""

    async def go() -> VersionDiff:
        return await (await AiosClient.connect(settings())).version_diff(agent, limit=limit)

    report = run(go())
    rows = [
        (pair.live_run, _actions(pair.live), _actions(pair.shadow), "same" if pair.same else "DIFFERENT")
        for pair in report.pairs
    ]
    table(f"{agent}: live vs shadow on the same task", ("live run", "live", "shadow", ""), rows)
    totals = [
        (version, report.runs_by_version[version], _actions(sorted(counts.elements())))
        for version, counts in report.by_version.items()
    ]
    table(f"{agent}: proposals by manifest version", ("version", "runs", "proposed (action:grade)"), totals)


def _actions(proposed: list[tuple[str, str]]) -> str:
    return ", ".join(f"{action}:{grade}" for action, grade in proposed) or "-"


@app.command()
def apply() -> None:
    """Make the agents' triggers real: their Temporal Schedules and event subscriptions."""

    async def go() -> Applied:
        return await (await AiosClient.connect(settings())).apply()

    applied = run(go())
    for verb, names in (
        ("created", applied.created),
        ("updated", applied.updated),
        ("deleted", applied.deleted),
    ):
        for name in names:
            say(f"schedule {name}: {verb}")
    if not (applied.created or applied.updated or applied.deleted):
        say("no agent declares a schedule; nothing to apply")
