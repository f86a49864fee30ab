"""`aios deploy status | promote | ramp | rollback`: which worker version new runs start on."""

from __future__ import annotations

import typer

from aios.cli.common import run, say, settings, table
from aios.deploy.versions import Deployment, Deployments
from aios.errors import DeployRefused
from aios.settings import Settings
from aios.temporal.connection import connect

app = typer.Typer(help="Safe deploys: worker versions, and which one new runs start on.")


async def _deployments(config: Settings) -> Deployments:
    if not config.worker_deployment:
        raise DeployRefused(
            "worker versioning is off: set AIOS_WORKER_DEPLOYMENT=<name> for the workers and for this command"
        )
    return Deployments(await connect(config), config.worker_deployment)


@app.command("status")
def status() -> None:
    """The deployment's versions: current, ramping, draining; the runs pinned to each."""
    config = settings()

    async def go() -> Deployment:
        return await (await _deployments(config)).describe()

    deployment = run(go())
    ramp = f", ramping {deployment.ramping} at {deployment.ramp_percent:g}%" if deployment.ramping else ""
    say(f"deployment {deployment.name}: current {deployment.current or '-'}{ramp}")
    table(
        "versions (newest first)",
        ["build id", "status", "running runs pinned", "created", "no longer current since"],
        [
            [
                v.build_id,
                v.status,
                "-" if v.running is None else v.running,
                v.created.isoformat(timespec="seconds") if v.created else "-",
                v.deactivated.isoformat(timespec="seconds") if v.deactivated else "-",
            ]
            for v in deployment.versions
        ],
    )


@app.command("promote")
def promote(build_id: str | None = typer.Argument(None, help="default: the newest version")) -> None:
    """Make a version current: new runs start on it; runs already going stay on theirs."""
    config = settings()

    async def go() -> str:
        return await (await _deployments(config)).promote(build_id)

    say(f"current version: {run(go())} (runs already going finish on the version they started on)")


@app.command("ramp")
def ramp(
    percent: float = typer.Argument(..., help="share of new runs, 0 to 100 (0 stops the ramp)"),
    build_id: str | None = typer.Argument(None, help="default: the newest version"),
) -> None:
    """Send a share of new runs to a version before promoting it."""
    config = settings()

    async def go() -> str:
        return await (await _deployments(config)).ramp(percent, build_id)

    say(f"ramping {run(go())} at {percent:g}% of new runs")


@app.command("rollback")
def rollback() -> None:
    """Make current again the version that was current before."""
    config = settings()

    async def go() -> str:
        return await (await _deployments(config)).rollback()

    say(f"rolled back: new runs start on {run(go())}")
