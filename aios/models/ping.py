"""The walking skeleton's input and output."""

from __future__ import annotations

from pydantic import Field

from aios.models.base import Payload


class PingInput(Payload):
    """The walking skeleton: a message that travels client -> workflow -> activity -> Postgres."""

    message: str = Field(min_length=1, max_length=2000)
    actor: str = Field(default="operator", min_length=1, max_length=200)


class PingResult(Payload):
    workflow_id: str
    message: str
    audit_id: int
