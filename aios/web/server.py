"""A small asyncio HTTP/1.1 server for aios's inbound endpoints: one request per connection.

Each endpoint (webhooks that settle effects, events that start runs, the decision links' page)
is a `Route`: an async function from a parsed `HttpRequest` to an `HttpAnswer`, a JSON body or
an HTML page. The server reads the
request line, headers and a body of at most `max_body` bytes within a deadline, answers, and
closes the connection; `GET /healthz` is answered for every route. It binds to loopback unless
told otherwise: put a TLS-terminating reverse proxy in front before exposing it.

Why not a framework: these endpoints take one POST each and the project has no other HTTP server
to share a dependency with; what a framework adds (routing trees, middleware, keep-alive) is
what they do not need, and this stays small enough to read whole.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

log = logging.getLogger("aios.web")
READ_TIMEOUT_SECONDS = 10.0
DEFAULT_MAX_BODY = 1 << 20


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str
    headers: Mapping[str, str]  # lower-cased names
    body: bytes


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    body: dict[str, Any] = field(default_factory=dict)
    html: str | None = None  # a page instead of the JSON body
    headers: Mapping[str, str] = field(default_factory=dict)  # beside Content-Type and -Length


Route = Callable[[HttpRequest], Awaitable[HttpAnswer]]


class HttpServer:
    def __init__(self, route: Route, *, max_body: int = DEFAULT_MAX_BODY) -> None:
        self._route = route
        self._max_body = max_body

    async def serve(
        self,
        *,
        host: str,
        port: int,
        stop: asyncio.Event,
        on_ready: Callable[[str, int], None] | None = None,
    ) -> None:
        server = await asyncio.start_server(self._connection, host, port)
        async with server:
            bound = server.sockets[0].getsockname()
            if on_ready is not None:
                on_ready(str(bound[0]), int(bound[1]))
            await stop.wait()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                answer = await asyncio.wait_for(self._answer(reader), READ_TIMEOUT_SECONDS)
            except TimeoutError:
                answer = HttpAnswer(400, {"error": "the request did not arrive in time"})
            except (ValueError, asyncio.IncompleteReadError, UnicodeDecodeError):
                answer = HttpAnswer(400, {"error": "malformed HTTP request"})
            except Exception:  # a bug in a route: the sender gets a 500, the log the traceback
                log.exception("the endpoint failed")
                answer = HttpAnswer(500, {"error": "the endpoint failed; the server's log says why"})
            writer.write(_encode(answer))
            await writer.drain()
        except (ConnectionError, OSError):
            pass  # the sender went away; it retries on its own
        finally:
            writer.close()

    async def _answer(self, reader: asyncio.StreamReader) -> HttpAnswer:
        method, target, _version = (await reader.readline()).decode("latin-1").strip().split(" ", 2)
        headers: dict[str, str] = {}
        while True:
            line = (await reader.readline()).decode("latin-1")
            if line in ("\r\n", "\n", ""):
                break
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or 0)
        if length < 0 or length > self._max_body:
            return HttpAnswer(413, {"error": f"a body may have at most {self._max_body} bytes"})
        body = await reader.readexactly(length) if length else b""
        path = target.split("?", 1)[0]
        if path == "/healthz":
            return HttpAnswer(200, {"ok": True})
        return await self._route(HttpRequest(method=method, path=path, headers=headers, body=body))


def _encode(answer: HttpAnswer) -> bytes:
    if answer.html is None:
        data, kind = json.dumps(answer.body).encode(), "application/json"
    else:
        data, kind = answer.html.encode(), "text/html; charset=utf-8"
    try:
        reason = HTTPStatus(answer.status).phrase
    except ValueError:
        reason = "Error"
    extra = "".join(f"{name}: {value}\r\n" for name, value in answer.headers.items())
    head = (
        f"HTTP/1.1 {answer.status} {reason}\r\n"
        f"Content-Type: {kind}\r\n{extra}"
        f"Content-Length: {len(data)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + data
