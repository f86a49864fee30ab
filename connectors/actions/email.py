"""Sending email over SMTP (aiosmtplib), with a Message-ID derived from the idempotency key.

SMTP has no idempotency key, so the connector never repeats a send by itself: Temporal's
retry is the only loop, and a retried effect carries the same Message-ID, which lets the
receiving side (and the operator) recognise the duplicate a lost reply can cause.

Params: `to` (an address, a comma-separated list, or a list), `subject` (or `title`, for agents whose
task `subject` names whom the run is about), `body` (or `message`).
Replies map to the error tree: 4xx is transient (retryable), 5xx permanent (ClientError).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

import aiosmtplib

from connectors.actions.base import EffectRequest
from connectors.breaker import BreakerSnapshot, CircuitBreaker
from connectors.errors import (
    ClientError,
    ConnectFailed,
    ConnectorError,
    NotConfigured,
    ServerError,
    TimeoutError_,
    TransportError,
)
from connectors.redaction import Redactor

MESSAGE_ID_DOMAIN = "aios"
DEFAULT_TIMEOUT_SECONDS = 30.0


def message_id_for(idempotency_key: str) -> str:
    """The same key always gives the same Message-ID; different keys practically never do."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    return f"<{digest}@{MESSAGE_ID_DOMAIN}>"


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    sender: str
    username: str | None = None
    password: str | None = None
    starttls: bool = True
    timeout: float = DEFAULT_TIMEOUT_SECONDS


class EmailConnector:
    name = "email"

    def __init__(self, config: SmtpConfig, *, breaker: CircuitBreaker | None = None) -> None:
        self._config = config
        self._breaker = breaker or CircuitBreaker(self.name)
        self._redact = Redactor([config.password])

    def breaker_state(self) -> BreakerSnapshot:
        return self._breaker.snapshot()

    async def perform(self, request: EffectRequest) -> dict[str, Any]:
        message = self._message(request)
        self._breaker.admit()
        try:
            refused, reply = await self._send(message)
        except ConnectorError as error:
            self._judge(error)
            raise
        except BaseException:
            self._breaker.abandon()
            raise
        self._breaker.record_success()
        return {
            "message_id": message["Message-ID"],
            "accepted": [r for r in _recipients(request) if r not in refused],
            "refused": {address: response.code for address, response in refused.items()},
            "reply": reply,
        }

    def _message(self, request: EffectRequest) -> EmailMessage:
        recipients = _recipients(request)
        body = request.params.get("body")
        if body is None:
            body = request.params.get("message")
        if not recipients or body is None:
            raise ClientError(
                f"action {request.action!r} (email) needs the parameters 'to' and 'body' (or 'message'); "
                f"got {sorted(request.params)}"
            )
        message = EmailMessage()
        try:
            message["From"] = self._config.sender
            message["To"] = ", ".join(recipients)
            message["Subject"] = str(request.params.get("subject") or request.params.get("title", ""))
        except ValueError as exc:  # a line break in a header: header injection, never sent
            raise ClientError(f"action {request.action!r} (email): {exc}") from exc
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = message_id_for(request.idempotency_key)
        message.set_content(str(body))
        return message

    async def _send(self, message: EmailMessage) -> tuple[dict[str, aiosmtplib.SMTPResponse], str]:
        config = self._config
        where = f"email: SMTP {config.host}:{config.port}"
        try:
            return await aiosmtplib.send(
                message,
                hostname=config.host,
                port=config.port,
                username=config.username,
                password=config.password,
                start_tls=config.starttls,
                timeout=config.timeout,
            )
        except aiosmtplib.SMTPException as exc:
            raise self._error_for(exc, where) from exc
        except OSError as exc:  # TLS handshake and socket errors that aiosmtplib lets through
            raise TransportError(self._redact(f"{where}: {type(exc).__name__}: {exc}")) from exc

    def _error_for(self, exc: aiosmtplib.SMTPException, where: str) -> ConnectorError:
        text = self._redact(f"{where}: {exc}")
        if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
            codes = [recipient.code for recipient in exc.recipients]
            # One transient refusal among permanent ones still makes the whole send worth retrying.
            return _by_code(max(codes, default=550) if all(c >= 500 for c in codes) else 450, text)
        if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
            return NotConfigured(f"{text}; check AIOS_SMTP_USERNAME and AIOS_SMTP_PASSWORD", status=exc.code)
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            return _by_code(exc.code, text)
        return _without_reply(exc, text)

    def _judge(self, error: ConnectorError) -> None:
        if isinstance(error, TransportError | TimeoutError_ | ServerError):
            self._breaker.record_failure()
        elif error.status is not None:
            self._breaker.record_success()  # the server answered; the request was wrong
        else:
            self._breaker.abandon()


def _without_reply(exc: aiosmtplib.SMTPException, text: str) -> ConnectorError:
    """Errors where the server said nothing useful: the connection or the protocol failed."""
    if isinstance(exc, aiosmtplib.SMTPConnectTimeoutError | aiosmtplib.SMTPConnectError):
        return ConnectFailed(text)
    if isinstance(exc, aiosmtplib.SMTPTimeoutError):
        return TimeoutError_(f"{text}; the message may have been accepted")
    # aiosmtplib says "STARTTLS extension not supported" with a plain SMTPException.
    if isinstance(exc, aiosmtplib.SMTPNotSupported) or "STARTTLS" in str(exc):
        return NotConfigured(f"{text}; check AIOS_SMTP_STARTTLS and the server's extensions")
    return TransportError(text)  # disconnected and the like: the outcome is open


def _by_code(code: int, text: str) -> ConnectorError:
    """SMTP's own split: 4xx is "try again later", 5xx is "never like this"."""
    if 400 <= code < 500:
        return ServerError(f"{text} (transient, will retry)", status=code)
    return ClientError(text, status=code)


def _recipients(request: EffectRequest) -> list[str]:
    to = request.params.get("to")
    candidates = to if isinstance(to, list) else str(to or "").split(",")
    return [str(address).strip() for address in candidates if str(address).strip()]
