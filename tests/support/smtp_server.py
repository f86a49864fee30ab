"""A real SMTP server (aiosmtpd) on loopback that keeps every message it receives.

`refuse` queues SMTP replies for the next DATA commands, so tests can see how the email
connector takes a transient (4xx) or a permanent (5xx) refusal; `stall` delays the next
acceptance past the client's timeout (the message is kept: the outcome the client saw was
a timeout, yet the mail went out). Recipients at `bounce.invalid` are refused with 550 and
at `later.invalid` with 450, as a real server refuses unknown or busy mailboxes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.support.ports import free_port

PERMANENT_BOUNCE = "@bounce.invalid"
TRANSIENT_BOUNCE = "@later.invalid"


@dataclass
class ReceivedMail:
    sender: str
    recipients: list[str]
    message: Message


@dataclass
class CollectingHandler:
    received: list[ReceivedMail] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)  # replies for the next DATA commands
    stalls: list[float] = field(default_factory=list)  # seconds to wait before the next replies

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        """Recipients at bounce.invalid are refused for good, at later.invalid for now."""
        if address.endswith(PERMANENT_BOUNCE):
            return "550 5.1.1 mailbox unavailable"
        if address.endswith(TRANSIENT_BOUNCE):
            return "450 4.2.1 mailbox busy, try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.refusals:
            return self.refusals.pop(0)
        content = envelope.original_content or b""
        self.received.append(
            ReceivedMail(
                sender=str(envelope.mail_from),
                recipients=list(envelope.rcpt_tos),
                message=message_from_bytes(content),
            )
        )
        if self.stalls:  # kept, then silent: the client cannot know the mail went out
            await asyncio.sleep(self.stalls.pop(0))
        return "250 Message accepted for delivery"


@dataclass
class SmtpServer:
    host: str
    port: int
    handler: CollectingHandler

    @property
    def received(self) -> list[ReceivedMail]:
        return self.handler.received

    def refuse(self, reply: str) -> None:
        self.handler.refusals.append(reply)

    def stall(self, seconds: float) -> None:
        self.handler.stalls.append(seconds)

    def message_ids(self) -> list[str]:
        return [str(mail.message["Message-ID"]) for mail in self.received]


@pytest.fixture(name="smtp_server")
def smtp_server_fixture() -> Iterator[SmtpServer]:
    handler = CollectingHandler()
    port = free_port()
    controller: Any = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SmtpServer(host="127.0.0.1", port=port, handler=handler)
    finally:
        controller.stop()
