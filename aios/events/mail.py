"""The inbound mail channel: mail to `<agent>@<mail domain>` becomes a `mail.received` event.

An SMTP server (aiosmtpd) on loopback by default: put the domain's MX relay in front of it.
Each accepted recipient at the configured domain gives one event, topic `mail.received`, with

    {"to": "<agent>", "from": "...", "subject": "...", "body": "<text, at most 20,000 chars>",
     "fields": {"order": "A-1001", "amount": 18000},     the body's `Key: value` lines
     "message_id": "...", "attachments": [{"name": "...", "type": "...", "bytes": 1234}]}

`fields` lets a manifest map a form-like mail without a model reading it (`$.fields.order`).

Its id comes from the Message-ID and the recipient, so a mail delivered twice (a relay retrying)
is one event. Attachments are listed, never kept: their content is the sender's to resend where
it belongs. Mail over `AIOS_MAIL_MAX_BYTES` is refused at the SMTP level (552), recipients at
another domain with 550, and a mail that could not be kept with 451, so the relay retries.
An agent subscribes with `triggers.event: [{topic: mail.received, filter: {to: <agent>}}]`.
"""

from __future__ import annotations

import hashlib
import logging
import re
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import psycopg
from aiosmtpd.smtp import SMTP, Envelope, Session
from temporalio.service import RPCError

from aios.errors import EventIdReused
from aios.events.bus import EventBus
from aios.models.events import Event

log = logging.getLogger("aios.events.mail")
MAIL_TOPIC = "mail.received"
MAX_BODY_CHARS = 20_000
FIELD_LINE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_]{0,40})\s*:\s*(\S.*)$")


class MailChannel:
    """An aiosmtpd handler: RCPT checks the domain, DATA turns the mail into events."""

    def __init__(self, bus: EventBus, domain: str) -> None:
        self._bus = bus
        self._domain = domain.lower()

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        local, _, domain = address.lower().rpartition("@")
        if domain != self._domain or not local:
            return f"550 5.1.1 only mail to <agent>@{self._domain} is accepted here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        message = message_from_bytes(content, policy=policy.default)
        assert isinstance(message, EmailMessage)  # policy.default parses into EmailMessage
        try:
            for recipient in envelope.rcpt_tos:
                await self._bus.publish(mail_event(message, str(envelope.mail_from), recipient, content))
        except EventIdReused as reused:
            log.warning("mail refused: %s", reused)
            return "554 5.6.0 this Message-ID was already used for another mail"
        except (psycopg.OperationalError, RPCError) as unavailable:
            log.error("mail not kept: %s", unavailable)
            return "451 4.3.0 the mail could not be kept; try again later"
        return "250 OK: kept"


def mail_event(message: EmailMessage, sender: str, recipient: str, content: bytes) -> Event:
    agent = recipient.lower().rpartition("@")[0]
    message_id = str(message.get("Message-ID") or hashlib.sha256(content).hexdigest()[:32]).strip("<>")
    body = message.get_body(preferencelist=("plain", "html"))
    text = (body.get_content() if body is not None else "")[:MAX_BODY_CHARS]
    data: dict[str, Any] = {
        "to": agent,
        "from": str(message.get("From") or sender),
        "subject": str(message.get("Subject") or ""),
        "body": text,
        "fields": body_fields(text),
        "message_id": message_id,
        "attachments": [_attachment(part) for part in message.iter_attachments()],
    }
    digest = hashlib.sha256(f"{message_id}\n{agent}".encode()).hexdigest()[:24]
    return Event(event_id=f"mail-{digest}", topic=MAIL_TOPIC, data=data, source="mail")


def body_fields(text: str) -> dict[str, Any]:
    """`Order: A-1001` lines as {"order": "A-1001"}; whole numbers become numbers."""
    fields: dict[str, Any] = {}
    for line in text.splitlines():
        found = FIELD_LINE.match(line)
        if found:
            value = found.group(2).strip()
            fields[found.group(1).lower()] = int(value) if value.isdigit() else value
    return fields


def _attachment(part: Any) -> dict[str, Any]:
    payload = part.get_payload(decode=True) or b""
    return {"name": part.get_filename() or "", "type": part.get_content_type(), "bytes": len(payload)}
