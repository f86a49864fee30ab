"""The cluster profile's generated server configuration and its port rules."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from aios.errors import StackError
from aios.settings import Settings
from aios.stack import cluster


def settings_at(tmp_path: Path, port: int) -> Settings:
    return Settings(data_dir=tmp_path, temporal_address=f"127.0.0.1:{port}", postgres_port=45432)


def test_the_config_follows_temporal_s_port_layout_on_the_project_s_postgres(tmp_path: Path) -> None:
    config = yaml.safe_load(cluster.write_config(settings_at(tmp_path, 7233)).read_text())
    rpc = {name: service["rpc"] for name, service in config["services"].items()}
    assert {name: (r["grpcPort"], r["membershipPort"]) for name, r in rpc.items()} == {
        "frontend": (7233, 6933),
        "history": (7234, 6934),
        "matching": (7235, 6935),
        "worker": (7239, 6939),
    }
    assert rpc["frontend"]["httpPort"] == 7243
    persistence = config["persistence"]
    assert persistence["numHistoryShards"] == 4
    stores = persistence["datastores"]
    assert {stores[s]["sql"]["databaseName"] for s in stores} == {"temporal", "temporal_visibility"}
    assert {stores[s]["sql"]["connectAddr"] for s in stores} == {"127.0.0.1:45432"}
    dynamic = yaml.safe_load(Path(config["dynamicConfigClient"]["filepath"]).read_text())
    assert dynamic["system.enableActivityEagerExecution"] == [{"value": True}]


def test_a_port_too_high_for_the_membership_column_is_refused_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="needs a Temporal port of at most 33061"):
        cluster.start(settings_at(tmp_path, 40000), lambda _: None)
