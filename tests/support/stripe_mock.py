"""stripe-mock (Stripe's official API mock) on loopback, for the payments connector's tests.

`infra/local/setup.sh` builds the binary into `.aios/bin`; `STRIPE_MOCK` names another one.
The mock is stateless: it validates each request against Stripe's OpenAPI spec and answers
with fixture objects, echoing the Idempotency-Key header, but it never deduplicates.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
LISTENING = re.compile(r"Listening for HTTP at address: (\S+)")
START_TIMEOUT = 30.0


@dataclass
class StripeMock:
    url: str
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)


def stripe_mock_binary() -> Path | None:
    named = os.environ.get("STRIPE_MOCK")
    candidates = [Path(named)] if named else []
    candidates.append(REPO / ".aios" / "bin" / "stripe-mock")
    on_path = shutil.which("stripe-mock")
    if on_path:
        candidates.append(Path(on_path))
    return next((path for path in candidates if path.is_file() and os.access(path, os.X_OK)), None)


def start_stripe_mock(binary: Path) -> StripeMock:
    # Empty ports: the system picks free ones and stripe-mock prints them, so there is no race.
    process = subprocess.Popen(
        [str(binary), "-http-addr", "127.0.0.1:", "-https-addr", "127.0.0.1:"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    output: list[str] = []
    threading.Thread(target=_drain, args=(process, lines, output), daemon=True).start()
    try:
        address = _wait_for_address(process, lines)
        mock = StripeMock(url=f"http://{address}", process=process, output=output)
        _wait_until_answering(mock)
    except BaseException:
        stop_stripe_mock(process)
        raise
    return mock


def stop_stripe_mock(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@pytest.fixture(scope="session", name="stripe_mock")
def stripe_mock_fixture() -> Iterator[StripeMock]:
    binary = stripe_mock_binary()
    if binary is None:
        pytest.skip("stripe-mock is not installed: run `bash infra/local/setup.sh` (needs Go)")
    mock = start_stripe_mock(binary)
    yield mock
    stop_stripe_mock(mock.process)


def _drain(process: subprocess.Popen[str], lines: queue.Queue[str], output: list[str]) -> None:
    """Read the mock's output for as long as it runs, so a full pipe never blocks it."""
    assert process.stdout is not None
    for line in process.stdout:
        output.append(line.rstrip())
        lines.put(line)


def _wait_for_address(process: subprocess.Popen[str], lines: queue.Queue[str]) -> str:
    deadline = time.monotonic() + START_TIMEOUT
    seen: list[str] = []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            if process.poll() is not None:
                break
            continue
        seen.append(line.rstrip())
        if match := LISTENING.search(line):
            return match.group(1)
    raise RuntimeError("stripe-mock did not start listening:\n" + "\n".join(seen))


def _wait_until_answering(mock: StripeMock) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        try:
            response = httpx.get(
                f"{mock.url}/v1/customers", headers={"Authorization": "Bearer sk_test_123"}, timeout=2
            )
            if response.status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("stripe-mock never answered:\n" + "\n".join(mock.output))
