import os
from pathlib import Path

import pytest

from aios.errors import SettingsInvalid
from aios.settings import load_settings, split_host_port


@pytest.fixture(autouse=True)
def no_aios_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests state their own configuration: the caller's AIOS_* variables must not leak in."""
    for variable in [name for name in os.environ if name.startswith("AIOS_")]:
        monkeypatch.delenv(variable)


def test_defaults_point_at_the_local_stack(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.temporal_address == "127.0.0.1:7233"
    assert settings.temporal_is_local
    assert settings.postgres_is_local
    assert settings.resolved_database_url == "postgresql://aios@127.0.0.1:55432/aios"
    assert settings.resolved_qdrant_path == Path(".aios/qdrant")


def test_environment_overrides_toml_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "aios.toml").write_text('task_queue = "from-file"\ntemporal_namespace = "ns-file"\n')
    monkeypatch.setenv("AIOS_TASK_QUEUE", "from-env")
    settings = load_settings()
    assert settings.task_queue == "from-env"
    assert settings.temporal_namespace == "ns-file"


def test_config_file_can_be_named_by_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "elsewhere.toml"
    config.write_text('qdrant_url = "http://127.0.0.1:6333"\n')
    monkeypatch.setenv("AIOS_CONFIG", str(config))
    assert load_settings().qdrant_url == "http://127.0.0.1:6333"


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("AIOS_TEMPORAL_ADDRESS", "localhost", "expected host:port"),
        ("AIOS_TEMPORAL_ADDRESS", "host:99999", "expected host:port"),
        ("AIOS_POSTGRES_PORT", "five", "valid integer"),
        ("AIOS_DATABASE_URL", "mysql://x", "postgresql://"),
        ("AIOS_QDRANT_URL", "127.0.0.1:6333", "http://"),
        ("AIOS_TEMPORAL_TLS_CERT", "/nonexistent/cert.pem", "does not exist"),
    ],
)
def test_invalid_value_names_the_variable_and_the_expected_form(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str, value: str, expected: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsInvalid) as caught:
        load_settings()
    assert variable in str(caught.value)
    assert expected in str(caught.value)


def test_unknown_key_in_config_file_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "aios.toml").write_text('task_qeue = "typo"\n')
    with pytest.raises(SettingsInvalid, match="AIOS_TASK_QEUE: is not a known setting"):
        load_settings()


def test_database_password_is_not_shown(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AIOS_DATABASE_URL", "postgresql://u:hunter2@db:5432/aios")
    settings = load_settings()
    assert "hunter2" not in repr(settings)
    assert not settings.postgres_is_local


def test_api_key_makes_temporal_remote(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AIOS_TEMPORAL_API_KEY", "secret")
    assert not load_settings().temporal_is_local


def test_split_host_port_accepts_ipv6() -> None:
    assert split_host_port("[::1]:7233") == ("[::1]", 7233)
