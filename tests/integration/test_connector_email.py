"""The email connector against a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx
import pytest

from activities.deps import build_connectors
from aios.settings import load_settings
from connectors.actions.base import EffectRequest
from connectors.actions.email import EmailConnector, SmtpConfig, message_id_for
from connectors.breaker import BreakerPolicy, CircuitBreaker
from connectors.errors import (
    CircuitOpen,
    ClientError,
    ConnectFailed,
    NotConfigured,
    ServerError,
    TimeoutError_,
)
from tests.support.smtp_server import ReceivedMail, SmtpServer, smtp_server_fixture  # noqa: F401  (the fixture)

SENDER = "aios@example.com"
MAIL = {"to": "ada@example.com", "subject": "Invoice paid", "body": "Thank you."}


def _connector(server: SmtpServer, **config: object) -> EmailConnector:
    settings = {"host": server.host, "port": server.port, "sender": SENDER, "starttls": False, **config}
    return EmailConnector(SmtpConfig(**settings))  # type: ignore[arg-type]


def _mail(key: str = "run-1/step-2/notify", **params: object) -> EffectRequest:
    return EffectRequest(idempotency_key=key, action="notify", params={**MAIL, **params})


def _body(mail: ReceivedMail) -> bytes:
    payload = mail.message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.strip()  # without the line ending SMTP adds


async def test_a_mail_arrives_with_a_message_id_derived_from_the_key(smtp_server: SmtpServer) -> None:
    result = await _connector(smtp_server).perform(_mail())
    assert len(smtp_server.received) == 1
    mail = smtp_server.received[0]
    assert mail.sender == SENDER
    assert mail.recipients == ["ada@example.com"]
    assert mail.message["Subject"] == "Invoice paid"
    assert _body(mail) == b"Thank you."
    assert mail.message["Message-ID"] == message_id_for("run-1/step-2/notify")
    assert result["message_id"] == mail.message["Message-ID"]
    assert result["accepted"] == ["ada@example.com"]
    assert result["refused"] == {}


async def test_message_id_is_stable_across_a_retry_and_differs_across_keys(smtp_server: SmtpServer) -> None:
    connector = _connector(smtp_server)
    await connector.perform(_mail(key="run-1/step-2/notify"))
    await connector.perform(_mail(key="run-1/step-2/notify"))  # Temporal retrying the same effect
    await connector.perform(_mail(key="run-1/step-3/notify"))
    first, retried, other = smtp_server.message_ids()
    assert first == retried == message_id_for("run-1/step-2/notify")
    assert other != first
    assert first.endswith("@aios>") and len(first) == len("<@aios>") + 32


async def test_message_param_is_an_alias_of_body_and_to_may_be_a_list(smtp_server: SmtpServer) -> None:
    request = _mail(to=["a@example.com", "b@example.com"], body=None, message="Hello")
    result = await _connector(smtp_server).perform(request)
    assert smtp_server.received[0].recipients == ["a@example.com", "b@example.com"]
    assert _body(smtp_server.received[0]) == b"Hello"
    assert result["accepted"] == ["a@example.com", "b@example.com"]


async def test_a_transient_refusal_is_retryable(smtp_server: SmtpServer) -> None:
    smtp_server.refuse("451 Requested action aborted: local error in processing")
    with pytest.raises(ServerError) as caught:
        await _connector(smtp_server).perform(_mail())
    assert caught.value.retryable
    assert caught.value.status == 451


async def test_a_permanent_refusal_is_a_client_error(smtp_server: SmtpServer) -> None:
    smtp_server.refuse("554 Transaction failed: message rejected")
    with pytest.raises(ClientError) as caught:
        await _connector(smtp_server).perform(_mail())
    assert not caught.value.retryable
    assert caught.value.status == 554
    assert smtp_server.received == []


async def test_a_recipient_refused_for_good_is_a_client_error(smtp_server: SmtpServer) -> None:
    with pytest.raises(ClientError) as caught:
        await _connector(smtp_server).perform(_mail(to="nobody@bounce.invalid"))
    assert caught.value.status == 550
    assert not caught.value.retryable


async def test_a_recipient_refused_for_now_is_retryable(smtp_server: SmtpServer) -> None:
    with pytest.raises(ServerError) as caught:
        await _connector(smtp_server).perform(_mail(to="busy@later.invalid, nobody@bounce.invalid"))
    assert caught.value.retryable


async def test_a_partly_refused_mail_goes_out_and_says_who_was_refused(smtp_server: SmtpServer) -> None:
    result = await _connector(smtp_server).perform(_mail(to="ada@example.com, nobody@bounce.invalid"))
    assert result["accepted"] == ["ada@example.com"]
    assert result["refused"] == {"nobody@bounce.invalid": 550}
    assert smtp_server.received[0].recipients == ["ada@example.com"]


async def test_no_answer_in_time_is_an_unknown_outcome(smtp_server: SmtpServer) -> None:
    smtp_server.stall(1.5)
    with pytest.raises(TimeoutError_, match="may have been accepted"):
        await _connector(smtp_server, timeout=0.5).perform(_mail())
    await asyncio.sleep(1.5)
    # The server took it after all: this is why a retry must carry the same Message-ID.
    assert smtp_server.message_ids() == [message_id_for("run-1/step-2/notify")]


async def test_nobody_listening_is_a_failed_connection() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    connector = EmailConnector(SmtpConfig(host="127.0.0.1", port=port, sender=SENDER, starttls=False))
    with pytest.raises(ConnectFailed):
        await connector.perform(_mail())


async def test_starttls_against_a_server_without_it_is_a_configuration_error(smtp_server: SmtpServer) -> None:
    with pytest.raises(NotConfigured, match="AIOS_SMTP_STARTTLS"):
        await _connector(smtp_server, starttls=True).perform(_mail())


@pytest.mark.parametrize(
    ("params", "message"),
    [({"to": ""}, "needs the parameters 'to' and 'body'"), ({"subject": "a\nBcc: x@evil"}, "linefeed")],
)
async def test_a_malformed_mail_is_refused_before_connecting(
    smtp_server: SmtpServer, params: dict[str, object], message: str
) -> None:
    with pytest.raises(ClientError, match=message):
        await _connector(smtp_server).perform(
            EffectRequest(idempotency_key="k", action="notify", params={**MAIL, **params})
        )
    assert smtp_server.received == []


async def test_the_breaker_opens_after_repeated_transient_refusals(smtp_server: SmtpServer) -> None:
    breaker = CircuitBreaker("email", BreakerPolicy(consecutive_failures=2))
    connector = EmailConnector(
        SmtpConfig(host=smtp_server.host, port=smtp_server.port, sender=SENDER, starttls=False),
        breaker=breaker,
    )
    for _ in range(2):
        smtp_server.refuse("421 Service not available")
        with pytest.raises(ServerError):
            await connector.perform(_mail())
    with pytest.raises(CircuitOpen):
        await connector.perform(_mail())
    assert connector.breaker_state().state == "open"


async def test_email_is_built_from_settings(
    smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(
        smtp_host=smtp_server.host, smtp_port=smtp_server.port, smtp_from=SENDER, smtp_starttls=False
    )
    async with httpx.AsyncClient() as http:
        result = await build_connectors(settings, http)["email"].perform(_mail())
    assert result["message_id"] == message_id_for("run-1/step-2/notify")
    assert len(smtp_server.received) == 1
