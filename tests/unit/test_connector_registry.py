"""Connectors built from Settings: missing settings fail at call time, naming the variables."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from activities.deps import build_connectors
from aios.errors import SettingsInvalid
from aios.settings import load_settings
from connectors.actions.base import EffectRequest
from connectors.actions.email import EmailConnector, message_id_for
from connectors.actions.payments import PaymentsConnector
from connectors.breaker import breaker_states
from connectors.errors import NotConfigured
from connectors.redaction import Redactor, safe_url


@pytest.fixture(autouse=True)
def _no_config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for variable in ("AIOS_STRIPE_API_KEY", "AIOS_STRIPE_BASE_URL", "AIOS_SMTP_HOST", "AIOS_SMTP_FROM"):
        monkeypatch.delenv(variable, raising=False)


async def _perform(connector_name: str, **settings: object) -> None:
    async with httpx.AsyncClient() as http:
        connectors = build_connectors(load_settings(**settings), http)
        await connectors[connector_name].perform(EffectRequest(idempotency_key="k", action="act"))


async def test_the_worker_has_every_connector_even_unconfigured() -> None:
    async with httpx.AsyncClient() as http:
        assert set(build_connectors(load_settings(), http)) == {"noop", "http", "payments", "email"}


async def test_payments_without_a_key_names_the_variable_at_call_time() -> None:
    with pytest.raises(NotConfigured, match="set AIOS_STRIPE_API_KEY"):
        await _perform("payments")


async def test_email_without_settings_names_the_variables_at_call_time() -> None:
    with pytest.raises(NotConfigured, match="set AIOS_SMTP_HOST, AIOS_SMTP_FROM"):
        await _perform("email")


async def test_email_with_a_username_needs_a_password() -> None:
    with pytest.raises(NotConfigured, match="set AIOS_SMTP_PASSWORD"):
        await _perform("email", smtp_host="mail.test", smtp_from="a@test", smtp_username="a")


async def test_configured_connectors_are_the_real_ones() -> None:
    settings = load_settings(stripe_api_key="sk_live_x1234", smtp_host="mail.test", smtp_from="a@test")
    async with httpx.AsyncClient() as http:
        connectors = build_connectors(settings, http)
        payments, email = connectors["payments"], connectors["email"]
        assert isinstance(payments, PaymentsConnector)
        assert isinstance(email, EmailConnector)
        states = breaker_states(connectors.values())
        assert sorted((state.name, state.state) for state in states) == [
            ("email", "closed"),
            ("http", "closed"),
            ("payments", "closed"),
        ]
        await payments.aclose()


@pytest.mark.parametrize(
    ("base_url", "key", "expected"),
    [
        ("http://127.0.0.1:12111", None, "sk_test_123"),
        ("http://localhost:12111", None, "sk_test_123"),
        ("http://[::1]:12111", None, "sk_test_123"),
        ("https://api.stripe.com", None, None),
        ("https://api.stripe.com", "sk_live_real9876", "sk_live_real9876"),
        ("http://127.0.0.1:12111", "sk_test_mine", "sk_test_mine"),
    ],
)
def test_the_test_key_is_a_default_only_for_a_loopback_stripe(
    base_url: str, key: str | None, expected: str | None
) -> None:
    settings = load_settings(stripe_base_url=base_url, stripe_api_key=key)
    resolved = settings.resolved_stripe_api_key
    assert (resolved.get_secret_value() if resolved else None) == expected


def test_stripe_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIOS_STRIPE_API_KEY", "sk_live_fromenv42")
    settings = load_settings()
    assert settings.resolved_stripe_api_key is not None
    assert settings.resolved_stripe_api_key.get_secret_value() == "sk_live_fromenv42"
    assert "sk_live_fromenv42" not in repr(settings)


def test_a_bad_stripe_url_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIOS_STRIPE_BASE_URL", "api.stripe.com")
    with pytest.raises(SettingsInvalid, match="AIOS_STRIPE_BASE_URL: expected an http:// or https:// URL"):
        load_settings()


def test_message_id_is_derived_from_the_key() -> None:
    assert message_id_for("a") == message_id_for("a")
    assert message_id_for("a") != message_id_for("b")
    assert message_id_for("a") == "<ca978112ca1bbdcafac231b39a23dc4d@aios>"  # sha256("a")[:32]


def test_redactor_masks_named_secrets_and_credential_shapes() -> None:
    redact = Redactor(["hunter22", None, "ab"])
    text = redact("pw hunter22, Bearer abc.def, Basic dXNlcjpwYXNz, sk_test_4eC39Hq, ?api_key=zz&x=ab")
    assert text == (
        "pw [REDACTED], Bearer [REDACTED], Basic [REDACTED], [REDACTED], ?api_key=[REDACTED]&x=ab"
    )


def test_safe_url_drops_user_info_and_query() -> None:
    assert safe_url("https://u:p@h.test:8443/v1/x?key=s") == "https://h.test:8443/v1/x"
