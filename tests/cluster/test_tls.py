"""The client's TLS settings against the real server serving mutual TLS with a self-signed CA.

The cluster profile's frontend serves TLS when AIOS_TEMPORAL_SERVER_TLS_CERT/KEY are set, and
asks for a client certificate signed by AIOS_TEMPORAL_TLS_CA when the clients carry one
(AIOS_TEMPORAL_TLS_CERT/KEY). Through the doors a user takes: `aios dev up` and `status`, an
`aios worker` serving a run started with `aios run`, the Web UI's API (the ui-server dials the
frontend over TLS), and a client with the wrong files, which gets one line saying so.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from aios.settings import load_settings
from aios.stack import cluster
from tests.support.certificates import Authority, Pair
from tests.support.stacks import own_stack_env, running

AIOS = [sys.executable, "-m", "aios.cli"]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Pair | Path]:
    directory = tmp_path_factory.mktemp("pki")
    local = Authority.create(directory, "local")
    stranger = Authority.create(directory, "stranger")
    return {
        "ca": local.cert,
        "server": local.server(),
        "client": local.client(),
        "stranger": stranger.client(),
        "stranger-ca": stranger.cert,
    }


def _files(pki: dict[str, Pair | Path], name: str) -> Pair:
    pair = pki[name]
    assert isinstance(pair, Pair)
    return pair


@pytest.fixture(scope="module")
def stack(pki: dict[str, Pair | Path]) -> Iterator[dict[str, str]]:
    shared = load_settings()
    if not cluster.binary(shared, cluster.SERVER).exists():
        pytest.skip("the cluster's binaries are not built: `make test-cluster` builds them")
    server, client = _files(pki, "server"), _files(pki, "client")
    env = own_stack_env(
        shared,
        "tls",
        "cluster",
        AIOS_TASK_QUEUE="aios",
        COLUMNS="250",
        AIOS_TEMPORAL_SERVER_TLS_CERT=str(server.cert),
        AIOS_TEMPORAL_SERVER_TLS_KEY=str(server.key),
        AIOS_TEMPORAL_TLS_CA=str(pki["ca"]),
        AIOS_TEMPORAL_TLS_CERT=str(client.cert),
        AIOS_TEMPORAL_TLS_KEY=str(client.key),
    )
    with running(env) as started:
        yield started


def _aios(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AIOS, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_a_run_completes_over_mutual_tls_and_the_web_ui_lists_it(stack: dict[str, str]) -> None:
    status = _aios(stack, "dev", "status")
    [temporal_row] = [line for line in status.stdout.splitlines() if "temporal" in line.lower()][:1]
    assert "healthy" in temporal_row, status.stdout  # the CLI's health check dials with the TLS files
    worker = subprocess.Popen(
        [*AIOS, "worker"], env=stack, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        ran = _aios(stack, "run", "noop-worker", "--input", '{"customer": "c-tls"}', "--wait", timeout=180)
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    run_id = next(word.rstrip(":") for word in ran.stdout.split() if word.startswith("noop-worker-"))
    listed = _aios(stack, "runs")
    assert listed.returncode == 0 and run_id in listed.stdout, listed.stdout + listed.stderr
    ui = f"http://127.0.0.1:{stack['AIOS_TEMPORAL_UI_PORT']}/api/v1/namespaces/default/workflows"
    answer = httpx.get(ui, timeout=30)
    assert answer.status_code == 200 and run_id in answer.text, answer.text[:500]


def test_an_api_key_travels_with_the_tls_files(stack: dict[str, str]) -> None:
    # The local server checks no key (Temporal Cloud does); the client must still send it over TLS.
    listed = _aios({**stack, "AIOS_TEMPORAL_API_KEY": "local-test-key"}, "runs")
    assert listed.returncode == 0, listed.stderr


# What each message must name. The server closes a handshake it refuses, and whether the client
# reads the alert or a closed connection first is timing, so two of them share the general advice.
WRONG_FILES = {
    "no TLS": "set AIOS_TEMPORAL_TLS_CA",
    "no client certificate": "AIOS_TEMPORAL_TLS_CERT and AIOS_TEMPORAL_TLS_KEY",
    "a stranger's client certificate": "AIOS_TEMPORAL_TLS_CERT and AIOS_TEMPORAL_TLS_KEY",
    "a CA that did not sign the server": "not signed by the CA in AIOS_TEMPORAL_TLS_CA",
}


@pytest.mark.parametrize("wrong", sorted(WRONG_FILES))
def test_a_client_with_the_wrong_files_is_told_which_to_fix(
    stack: dict[str, str], pki: dict[str, Pair | Path], wrong: str
) -> None:
    env = dict(stack)
    stranger = _files(pki, "stranger")
    if wrong == "no TLS":
        for name in ("AIOS_TEMPORAL_TLS_CA", "AIOS_TEMPORAL_TLS_CERT", "AIOS_TEMPORAL_TLS_KEY"):
            env.pop(name)
    elif wrong == "no client certificate":
        env.pop("AIOS_TEMPORAL_TLS_CERT")
        env.pop("AIOS_TEMPORAL_TLS_KEY")
    elif wrong == "a stranger's client certificate":
        env |= {"AIOS_TEMPORAL_TLS_CERT": str(stranger.cert), "AIOS_TEMPORAL_TLS_KEY": str(stranger.key)}
    else:
        env["AIOS_TEMPORAL_TLS_CA"] = str(pki["stranger-ca"])
    listed = _aios(env, "runs", timeout=120)
    assert listed.returncode != 0
    lines = listed.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in listed.stderr, listed.stderr
    assert "cannot reach Temporal at" in lines[0] and WRONG_FILES[wrong] in lines[0], lines[0]


def test_the_server_tls_settings_are_checked_before_anything_starts(
    stack: dict[str, str], pki: dict[str, Pair | Path]
) -> None:
    server = _files(pki, "server")
    cases = {
        "AIOS_TEMPORAL_SERVER_TLS_KEY": {"AIOS_TEMPORAL_SERVER_TLS_CERT": str(server.cert)},
        "AIOS_TEMPORAL_PROFILE": {
            "AIOS_TEMPORAL_PROFILE": "dev",
            "AIOS_TEMPORAL_SERVER_TLS_CERT": str(server.cert),
            "AIOS_TEMPORAL_SERVER_TLS_KEY": str(server.key),
        },
    }
    for variable, overrides in cases.items():
        env = {k: v for k, v in stack.items() if not k.startswith("AIOS_TEMPORAL_SERVER_TLS")} | overrides
        refused = _aios(env, "dev", "status")
        assert refused.returncode != 0 and variable in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr
