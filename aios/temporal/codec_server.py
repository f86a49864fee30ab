"""The codec server, so the Temporal Web UI shows decrypted payloads: `python -m aios.codec_server`.

Temporal's remote codec protocol: `POST /encode` and `POST /decode` take and return
`{"payloads": [...]}` in Temporal's JSON payload format (base64 `data` and metadata values).
The Web UI calls it from the operator's browser, so it answers CORS preflights for the UI's
own origins only. It binds to 127.0.0.1 and refuses requests addressed to another host name,
so a web page that rebinds its DNS name to 127.0.0.1 cannot read payloads through it.

Plain asyncio and no web framework: four routes do not justify a dependency.
`aios dev up` starts it (`start`), `aios dev down` stops it, `aios dev status` asks `healthy`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from http import HTTPStatus

from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.converter import PayloadCodec

from aios.errors import AiosError
from aios.settings import Settings, load_settings
from aios.stack.process import ServiceFiles, ensure_port_free, port_open, spawn, terminate, wait_until
from aios.temporal.codec import PayloadDecryptionFailed, codec_for

SERVICE = "codec-server"
HOST = "127.0.0.1"
MAX_BODY_BYTES = 32 * 1024 * 1024  # a batch of payloads near Temporal's own size limits
MAX_HEADERS = 100
READ_TIMEOUT = 30.0
ALLOWED_HEADERS = "Content-Type, X-Namespace, Authorization"
log = logging.getLogger("aios.temporal.codec_server")


class _Refused(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""


@dataclass
class Response:
    status: HTTPStatus
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def _json(status: HTTPStatus, document: object) -> Response:
    return Response(status, json.dumps(document).encode(), {"Content-Type": "application/json"})


class CodecServer:
    """Routes requests to the codec; `codec=None` (encryption off) passes payloads through."""

    def __init__(self, codec: PayloadCodec | None, *, port: int, ui_port: int) -> None:
        self.codec = codec
        self.port = port
        self.origins = {f"http://127.0.0.1:{ui_port}", f"http://localhost:{ui_port}"}
        self.hosts = {f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"}

    async def respond(self, request: Request) -> Response:
        if request.headers.get("host", "").lower() not in self.hosts:
            return _json(HTTPStatus.FORBIDDEN, {"error": "unexpected Host header"})
        origin = request.headers.get("origin")
        if origin is not None and origin not in self.origins:
            return _json(HTTPStatus.FORBIDDEN, {"error": f"origin {origin} is not the Temporal Web UI"})
        response = await self._route(request)
        if origin is not None:
            response.headers.update(self._cors(origin))
        return response

    async def _route(self, request: Request) -> Response:
        route = (request.method, request.path.rstrip("/") or "/")
        if request.method == "OPTIONS":
            return Response(HTTPStatus.NO_CONTENT)
        if route == ("GET", "/health"):
            return _json(HTTPStatus.OK, {"status": "ok", "encryption": self.codec is not None})
        if route in {("POST", "/encode"), ("POST", "/decode")}:
            return await self._transform(request.path.strip("/"), request.body)
        return _json(HTTPStatus.NOT_FOUND, {"error": "the codec server knows POST /encode and POST /decode"})

    async def _transform(self, action: str, body: bytes) -> Response:
        try:
            payloads = json_format.Parse(body or b"{}", Payloads(), ignore_unknown_fields=True)
        except json_format.ParseError as exc:
            return _json(HTTPStatus.BAD_REQUEST, {"error": f'expected {{"payloads": [...]}}: {exc}'})
        try:
            result = await self._apply(action, list(payloads.payloads))
        except PayloadDecryptionFailed as exc:
            return _json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
        text = json_format.MessageToJson(Payloads(payloads=result))
        return Response(HTTPStatus.OK, text.encode(), {"Content-Type": "application/json"})

    async def _apply(self, action: str, payloads: list[Payload]) -> list[Payload]:
        if self.codec is None:
            return payloads
        if action == "encode":
            return await self.codec.encode(payloads)
        return await self.codec.decode(payloads)

    def _cors(self, origin: str) -> dict[str, str]:
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": "POST, GET, OPTIONS",
            "Access-Control-Allow-Headers": ALLOWED_HEADERS,
            "Access-Control-Allow-Credentials": "true",
            "Access-Control-Max-Age": "600",
            "Vary": "Origin",
        }

    # -- HTTP/1.1 over asyncio streams: one request per connection ---------------------------

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(_read_request(reader), READ_TIMEOUT)
            response = await self.respond(request)
        except _Refused as exc:
            response = _json(exc.status, {"error": str(exc)})
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        except Exception:  # one bad request must not stop the server; its payloads are not logged
            log.exception("codec request failed")
            response = _json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error, see the log"})
        with contextlib.suppress(ConnectionError):
            writer.write(_serialize(response))
            await writer.drain()
        writer.close()


async def _read_request(reader: asyncio.StreamReader) -> Request:
    request_line = (await reader.readline()).decode("latin-1").split()
    if len(request_line) != 3:
        raise _Refused(HTTPStatus.BAD_REQUEST, "malformed request line")
    method, target, _ = request_line
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS):
        line = (await reader.readline()).decode("latin-1").strip()
        if not line:
            break
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    else:
        raise _Refused(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "too many headers")
    length_text = headers.get("content-length", "0") or "0"
    if not length_text.isdigit():
        raise _Refused(HTTPStatus.BAD_REQUEST, "malformed Content-Length")
    length = int(length_text)
    if length > MAX_BODY_BYTES:
        raise _Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {MAX_BODY_BYTES} bytes")
    body = await reader.readexactly(length) if length else b""
    return Request(method.upper(), target.split("?", 1)[0], headers, body)


def _serialize(response: Response) -> bytes:
    headers = {**response.headers, "Content-Length": str(len(response.body)), "Connection": "close"}
    head = f"HTTP/1.1 {response.status.value} {response.status.phrase}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return (head + "\r\n").encode("latin-1") + response.body


async def serve(settings: Settings, port: int, host: str = HOST) -> None:
    """Serve until SIGTERM or SIGINT."""
    server = CodecServer(codec_for(settings), port=port, ui_port=settings.temporal_ui_port)
    listener = await asyncio.start_server(server.handle, host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("codec server on http://%s:%d for the Web UI on port %d", host, port, settings.temporal_ui_port)
    async with listener:
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aios.codec_server", description=__doc__)
    parser.add_argument("--port", type=int, default=None, help="default: AIOS_CODEC_PORT (8234)")
    parser.add_argument(
        "--host", default=HOST, help="default 127.0.0.1; 0.0.0.0 only in a container with a published port"
    )
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings()
        asyncio.run(serve(settings, arguments.port or settings.codec_port, arguments.host))
    except AiosError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


# -- as a service of the local stack ----------------------------------------------------------------


def url(settings: Settings) -> str:
    return f"http://{HOST}:{settings.codec_port}"


def files(settings: Settings) -> ServiceFiles:
    return ServiceFiles(SERVICE, settings.data_dir)


def healthy(settings: Settings) -> bool:
    if not port_open(settings.codec_port):
        return False
    try:
        with urllib.request.urlopen(f"{url(settings)}/health", timeout=3) as answer:
            return bool(answer.status == HTTPStatus.OK)
    except (urllib.error.URLError, OSError):
        return False


def start(settings: Settings) -> str:
    """Start the codec server unless it runs; return a one-line description."""
    service = files(settings)
    if healthy(settings):
        pid = service.read_pid()
        return f"already running (pid {pid})" if pid else "already running (not started by aios)"
    ensure_port_free(settings.codec_port, "the codec server", "AIOS_CODEC_PORT")
    argv = [sys.executable, "-m", "aios.codec_server", "--port", str(settings.codec_port)]
    # The settings in force, not only the environment's: its keys live in this data directory,
    # and `aios dev up` elsewhere reads the data directory back from its environment (stack.owner).
    env = {
        **os.environ,
        "AIOS_DATA_DIR": str(settings.data_dir.resolve()),
        "AIOS_TEMPORAL_UI_PORT": str(settings.temporal_ui_port),
    }
    pid = spawn(service, argv, env=env)
    wait_until(
        lambda: healthy(settings),
        what="the codec server",
        timeout=30,
        alive=lambda: service.read_pid() is not None,
        log_file=service.log_file,
    )
    return f"started (pid {pid})"


def stop(settings: Settings) -> str:
    pid = files(settings).read_pid()
    if pid is None:
        return "not running"
    terminate(pid)
    files(settings).pid_file.unlink(missing_ok=True)
    return "stopped"


if __name__ == "__main__":
    sys.exit(main())
