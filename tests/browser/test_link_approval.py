"""An approver follows the approve link of the mail they received, in a real (headless) browser.

The mail comes from the worker through a loopback SMTP server; the link opens `aios approvals
serve`'s page, which shows what is being approved; the approver confirms with the button,
and the run completes with a verified decision made through the link.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from aios.models.run import RunStatus
from tests.support.effect_server import EffectServer
from tests.support.manifests import refund_like_manifest
from tests.support.operator_loop import OperatorLoop, links_in, operator_loop_fixture  # noqa: F401
from tests.support.runs import audit_story, wait_for_status
from tests.support.smtp_server import smtp_server_fixture  # noqa: F401  (the fixture)

if TYPE_CHECKING:
    from playwright.async_api import Browser

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.timeout(120)]


async def test_the_approve_link_in_the_mail_confirms_in_a_browser_and_the_run_completes(
    operator_loop: OperatorLoop, effect_server: EffectServer, browser: Browser, artifacts_dir: Path
) -> None:
    loop = operator_loop
    manifest = refund_like_manifest(effect_server.url)
    started = await loop.client.start_run(
        manifest.name, {"customer": "c-link", "amount": 250}, manifest=manifest
    )
    await wait_for_status(loop.client, started.run_id, RunStatus.WAITING_APPROVAL)
    [mail] = await loop.mails(1)
    approve = links_in(mail)["approve"]

    context = await browser.new_context()
    page = await context.new_page()
    try:
        await page.goto(approve)
        heading = await page.locator("h1").inner_text()
        assert heading == f"Approve step 2 of run {started.run_id}?"
        assert "payout" in await page.content() and "amount 250 is over 100" in await page.content()
        await page.screenshot(path=str(artifacts_dir / "link-1-confirm.png"))
        await page.fill("textarea[name=note]", "approved from the mail")
        await page.click("#confirm")
        await page.wait_for_selector("#done")
        assert "approved step 2" in await page.locator("#done").inner_text()
        await page.screenshot(path=str(artifacts_dir / "link-2-done.png"))

        final = await loop.client.result(started.run_id, within=30)
        assert final.status is RunStatus.COMPLETED
        [decision] = [
            row for row in await audit_story(loop.settings, started.run_id) if row.outcome == "approve"
        ]
        assert (decision.actor, decision.rationale) == ("alice", "approved from the mail")
        assert (decision.detail["channel"], decision.detail["verified"]) == ("link", True)

        await page.goto(approve)  # the same link again: refused, with a page that says why
        assert "already used" in await page.locator("#refused + p").inner_text()
    finally:
        await context.close()
