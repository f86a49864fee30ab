"""Waiting for the operator's inbox to show, or drop, an item."""

from __future__ import annotations

import asyncio

from aios.client import AiosClient
from aios.models.inbox import InboxItem


async def item_for(
    client: AiosClient, key: str, *, present: bool = True, within: float = 30
) -> InboxItem | None:
    """The inbox item with this key once it is there (or, present=False, once it is gone)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        found = next((item for item in await client.inbox() if item.key == key), None)
        if (found is not None) == present:
            return found
        if loop.time() > deadline:
            raise AssertionError(f"inbox item {key} {'never came' if present else 'never left'}")
        await asyncio.sleep(0.2)
