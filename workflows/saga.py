"""A reusable saga: remember how to undo each finished step, undo them in reverse on failure.

Deterministic (no I/O of its own): the caller supplies the coroutine that runs one
compensation, normally an idempotent activity, so a replay makes the same calls.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class CompensationOutcome(Generic[T]):
    compensation: T
    error: BaseException | None

    @property
    def succeeded(self) -> bool:
        return self.error is None


class Saga(Generic[T]):
    def __init__(self) -> None:
        self._compensations: list[T] = []

    def add(self, compensation: T) -> None:
        """Record the undo of a step that has just succeeded."""
        self._compensations.append(compensation)

    @property
    def pending(self) -> list[T]:
        return list(self._compensations)

    async def compensate(self, run: Callable[[T], Awaitable[None]]) -> list[CompensationOutcome[T]]:
        """Run every compensation, newest first; one failing does not stop the others."""
        outcomes: list[CompensationOutcome[T]] = []
        while self._compensations:
            compensation = self._compensations.pop()
            try:
                await run(compensation)
            except Exception as error:  # every failure is reported; the caller decides
                outcomes.append(CompensationOutcome(compensation, error))
            else:
                outcomes.append(CompensationOutcome(compensation, None))
        return outcomes
