"""What every CLI command shares: settings loading, error reporting, tables."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine, Iterable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import psycopg
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from temporalio.service import RPCError

from aios.errors import AiosError
from aios.observability.telemetry import configure_tracing
from aios.settings import Settings, load_settings
from aios.temporal.redaction import install_redaction
from aios.temporal.server_errors import explain_unbound, postgres_unreachable

if TYPE_CHECKING:
    from aios.stack import ServiceState

console = Console(soft_wrap=True)
# Soft wrap: an error stays one line however narrow the terminal, so it can be read and copied whole.
error_console = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")


def fail(message: str, code: int = 1) -> NoReturn:
    """Print a user-facing error (plain text: brackets in it are not markup) and exit."""
    error_console.print(Text("error: ", style="bold red") + Text(message), highlight=False)
    raise typer.Exit(code)


def json_object(option: str, text: str, example: str) -> dict[str, Any]:
    """An option's JSON object, or one line saying what was wrong and an `example` of one."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"{option} is not valid JSON ({exc}); pass an object, e.g. {option} '{example}'", code=2)
    if not isinstance(value, dict):
        fail(f"{option} must be a JSON object, e.g. {option} '{example}'", code=2)
    return value


def report_problems(states: Iterable[ServiceState]) -> None:
    """The one-line problems of `stack.status` (a port another stack holds), under its table."""
    for state in states:
        if state.problem:
            for line in state.problem.splitlines():
                error_console.print(Text("error: ", style="bold red") + Text(line), highlight=False)


def say(message: str, style: str | None = None) -> None:
    """Print plain text: values such as `[alice]` are shown, never read as markup."""
    console.print(Text(message, style=style or ""), highlight=False)


def settings() -> Settings:
    try:
        loaded = load_settings()
    except AiosError as exc:
        fail(str(exc), code=2)
    install_redaction(loaded)  # secrets never reach this process's log output
    return loaded


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine; an AiosError becomes one line and its exit code, never a traceback.

    The client maps server failures to AiosErrors at its boundary (aios/temporal/server_errors.py); the
    two last `except`s catch what a command reached without the client, in the same words.
    """
    # The CLI's own spans (a run's start, a signal) begin the traces the worker continues.
    try:
        config = settings()
    except BaseException:  # bad settings exit with their one line; the command never ran
        coroutine.close()
        raise
    configure_tracing("aios-cli", trace_file=config.resolved_trace_file)
    try:
        return asyncio.run(coroutine)
    except AiosError as exc:
        fail(str(exc), code=exc.exit_code)
    except RPCError as exc:
        problem = explain_unbound(config, exc)
        fail(str(problem), code=problem.exit_code)
    except psycopg.OperationalError as exc:
        problem = postgres_unreachable(config, exc)
        fail(str(problem), code=problem.exit_code)


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    grid = Table(title=Text(title), title_justify="left")
    for column in columns:
        grid.add_column(column, overflow="fold")
    for row in rows:
        grid.add_row(*(Text(str(cell)) for cell in row))
    console.print(grid)
