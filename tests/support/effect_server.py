"""A loopback HTTP service that applies effects once per Idempotency-Key and counts them.

It stands in for a third-party API in tests: every request is recorded, an effect is
applied only for a key it has not seen, and a repeated key gets the first answer back,
as Stripe and most payment APIs do. Faults can be queued to exercise the resilient paths,
and `refusals` makes a path refuse every POST for good (a final 4xx, for sagas).

`GET <path>?idempotency_key=<key>` is the lookup a reconciler uses: 200 with the stored
response when the key's effect was applied, 404 naming the key when it was not. Lookups
never apply anything and never consume faults; each is recorded in `lookups`.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Fault:
    """What the next matching request gets instead of a normal answer."""

    status: int | None = None  # answer with this status without applying the effect
    retry_after: float | None = None
    hang_seconds: float = 0.0  # sleep before answering (past the client's timeout)
    apply_then_hang: bool = False  # apply the effect, then hang: the caller sees a timeout
    reset: bool = False  # close the connection without an answer


class _Server(ThreadingHTTPServer):
    # The default listen backlog of 5 resets connections when benchmarks open 20 at once.
    request_queue_size = 128
    daemon_threads = True


@dataclass
class EffectServer:
    requests: list[dict[str, Any]] = field(default_factory=list)
    applied: Counter[str] = field(default_factory=Counter)  # effects per idempotency key
    responses: dict[str, dict[str, Any]] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    lookups: list[str] = field(default_factory=list)  # idempotency keys asked about by GET
    # Path suffix -> status: a service that says no for good (e.g. 422) to every POST there,
    # never applying it and leaving the fault queue to the other paths.
    refusals: dict[str, int] = field(default_factory=dict)
    # Set: every lookup answers this status (e.g. 503), so a reconciler can never tell.
    lookup_status: int | None = None
    # (time.monotonic(), idempotency key) of every POST as it arrives, before any fault.
    arrivals: list[tuple[float, str]] = field(default_factory=list)
    # Seconds every POST takes before it is applied (a real API's service time).
    latency_seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> EffectServer:
        server = _Server(("127.0.0.1", 0), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def effects_for(self, path_suffix: str) -> int:
        with self.lock:
            return sum(1 for r in self.requests if r["path"].endswith(path_suffix) and r["applied"])

    def total_effects(self) -> int:
        with self.lock:
            return sum(self.applied.values())

    def retried_after(self, moment: float) -> float | None:
        """Seconds from `moment` (a SIGKILL) to the first re-attempt of an effect that had
        already arrived before it: how long an interrupted effect waited for a live worker."""
        with self.lock:
            before = {key for at, key in self.arrivals if at < moment}
            again = [at for at, key in self.arrivals if at >= moment and key in before]
        return min(again) - moment if again else None

    def duplicates(self) -> int:
        """Keys whose effect was applied more than once: must always be zero."""
        with self.lock:
            return sum(1 for count in self.applied.values() if count > 1)


def _handler_for(state: EffectServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            return

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            key = self.headers.get("Idempotency-Key", "")
            with state.lock:
                state.arrivals.append((time.monotonic(), key))
            if self._refuse(key):
                return
            with state.lock:
                fault = state.faults.pop(0) if state.faults else None
            if fault is not None and self._inject(fault, key, body):
                return
            if state.latency_seconds:
                time.sleep(state.latency_seconds)
            response, applied = self._apply(key, body)
            # Recorded before answering: a client that has its answer must find its request here.
            with state.lock:
                state.requests.append({"path": self.path, "key": key, "applied": applied})
            self._answer(200, response)

        def do_GET(self) -> None:
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            key = (query.get("idempotency_key") or [""])[0]
            if not key:
                self._answer(400, {"error": "a lookup needs ?idempotency_key=<key>"})
                return
            with state.lock:
                state.lookups.append(key)
                stored = state.responses.get(key)
            if state.lookup_status is not None:
                self._answer(state.lookup_status, {"error": "the lookup is unavailable"})
            elif stored is None:
                self._answer(404, {"error": f"no effect with idempotency key {key}"})
            else:
                self._answer(200, stored)

        def _apply(self, key: str, body: bytes) -> tuple[dict[str, Any], bool]:
            with state.lock:
                if key and key in state.responses:
                    return state.responses[key], False
                state.applied[key] += 1
                response = {
                    "id": f"fx_{len(state.responses) + 1}",
                    "key": key,
                    "request": json.loads(body or b"{}"),
                }
                if key:
                    state.responses[key] = response
                return response, True

        def _refuse(self, key: str) -> bool:
            with state.lock:
                status = next((s for suffix, s in state.refusals.items() if self.path.endswith(suffix)), None)
                if status is not None:
                    state.requests.append({"path": self.path, "key": key, "applied": False})
            if status is None:
                return False
            self._answer(status, {"error": f"refused: {self.path} does not accept this request"})
            return True

        def _inject(self, fault: Fault, key: str, body: bytes) -> bool:
            if fault.reset:
                self.close_connection = True
                self.connection.close()
                return True
            if fault.apply_then_hang:
                self._apply(key, body)
                with state.lock:
                    state.requests.append({"path": self.path, "key": key, "applied": True})
                time.sleep(fault.hang_seconds or 5)
                return True
            if fault.hang_seconds:
                time.sleep(fault.hang_seconds)
            if fault.status is not None:
                headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
                with state.lock:
                    state.requests.append({"path": self.path, "key": key, "applied": False})
                self._answer(fault.status, {"error": "injected"}, headers)
                return True
            return False

        def _answer(
            self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
        ) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

    return Handler
