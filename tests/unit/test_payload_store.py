"""How the payload store plugs into the data converter, without a database.

The database URL points at a closed port: a payload that stays inline never opens a connection
(or these tests would fail), and one over the threshold fails with the store's own error.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.converter import StorageDriverClaim, StorageDriverRetrieveContext

from aios.errors import SettingsInvalid
from aios.settings import Settings, load_settings
from aios.temporal.connection import data_converter
from aios.temporal.payload_store import (
    DRIVER_NAME,
    PayloadStoreError,
    PayloadStoreUnavailable,
    PostgresPayloadDriver,
)

CLOSED_DATABASE = "postgresql://aios:hunter2@127.0.0.1:1/aios"
KEYS = SecretStr("k1:" + base64.b64encode(b"k" * 32).decode())


@pytest.fixture(autouse=True)
def no_aios_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in [name for name in os.environ if name.startswith("AIOS_")]:
        monkeypatch.delenv(variable)


def offline_settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {"data_dir": tmp_path, "payload_keys": KEYS, "database_url": CLOSED_DATABASE}
    return Settings(**{**values, **overrides})  # type: ignore[arg-type]


def test_the_threshold_defaults_to_64_kib_and_refuses_negatives(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_settings().payload_offload_threshold == 64 * 1024
    monkeypatch.setenv("AIOS_PAYLOAD_OFFLOAD_THRESHOLD", "-1")
    with pytest.raises(SettingsInvalid, match="AIOS_PAYLOAD_OFFLOAD_THRESHOLD"):
        load_settings()


def test_every_converter_carries_the_postgres_driver_at_the_threshold(tmp_path: Path) -> None:
    storage = data_converter(offline_settings(tmp_path, payload_offload_threshold=1000)).external_storage
    assert storage is not None
    assert [driver.name() for driver in storage.drivers] == [DRIVER_NAME]
    assert storage.payload_size_threshold == 1000


async def test_a_payload_under_the_threshold_stays_inline_and_encrypted(tmp_path: Path) -> None:
    converter = data_converter(offline_settings(tmp_path, payload_offload_threshold=1000))
    [encoded] = await converter.encode(["x" * 500])
    assert encoded.metadata["encoding"] == b"binary/encrypted"
    assert await converter.decode([encoded], [str]) == ["x" * 500]


async def test_a_payload_over_the_threshold_goes_to_the_store(tmp_path: Path) -> None:
    converter = data_converter(offline_settings(tmp_path, payload_offload_threshold=1000))
    with pytest.raises(PayloadStoreUnavailable, match=r"postgresql://aios:\*\*\*@127.0.0.1:1/aios") as failed:
        await converter.encode(["x" * 2000])
    assert "hunter2" not in str(failed.value)


async def test_threshold_zero_offloads_nothing_but_still_knows_the_driver(tmp_path: Path) -> None:
    converter = data_converter(offline_settings(tmp_path, payload_offload_threshold=0))
    [encoded] = await converter.encode(["x" * 200_000])
    assert encoded.metadata["encoding"] == b"binary/encrypted"
    # Registered still, so that histories written while offloading was on stay readable.
    assert converter.external_storage is not None
    assert [driver.name() for driver in converter.external_storage.drivers] == [DRIVER_NAME]


@pytest.mark.parametrize("claim_data", [{}, {"sha256": "zz"}, {"sha256": "ab" * 31}])
async def test_a_malformed_reference_is_refused_before_any_query(claim_data: dict[str, str]) -> None:
    driver = PostgresPayloadDriver(CLOSED_DATABASE)
    with pytest.raises(PayloadStoreError, match="malformed"):
        await driver.retrieve(StorageDriverRetrieveContext(), [StorageDriverClaim(claim_data=claim_data)])
