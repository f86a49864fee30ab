"""The codec server as the Web UI uses it: a real process, HTTP, CORS (needs no Temporal)."""

from __future__ import annotations

import base64
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from aios.settings import Settings
from aios.temporal.codec import ENCODING, KEY_ID_METADATA, AesGcmCodec, Keyring, load_keyring
from tests.support.env import child_env
from tests.support.ports import free_port

UI_PORT = 18233  # only named in the Origin headers: nothing needs to listen there
UI_ORIGIN = f"http://localhost:{UI_PORT}"
PLAIN = '"payload-canary-codec-server"'


@dataclass(frozen=True)
class RunningServer:
    url: str
    keyring: Keyring


@pytest.fixture(scope="module")
def codec_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    data_dir = tmp_path_factory.mktemp("codec-server")
    port = free_port()
    env = child_env(
        AIOS_DATA_DIR=str(data_dir),
        AIOS_TEMPORAL_UI_PORT=str(UI_PORT),
        AIOS_PAYLOAD_KEYS=None,
        AIOS_PAYLOAD_KEY_FILE=None,
        AIOS_PAYLOAD_ENCRYPTION=None,
    )
    # The key file exists first, so this test knows the key the server encrypts with.
    keyring = load_keyring(Settings(data_dir=data_dir, payload_keys=None, payload_key_file=None))
    log = (data_dir / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "aios.codec_server", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(url, server, data_dir / "server.log")
        yield RunningServer(url, keyring)
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


def _wait_until_healthy(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert server.poll() is None, f"codec server exited:\n{log.read_text()}"
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"codec server not healthy within 20s:\n{log.read_text()}")


def _plain(data: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=data.encode())


def _body(*payloads: Payload) -> dict[str, object]:
    """Temporal's JSON payload format, as the Web UI sends it: base64 data and metadata."""
    return json_format.MessageToDict(Payloads(payloads=payloads))


def _headers(origin: str = UI_ORIGIN) -> dict[str, str]:
    return {"Origin": origin, "X-Namespace": "default", "Content-Type": "application/json"}


def test_encode_then_decode_round_trips_through_http(codec_server: RunningServer) -> None:
    encoded = httpx.post(
        f"{codec_server.url}/encode", json=_body(_plain(PLAIN), _plain("42")), headers=_headers()
    )
    assert encoded.status_code == 200, encoded.text
    assert encoded.headers["access-control-allow-origin"] == UI_ORIGIN
    sealed = json_format.Parse(encoded.content, Payloads())
    assert [p.metadata["encoding"] for p in sealed.payloads] == [ENCODING, ENCODING]
    assert sealed.payloads[0].metadata[KEY_ID_METADATA] == codec_server.keyring.current.encode()
    assert PLAIN.encode() not in sealed.SerializeToString()

    decoded = httpx.post(f"{codec_server.url}/decode", content=encoded.content, headers=_headers())
    assert decoded.status_code == 200, decoded.text
    assert decoded.json() == _body(_plain(PLAIN), _plain("42"))
    assert decoded.json()["payloads"][0]["metadata"] == {"encoding": base64.b64encode(b"json/plain").decode()}


async def test_decodes_what_a_worker_encrypted_and_passes_plain_payloads(codec_server: RunningServer) -> None:
    [from_worker] = await AesGcmCodec(codec_server.keyring).encode([_plain(PLAIN)])
    body = _body(from_worker, _plain("old-unencrypted"))
    async with httpx.AsyncClient() as http:
        decoded = await http.post(f"{codec_server.url}/decode", json=body, headers=_headers())
    assert decoded.status_code == 200, decoded.text
    assert decoded.json() == _body(_plain(PLAIN), _plain("old-unencrypted"))


def test_cors_preflight_allows_the_web_ui_with_its_namespace_header(codec_server: RunningServer) -> None:
    for origin in (UI_ORIGIN, f"http://127.0.0.1:{UI_PORT}"):
        answer = httpx.options(
            f"{codec_server.url}/decode",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,x-namespace",
            },
        )
        assert answer.status_code == 204
        assert answer.headers["access-control-allow-origin"] == origin
        assert "POST" in answer.headers["access-control-allow-methods"]
        allowed = answer.headers["access-control-allow-headers"].lower()
        assert "x-namespace" in allowed and "content-type" in allowed


def test_other_origins_and_host_names_are_refused(codec_server: RunningServer) -> None:
    foreign = httpx.post(
        f"{codec_server.url}/decode", json=_body(_plain(PLAIN)), headers=_headers("http://evil.test")
    )
    assert foreign.status_code == 403
    assert "access-control-allow-origin" not in foreign.headers
    # A page whose DNS name was rebound to 127.0.0.1 still sends its own name as Host.
    rebound = httpx.get(f"{codec_server.url}/health", headers={"Host": "evil.test"})
    assert rebound.status_code == 403


def test_bad_requests_get_a_clear_answer(codec_server: RunningServer) -> None:
    malformed = httpx.post(f"{codec_server.url}/decode", content=b"not json", headers=_headers())
    assert malformed.status_code == 400
    assert "payloads" in malformed.json()["error"]
    stranger = Payload(metadata={"encoding": ENCODING, KEY_ID_METADATA: b"k-nobody-has"}, data=b"x" * 40)
    unknown = httpx.post(f"{codec_server.url}/decode", json=_body(stranger), headers=_headers())
    assert unknown.status_code == 400
    assert "k-nobody-has" in unknown.json()["error"]
    assert httpx.get(f"{codec_server.url}/nothing-here").status_code == 404
