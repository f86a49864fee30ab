"""`aios dev ...`: the local stack without Docker."""

from __future__ import annotations

from pathlib import Path

import typer

from aios import stack
from aios.cli.common import console, fail, report_problems, settings, table
from aios.errors import AiosError
from aios.stack import cluster, temporal
from aios.temporal import codec_server
from aios.temporal.codec import rotate_key

app = typer.Typer(help="Run the local stack: Temporal dev server + Web UI, Postgres, Qdrant.")


def _progress(message: str) -> None:
    console.print(f"[dim]…[/] {message}", highlight=False)


@app.command()
def install(
    profile: str = typer.Option(
        "dev", "--profile", help="cluster: also the server, its SQL tool and the ui-server"
    ),
) -> None:
    """Find or build the Temporal CLI (never rebuilds when it is there); with --profile cluster,
    build the real server, its SQL tool and the Web UI's server too (minutes, once)."""
    config = settings()
    try:
        binary = temporal.ensure_binary(config, _progress)
        if profile == "cluster":
            cluster.build(config, _progress)
    except AiosError as exc:
        fail(str(exc))
    console.print(f"Temporal CLI: {binary}")
    if profile == "cluster":
        console.print(f"Temporal server {cluster.SERVER_VERSION}: {cluster.binary(config, cluster.SERVER)}")


@app.command()
def up(
    profile: str | None = typer.Option(
        None, "--profile", help="dev (the CLI's dev server) or cluster (the real server on Postgres)"
    ),
) -> None:
    """Start whatever is not running, wait until it answers, and apply migrations."""
    config = settings()
    if profile is not None:
        if profile not in ("dev", "cluster"):
            fail(f"unknown profile {profile!r}: choose dev or cluster (or set AIOS_TEMPORAL_PROFILE)", code=2)
        config = config.model_copy(update={"temporal_profile": profile})
    try:
        states = stack.up(config, _progress)
    except AiosError as exc:
        fail(str(exc))
    if config.temporal_is_local:
        console.print(f"[bold]Temporal Web UI:[/] {config.temporal_ui_url}", highlight=False)
    if config.payload_encryption:
        console.print(
            f"[bold]Payloads:[/] encrypted; the Web UI decrypts them through {codec_server.url(config)}",
            highlight=False,
        )
    table(
        "aios local stack",
        ("service", "where", "state"),
        [(s.name, s.location, s.state) for s in states],
    )


@app.command()
def down() -> None:
    """Stop only what `aios dev up` started."""
    try:
        states = stack.down(settings())
    except AiosError as exc:
        fail(str(exc))
    table(
        "aios local stack",
        ("service", "where", "state"),
        [(s.name, s.location, s.state) for s in states],
    )


@app.command()
def status() -> None:
    """Report each service's health; exits 1 when one is down or another stack's."""
    states = stack.status(settings())
    table(
        "aios local stack",
        ("service", "where", "state"),
        [(s.name, s.location, s.state) for s in states],
    )
    report_problems(states)
    if any(s.state.startswith(("down", "unreachable", "foreign")) for s in states):
        raise typer.Exit(1)


@app.command("rotate-key")
def rotate_key_command() -> None:
    """Add a new current payload key; the old keys stay, so older payloads still decrypt."""
    try:
        path, keyring = rotate_key(settings())
    except AiosError as exc:
        fail(str(exc))
    console.print(f"new payload key {keyring.current} written to {path}", highlight=False)
    console.print(
        f"kept {len(keyring.keys) - 1} older key(s) for decryption. Running workers, clients and the "
        "codec server read the new key when they meet it; they encrypt with it after a restart.",
        highlight=False,
    )


@app.command()
def logs(
    service: str = typer.Argument("temporal", help="temporal, postgres or codec-server"),
    lines: int = typer.Option(40, "--lines", "-n", min=1, help="how many lines from the end"),
) -> None:
    """Print the end of a service's log."""
    paths = stack.log_files(settings())
    if service not in paths:
        fail(f"unknown service {service!r}; choose one of: {', '.join(paths)}")
    path = Path(paths[service])
    if not path.exists():
        fail(f"{path} does not exist yet: has `aios dev up` started {service}?")
    console.print(f"[dim]{path}[/]")
    for line in path.read_text(errors="replace").splitlines()[-lines:]:
        console.print(line, markup=False, highlight=False)
