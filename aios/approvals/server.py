"""`aios approvals serve`: the page behind the decision links a notification carries.

GET /a/<token> checks the link and shows what it decides, with the inbox's context; nothing
is decided by a GET (mail scanners fetch links). POST /a/<token> checks it again, marks it
used (once: aios_used_links), and sends the run's `decide` update with the token, which the
run checks in its turn before it counts the decision as verified. A forged, expired, used or
wrong-step link gets a page that says so, and an audit row. Loopback by default: put it
behind a reverse proxy (TLS) and set AIOS_APPROVALS_URL to the public address.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote

from psycopg_pool import AsyncConnectionPool

from aios.approvals.approvers import ApproverBook
from aios.approvals.links import WRONG_STEP, LinkClaim, ensure_unused, mark_used, read_claim, verify
from aios.approvals.page import confirm_page, done_page, refused_page
from aios.client import AiosClient
from aios.errors import AiosError, DecisionRefused, LinkRefused, RunFinished, RunNotFound
from aios.governance.audit import AuditEntry, append
from aios.models.run import RunState
from aios.web.server import HttpAnswer, HttpRequest, HttpServer

LINK_PATH = "/a/"
MAX_FORM_BYTES = 8192
STATUS_OF = {"forged": 403, "malformed": 400, "expired": 410, "used": 410, "wrong_step": 409}
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the token is in the URL: never pass it on
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
    "X-Frame-Options": "DENY",
}


def html_page(status: int, html: str) -> HttpAnswer:
    return HttpAnswer(status, html=html, headers=PAGE_HEADERS)


class ApprovalServer:
    def __init__(
        self,
        client: AiosClient,
        pool: AsyncConnectionPool,
        book: ApproverBook,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._client, self._pool, self._book, self._clock = client, pool, book, clock

    async def serve(
        self, *, host: str, port: int, stop: asyncio.Event, on_ready: Callable[[str, int], None] | None = None
    ) -> None:
        server = HttpServer(self._route, max_body=MAX_FORM_BYTES)
        await server.serve(host=host, port=port, stop=stop, on_ready=on_ready)

    # -- the two requests -----------------------------------------------------------------

    async def show(self, token: str) -> HttpAnswer:
        try:
            claim = await self._checked(token)
            state = await self._waiting(claim)
        except LinkRefused as refused:
            return await self._refused(token, refused)
        except AiosError as error:  # the run is stuck, or a server is down: try again later
            return html_page(502, refused_page("run unreachable", str(error)))
        return html_page(200, confirm_page(state, claim.verdict, claim.approver, f"{LINK_PATH}{token}"))

    async def confirm(self, token: str, note: str) -> HttpAnswer:
        try:
            claim = await self._checked(token)
            await self._waiting(claim)
            async with self._pool.connection() as conn:
                await mark_used(conn, claim)
        except LinkRefused as refused:
            return await self._refused(token, refused)
        except AiosError as error:  # nothing was used up: the link still works later
            return html_page(502, refused_page("run unreachable", str(error)))
        try:
            outcome = await self._client.decide(
                claim.run_id,
                claim.verdict,
                approver=claim.approver,
                note=note or "decided through a signed link",
                step=claim.step,
                channel="link",
                token=token,
            )
        except DecisionRefused as refused:
            return await self._refused(token, LinkRefused(WRONG_STEP, f"the run refused it: {refused}"))
        except AiosError as error:
            return html_page(502, refused_page("run unreachable", str(error)))
        return html_page(200, done_page(claim.verdict, claim.run_id, outcome.reason))

    # -- checks ---------------------------------------------------------------------------

    async def _checked(self, token: str) -> LinkClaim:
        claim = read_claim(token)
        async with self._pool.connection() as conn:
            approver = await self._book.get(conn, claim.approver)
            verified = verify(token, approver.secret if approver else None, now=self._clock())
            await ensure_unused(conn, verified)
        return verified

    async def _waiting(self, claim: LinkClaim) -> RunState:
        try:
            state = await self._client.state(claim.run_id)
        except (RunNotFound, RunFinished) as error:
            raise LinkRefused(WRONG_STEP, f"run {claim.run_id} is not waiting: {error}") from error
        pending = state.pending_approval
        if pending is None:
            raise LinkRefused(WRONG_STEP, f"run {claim.run_id} waits for no approval now (decided, or ended)")
        if pending.step != claim.step:
            raise LinkRefused(
                WRONG_STEP,
                f"this link is for step {claim.step}; run {claim.run_id} waits at step {pending.step}",
            )
        return state

    async def _refused(self, token: str, refused: LinkRefused) -> HttpAnswer:
        await self._audit_refusal(token, refused)
        return html_page(STATUS_OF.get(refused.reason, 400), refused_page(refused.reason, str(refused)))

    async def _audit_refusal(self, token: str, refused: LinkRefused) -> None:
        try:
            claim: LinkClaim | None = read_claim(token)
        except LinkRefused:
            claim = None
        detail: dict[str, Any] = {"channel": "link", "verified": False, "reason": refused.reason}
        if claim is not None:  # what the link claims, unverified when forged
            detail.update({"approver": claim.approver, "verdict": claim.verdict, "token_id": claim.token_id})
        entry = AuditEntry(
            event_key=f"link-refused:{uuid.uuid4().hex}",
            run_id=claim.run_id if claim else "approvals",
            step=f"step-{claim.step}" if claim else "decision",
            actor="approvals-server",
            action="decision_link",
            outcome=f"refused:{refused.reason}",
            rationale=str(refused),
            detail=detail,
        )
        async with self._pool.connection() as conn:
            await append(conn, [entry])

    # -- HTTP -----------------------------------------------------------------------------

    async def _route(self, request: HttpRequest) -> HttpAnswer:
        if not request.path.startswith(LINK_PATH):
            return html_page(404, refused_page("not found", "nothing here: decision links start with /a/"))
        token = unquote(request.path[len(LINK_PATH) :])
        if request.method == "GET":
            return await self.show(token)
        if request.method == "POST":
            note = parse_qs(request.body.decode("utf-8", "replace")).get("note", [""])[0][:2000]
            return await self.confirm(token, note.strip())
        return html_page(405, refused_page("method", "use the link, then the button"))
