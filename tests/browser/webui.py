"""The Temporal Web UI as a test drives it: the few pages and controls the approval flow uses.

Selectors prefer what a person sees (roles and visible names) and fall back to the UI's own
`data-testid`s, so a restyled UI keeps working; they were read from Temporal UI 2.42.1.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from pathlib import Path
from typing import Any

from playwright.async_api import Locator, Page, expect

# The list page renders after its visibility query; a busy 2-core machine takes seconds.
LIST_WAIT_MS = 10_000
STEP_TIMEOUT_MS = 15_000
# `expect` keeps its own 5 s default, apart from the page's: a run page still showing its
# skeleton after 5 s on a loaded machine failed a full suite once.
expect.set_options(timeout=STEP_TIMEOUT_MS)


class TemporalWebUi:
    def __init__(
        self, page: Page, base_url: str, namespace: str, *, artifacts: Path, prefix: str, saved: list[Path]
    ) -> None:
        self.page = page
        self.artifacts = artifacts
        self.prefix = prefix
        self.saved = saved
        self.base = f"{base_url.rstrip('/')}/namespaces/{urllib.parse.quote(namespace)}"
        page.set_default_timeout(STEP_TIMEOUT_MS)
        page.set_default_navigation_timeout(STEP_TIMEOUT_MS)

    def workflows_url(self, query: str) -> str:
        return f"{self.base}/workflows?query={urllib.parse.quote(query)}"

    async def find_run(self, query: str, run_id: str, *, attempts: int = 4) -> Locator:
        """The run's link in the list filtered by `query`; reloads while visibility catches up."""
        link = self.page.get_by_role("link", name=run_id, exact=True)
        for _ in range(attempts - 1):
            await self.page.goto(self.workflows_url(query))
            if await _shows(link, within_ms=LIST_WAIT_MS):
                return link
        await self.page.goto(self.workflows_url(query))
        await expect(link).to_be_visible(timeout=LIST_WAIT_MS)
        return link

    async def open_signal_form(self) -> Locator:
        """Open the run page's "Send a Signal" dialog (UI 2.42.1: an item of the "More Actions" menu).

        The page renders the header's actions twice (narrow and wide layouts); only one is visible.
        """
        page = self.page
        menu = page.get_by_role("button", name=re.compile(r"^\s*More Actions\s*$")).filter(visible=True)
        await menu.first.click()
        item = (
            page.get_by_test_id("signal-button")
            .or_(page.get_by_role("menuitem", name="Send a Signal"))
            .filter(visible=True)
        )
        await item.first.click()
        dialog = page.get_by_role("dialog", name="Send a Signal")
        await expect(dialog).to_be_visible()
        return dialog

    async def _choose_signal(self, dialog: Locator, name: str) -> None:
        """A dropdown when the worker told the UI the run's signals; a text field otherwise."""
        dropdown = dialog.get_by_test_id("signal-select-button")
        if await dropdown.count():
            await dropdown.click()
            # An option reads "<name> <description>" when the handler has a description.
            await dialog.get_by_role("option", name=re.compile(rf"^\s*{re.escape(name)}\b")).first.click()
            await expect(dialog.get_by_test_id("signal-select")).to_have_value(name)
            return
        signal_name = dialog.get_by_label("Signal name").or_(dialog.get_by_test_id("signal-name"))
        await signal_name.first.fill(name)
        await expect(signal_name.first).to_have_value(name)

    async def fill_signal(self, dialog: Locator, name: str, payload: dict[str, Any] | None) -> None:
        """Choose the signal and type its input; None leaves the input empty, as a hurried click would."""
        await self._choose_signal(dialog, name)
        if payload is None:
            return
        # The input is a CodeMirror editor (a contenteditable); inserting the text at once keeps
        # its bracket auto-closing from doubling braces and quotes.
        editor = dialog.locator(".cm-content[contenteditable='true'], textarea").first
        await editor.click()
        await self.page.keyboard.insert_text(json.dumps(payload))
        typed = await editor.inner_text() if await editor.evaluate("e => e.isContentEditable") else None
        if typed is not None:
            assert json.loads(typed) == payload, f"the signal input reads {typed!r}"

    async def submit_signal(self, dialog: Locator) -> None:
        submit = dialog.get_by_role("button", name="Submit").or_(
            dialog.get_by_test_id("confirm-modal-button")
        )
        await expect(submit.first).to_be_enabled()
        await submit.first.click()
        await expect(dialog).to_be_hidden()

    def status_badge(self, status: str) -> Locator:
        """The run page's status badge (Running, Completed, ...), in the page header."""
        return self.page.locator("header").get_by_text(status, exact=True).first

    async def expect_status(self, status: str) -> None:
        await expect(self.status_badge(status)).to_be_visible()

    async def screenshot(self, name: str) -> Path:
        """Keep a full-page screenshot as a test artifact; prints and remembers its path."""
        path = self.artifacts / f"{self.prefix}-{name}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        self.saved.append(path)
        print(f"screenshot: {path}")
        return path


async def _shows(locator: Locator, *, within_ms: float) -> bool:
    try:
        await expect(locator).to_be_visible(timeout=within_ms)
    except AssertionError:
        return False
    return True
