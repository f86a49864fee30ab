"""A loopback server that speaks enough of the OpenAI API to test the model connector.

`/v1/chat/completions` answers from a script, one `Reply` per request in order (tool calls,
a final text, or an error status with Retry-After); when the script runs out it says "done".
With `responder` set, each chat request is answered by calling it with the request's body
instead (a benchmark's model that picks its tool call from the conversation), after
`latency(body)` seconds when that is set too. `/v1/embeddings` answers deterministic vectors
derived from each text. Every request's body and headers are recorded. With `api_key` set, a
request without that bearer key gets the 401 OpenAI gives, which (unlike OpenAI) echoes the key
it got, so tests can prove redaction.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

EMBEDDING_DIMENSIONS = 8
# The key the integration tests' fake asks for (tests/integration/conftest.py).
FAKE_OPENAI_KEY = "sk-integration-SecretKey-4242"


@dataclass(frozen=True)
class Reply:
    """One scripted answer of /v1/chat/completions.

    `tool_calls` are (name, arguments): a dict is sent as JSON text, as OpenAI does; a str is
    sent verbatim, which is how a test injects malformed arguments.
    """

    text: str | None = None
    tool_calls: tuple[tuple[str, dict[str, Any] | str], ...] = ()
    prompt_tokens: int = 20
    completion_tokens: int = 5
    status: int = 200
    retry_after: str | None = None
    model: str | None = None  # the model named in the answer; the request's when None


@dataclass(frozen=True)
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FakeOpenAI:
    script: list[Reply] = field(default_factory=list)
    api_key: str | None = None
    requests: list[Recorded] = field(default_factory=list)
    responder: Callable[[dict[str, Any]], Reply] | None = None  # answers instead of `script`
    latency: Callable[[dict[str, Any]], float] | None = None  # seconds before each chat answer
    record_requests: bool = True  # False: a long benchmark keeps no request bodies
    lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        """The base URL a client is configured with, API version included."""
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def start(self) -> FakeOpenAI:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def chats(self) -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def next_reply(self, body: dict[str, Any]) -> Reply:
        if self.responder is not None:
            return self.responder(body)
        with self.lock:
            return self.script.pop(0) if self.script else Reply(text="done")

    def record(self, recorded: Recorded) -> None:
        if not self.record_requests:
            return
        with self.lock:
            self.requests.append(recorded)


def embedding_of(text: str) -> list[float]:
    """The fake's vector for a text: the same text always gets the same vector."""
    digest = hashlib.sha256(text.encode()).digest()
    return [byte / 255 for byte in digest[:EMBEDDING_DIMENSIONS]]


def completion(reply: Reply, model: str) -> dict[str, Any]:
    calls = [
        {
            "id": f"call_fake_{i}",
            "type": "function",
            "function": {"name": name, "arguments": args if isinstance(args, str) else json.dumps(args)},
        }
        for i, (name, args) in enumerate(reply.tool_calls, start=1)
    ]
    message: dict[str, Any] = {"role": "assistant", "content": reply.text}
    if calls:
        message["tool_calls"] = calls
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "model": reply.model or model,
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}],
        "usage": {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
        },
    }


def _embeddings(body: dict[str, Any]) -> dict[str, Any]:
    texts = body.get("input", [])
    texts = [texts] if isinstance(texts, str) else texts
    data = [
        {"object": "embedding", "index": i, "embedding": embedding_of(text)} for i, text in enumerate(texts)
    ]
    return {"object": "list", "model": body.get("model"), "data": data, "usage": {"prompt_tokens": 1}}


def _handler_for(state: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            return

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = json.loads(raw or b"{}")
            state.record(Recorded(self.path, dict(self.headers.items()), body))
            if not self._authorized():
                return
            if self.path == "/v1/chat/completions":
                self._chat(body)
            elif self.path == "/v1/embeddings":
                self._answer(200, _embeddings(body))
            else:
                self._answer(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

        def _authorized(self) -> bool:
            if state.api_key is None:
                return True
            presented = self.headers.get("Authorization", "")
            if presented == f"Bearer {state.api_key}":
                return True
            given = presented.removeprefix("Bearer ")
            error = {"message": f"Incorrect API key provided: {given}.", "type": "invalid_request_error"}
            self._answer(401, {"error": error})
            return False

        def _chat(self, body: dict[str, Any]) -> None:
            if state.latency is not None:
                time.sleep(state.latency(body))  # this request's thread only
            reply = state.next_reply(body)
            if reply.status != 200:
                headers = {"Retry-After": reply.retry_after} if reply.retry_after is not None else {}
                error = {"message": f"injected {reply.status}", "type": "injected"}
                self._answer(reply.status, {"error": error}, headers)
                return
            self._answer(200, completion(reply, str(body.get("model", ""))))

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
