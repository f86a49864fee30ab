"""A local mail sink for the demo: a real SMTP server (aiosmtpd) on loopback.

It saves every accepted message under a folder and refuses recipients at `bounce.invalid`
with a permanent 550, so the demo can show what a run does when a reply bounces.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

BOUNCING_DOMAIN = "@bounce.invalid"


class _Handler:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.delivered = 0
        self.bounced = 0

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address.endswith(BOUNCING_DOMAIN):
            self.bounced += 1
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.delivered += 1
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / f"message-{self.delivered:04d}.eml").write_bytes(envelope.original_content)
        return "250 Message accepted"


def _free_port() -> int:
    # aiosmtpd's controller checks its own port after start, so it cannot take port 0.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class MailSink:
    def __init__(self, folder: Path) -> None:
        self._handler = _Handler(folder)
        self.port = _free_port()
        self._controller = Controller(self._handler, hostname="127.0.0.1", port=self.port)

    def start(self) -> MailSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    @property
    def delivered(self) -> int:
        return self._handler.delivered

    @property
    def bounced(self) -> int:
        return self._handler.bounced
