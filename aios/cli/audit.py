"""`aios audit RUN` tells a run's story from the audit trail; `aios audit verify` checks the chain."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import typer
from typer.core import TyperGroup

from aios.cli.common import console, fail, run, say, settings, table
from aios.governance import audit
from aios.governance.audit import AuditRow
from aios.governance.subjects import SubjectVault

STORY_COLUMNS = (
    "time",
    "step",
    "actor",
    "action",
    "outcome",
    "rationale",
    "confidence",
    "approver",
    "trace id",
)

# Detail fields that explain an outcome; the rest of the detail is in `--json`.
WHY_DETAILS = ("policy", "error", "reason")


class RunOrCommand(TyperGroup):
    """`aios audit RUN` means `aios audit story RUN`: anything that is not a command is a run id."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # ctx: typer's vendored click
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["story", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=RunOrCommand,
    help="The audit trail: `aios audit RUN` tells a run's story, `aios audit verify` checks the chain.",
    no_args_is_help=True,
)


@app.command("story")
def story(
    run_id: str = typer.Argument(..., help="the run's id (see `aios runs`)"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object per row, as a list"),
) -> None:
    """Every step and decision of a run, in order: who did what, why, and with what outcome."""
    config = settings()
    vault = SubjectVault.for_settings(config)
    rows = run(audit.story_from_database(config.resolved_database_url, run_id, vault=vault))
    if not rows:
        fail(f"no audit rows for run {run_id!r}; `aios runs` lists the runs")
    if as_json:
        console.print_json(json.dumps([row.to_json() for row in rows]))
        return
    _print_story(run_id, rows)


def _print_story(run_id: str, rows: list[AuditRow]) -> None:
    versions = sorted({row.manifest_version for row in rows if row.manifest_version})
    first, last = rows[0].recorded_at, rows[-1].recorded_at
    say(f"{run_id}: {len(rows)} events from {_when(first)} to {_when(last)}")
    if versions:
        say(f"manifest version {', '.join(versions)}")
    table(f"the story of {run_id}", STORY_COLUMNS, [_story_cells(row) for row in rows])
    unchained = sum(1 for row in rows if row.chain_seq is None)
    if unchained:
        say(f"{unchained} of these rows predate the audit chain and are not covered by `aios audit verify`")


def _story_cells(row: AuditRow) -> tuple[Any, ...]:
    return (
        _when(row.recorded_at),
        row.step,
        row.actor,
        _action(row),
        row.outcome,
        _why(row),
        "" if row.confidence is None else f"{row.confidence:.2f}",
        row.approver or "",
        row.trace_id or "",
    )


def _action(row: AuditRow) -> str:
    """The action, with the amount a proposal names."""
    amount = row.detail.get("amount")
    if isinstance(amount, bool) or not isinstance(amount, int | float):
        return row.action
    return f"{row.action} {amount:g}"


def _why(row: AuditRow) -> str:
    """The actor's rationale, then the policy's reason or the error the detail records."""
    parts = [row.rationale] if row.rationale else []
    parts += [f"{key}: {row.detail[key]}" for key in WHY_DETAILS if row.detail.get(key)]
    return "; ".join(parts)


def _when(moment: datetime) -> str:
    # The operator's own clock, to the millisecond: a run's steps often share one second.
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


@app.command("verify")
def verify() -> None:
    """Check the whole hash chain; exit 1 naming the first row that was changed, removed or moved."""
    report = run(audit.verify_database(settings().resolved_database_url))
    if report.broken is not None:
        fail(
            f"the audit chain is broken at {report.broken.describe()}. "
            f"{report.rows_checked} rows before it are intact."
        )
    say(f"audit chain intact: {report.rows_checked} rows, head #{report.head_seq} {report.head_hash}")
    if report.unchained_rows:
        say(f"{report.unchained_rows} older rows predate the chain (migration 0005) and are not covered")
