"""The Python client of aios: what the CLI uses, and what a script imports.

async with await AiosClient.connect(load_settings()) as aios:
    result = await aios.ping("hello")
"""

from __future__ import annotations

import uuid
from types import TracebackType
from typing import Any

from temporalio.client import Client, WorkflowHandle

from aios.models import PingInput, PingResult
from aios.settings import Settings
from aios.temporal_client import connect


class AiosClient:
    def __init__(self, client: Client, settings: Settings) -> None:
        self.temporal = client
        self.settings = settings

    @classmethod
    async def connect(cls, settings: Settings) -> AiosClient:
        return cls(await connect(settings), settings)

    async def __aenter__(self) -> AiosClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # The Temporal client holds no resources that need closing.
        return None

    async def start_ping(
        self, message: str, *, actor: str = "operator", task_queue: str | None = None
    ) -> WorkflowHandle[Any, PingResult]:
        # Started by name so the client does not import workflow code (imports point one way).
        return await self.temporal.start_workflow(
            "Ping",
            PingInput(message=message, actor=actor),
            result_type=PingResult,
            id=f"ping-{uuid.uuid4().hex[:12]}",
            task_queue=task_queue or self.settings.task_queue,
            static_summary=f"Ping: {message[:80]}",
        )

    async def ping(self, message: str, *, actor: str = "operator") -> PingResult:
        handle = await self.start_ping(message, actor=actor)
        return await handle.result()

    def run_url(self, workflow_id: str) -> str:
        return self.settings.run_url(workflow_id)
