"""Fixtures for the browser tests: headless Chromium (Debian's package) driven by Playwright.

The browser is the system's `chromium`, not one Playwright downloads: `infra/local/setup.sh`
installs it, and the `playwright` package comes with the dev extra. When either is missing
the tests fail and say how to get it; `pytest -m "not browser"` leaves them out.
"""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
from collections.abc import AsyncIterator, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from aios.settings import Settings
from tests.integration.conftest import aios_client, effect_server  # noqa: F401  (shared fixtures)

if TYPE_CHECKING:
    from playwright.async_api import Browser

    from tests.browser.webui import TemporalWebUi

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser")
# Headless, and nothing that reaches for the network (there is none to reach in CI).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path("test-artifacts") / "browser"
_saved: list[Path] = []


def _chromium() -> str:
    for candidate in CHROMIUM_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    pytest.fail(
        "no chromium found (looked for /usr/bin/chromium and chromium on PATH): run `make setup`, "
        "which installs Debian's `chromium` package, or `sudo apt-get install chromium`; "
        'deselect the browser tests with -m "not browser"',
        pytrace=False,
    )


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if importlib.util.find_spec("playwright") is None:
        pytest.fail(
            "the `playwright` Python package is missing: `.venv/bin/pip install -e '.[dev]'` "
            '(or `make setup`); deselect the browser tests with -m "not browser"',
            pytrace=False,
        )
    executable = _chromium()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS, timeout=30_000
        )
        yield launched
        await launched.close()


@pytest.fixture(scope="session")
def artifacts_dir(request: pytest.FixtureRequest) -> Path:
    path = request.config.rootpath / ARTIFACTS
    path.mkdir(parents=True, exist_ok=True)
    return path


def _clear_artifacts(directory: Path, prefix: str) -> None:
    """A test's screenshots from an earlier run would otherwise pass for this run's."""
    for stale in directory.glob(f"{prefix}-*"):
        stale.unlink()


def _write(path: Path, text: str) -> None:
    path.write_text(text)


@pytest.fixture
async def web_ui(
    browser: Browser, stack_settings: Settings, artifacts_dir: Path, request: pytest.FixtureRequest
) -> AsyncIterator[TemporalWebUi]:
    """A fresh browser context on the local Web UI; on failure it leaves a screenshot and the DOM."""
    from tests.browser.webui import TemporalWebUi

    _clear_artifacts(artifacts_dir, request.node.name)
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    page = await context.new_page()
    ui = TemporalWebUi(
        page,
        stack_settings.temporal_ui_url,
        stack_settings.temporal_namespace,
        artifacts=artifacts_dir,
        prefix=request.node.name,
        saved=_saved,
    )
    try:
        yield ui
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed and not page.is_closed():
            # Best effort: a crashed page must not hide the test's own failure.
            with contextlib.suppress(Exception):
                await ui.screenshot("failure")
                _write(artifacts_dir / f"{request.node.name}-failure.html", await page.content())
        await context.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _saved:
        terminalreporter.section("browser screenshots")
        for path in _saved:
            terminalreporter.write_line(str(path))
