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
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
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

log = logging.getLogger(__name__)
LINK_PATH = "/a/"
MAX_FORM_BYTES = 8192
READ_TIMEOUT_SECONDS = 10.0
STATUS_OF = {"forged": 403, "malformed": 400, "expired": 410, "used": 410, "wrong_step": 409}
REASONS = {
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    410: "Gone",
    413: "Payload Too Large",
    502: "Bad Gateway",
}
HEADERS = (
    "Content-Type: text/html; charset=utf-8\r\n"
    "Cache-Control: no-store\r\n"
    "Referrer-Policy: no-referrer\r\n"  # the token is in the URL: never pass it on
    "Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'; form-action 'self'\r\n"
    "X-Frame-Options: DENY\r\n"
)


@dataclass(frozen=True)
class Page:
    status: int
    html: str


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
        server = await asyncio.start_server(self._connection, host, port)
        async with server:
            bound = server.sockets[0].getsockname()
            if on_ready is not None:
                on_ready(str(bound[0]), int(bound[1]))
            await stop.wait()

    # -- the two requests -----------------------------------------------------------------

    async def show(self, token: str) -> Page:
        try:
            claim = await self._checked(token)
            state = await self._waiting(claim)
        except LinkRefused as refused:
            return await self._refused(token, refused)
        except AiosError as error:  # the run is stuck, or a server is down: try again later
            return Page(502, refused_page("run unreachable", str(error)))
        return Page(200, confirm_page(state, claim.verdict, claim.approver, f"{LINK_PATH}{token}"))

    async def confirm(self, token: str, note: str) -> Page:
        try:
            claim = await self._checked(token)
            await self._waiting(claim)
            async with self._pool.connection() as conn:
                await mark_used(conn, claim)
        except LinkRefused as refused:
            return await self._refused(token, refused)
        except AiosError as error:  # nothing was used up: the link still works later
            return Page(502, refused_page("run unreachable", str(error)))
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
            return Page(502, refused_page("run unreachable", str(error)))
        return Page(200, done_page(claim.verdict, claim.run_id, outcome.reason))

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

    async def _refused(self, token: str, refused: LinkRefused) -> Page:
        await self._audit_refusal(token, refused)
        return Page(STATUS_OF.get(refused.reason, 400), refused_page(refused.reason, str(refused)))

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

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                page = await asyncio.wait_for(self._request(reader), READ_TIMEOUT_SECONDS)
            except TimeoutError:
                page = Page(400, refused_page("timeout", "the request did not arrive in time"))
            except (ValueError, asyncio.IncompleteReadError, UnicodeDecodeError):
                page = Page(400, refused_page("malformed", "malformed HTTP request"))
            data = page.html.encode()
            head = (
                f"HTTP/1.1 {page.status} {REASONS.get(page.status, 'Error')}\r\n{HEADERS}"
                f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode("latin-1") + data)
            await writer.drain()
        except (ConnectionError, OSError):
            pass
        except Exception:  # one bad request never stops the server
            log.exception("approvals: request failed")
        finally:
            writer.close()

    async def _request(self, reader: asyncio.StreamReader) -> Page:
        method, target, _version = (await reader.readline()).decode("latin-1").strip().split(" ", 2)
        headers: dict[str, str] = {}
        while True:
            line = (await reader.readline()).decode("latin-1")
            if line in ("\r\n", "\n", ""):
                break
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or 0)
        if length < 0 or length > MAX_FORM_BYTES:
            return Page(413, refused_page("too large", "the form is too large"))
        body = await reader.readexactly(length) if length else b""
        path = target.split("?", 1)[0]
        if path == "/healthz":
            return Page(200, "ok")
        if not path.startswith(LINK_PATH):
            return Page(404, refused_page("not found", "nothing here: decision links start with /a/"))
        token = unquote(path[len(LINK_PATH) :])
        if method == "GET":
            return await self.show(token)
        if method == "POST":
            note = parse_qs(body.decode("utf-8", "replace")).get("note", [""])[0][:2000]
            return await self.confirm(token, note.strip())
        return Page(405, refused_page("method", "use the link, then the button"))
