"""The base of every model that crosses a Temporal boundary."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

SCHEMA_VERSION = 1


class Payload(BaseModel):
    """Frozen, strict about unknown fields, and versioned."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = SCHEMA_VERSION


class Strict(BaseModel):
    """A part of a manifest: frozen, and a typo in a field name is an error, not a default."""

    model_config = ConfigDict(frozen=True, extra="forbid")
