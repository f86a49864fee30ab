"""A small circuit breaker for asyncio connectors: closed -> open -> half-open -> closed.

Written here rather than taken from PyPI: `aiobreaker` has had no release since 2021,
`pybreaker` supports Tornado rather than asyncio, and neither `purgatory` nor
`circuitbreaker` opens on a failure *rate* over a time window or takes an injectable clock,
which the connectors need (a slow trickle of failures among successes must open the
circuit, and tests must move time without sleeping).

All methods are synchronous and the breaker is used from one event loop, so no lock is
needed: nothing can interleave between reading and updating the state.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from connectors.errors import CircuitOpen

log = logging.getLogger("connectors.breaker")

BreakerStateName = Literal["closed", "open", "half_open"]


@dataclass(frozen=True)
class BreakerPolicy:
    """When the circuit opens and how long it stays open."""

    consecutive_failures: int = 5
    failure_rate: float = 0.5  # fraction of failed calls in the window that opens the circuit
    window_seconds: float = 60.0
    minimum_calls: int = 10  # a rate over fewer calls than this says nothing
    cool_down_seconds: float = 30.0


@dataclass(frozen=True)
class BreakerSnapshot:
    """What a CLI shows about one connector's breaker."""

    name: str
    state: BreakerStateName
    consecutive_failures: int
    window_calls: int
    window_failures: int
    times_opened: int
    probe_in: float | None  # seconds until an open circuit lets a probe through


@runtime_checkable
class ReportsBreaker(Protocol):
    """A connector with a breaker; `breaker_states` collects them for a status view."""

    def breaker_state(self) -> BreakerSnapshot: ...


def breaker_states(connectors: Iterable[object]) -> list[BreakerSnapshot]:
    """The breaker of every connector that has one, for `aios` to show."""
    return [connector.breaker_state() for connector in connectors if isinstance(connector, ReportsBreaker)]


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        policy: BreakerPolicy | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.policy = policy or BreakerPolicy()
        self._clock = clock
        self._state: BreakerStateName = "closed"
        self._opened_at = 0.0
        self._probe_running = False
        self._consecutive_failures = 0
        self._times_opened = 0
        self._window: deque[tuple[float, bool]] = deque()  # (when, failed)

    def admit(self) -> None:
        """Let a call through, or raise CircuitOpen; half-open lets exactly one probe through."""
        if self._state == "open":
            if self._probe_in() > 0:
                raise self._refusal()
            self._state = "half_open"
        if self._state == "half_open":
            if self._probe_running:
                raise self._refusal()
            self._probe_running = True

    def record_success(self) -> None:
        if self._state == "half_open":
            self._close()
            return
        self._consecutive_failures = 0
        self._remember(failed=False)

    def record_failure(self) -> None:
        if self._state == "half_open":
            self._open()  # the probe failed: another full cool-down
            return
        self._consecutive_failures += 1
        self._remember(failed=True)
        if self._too_many_failures():
            self._open()

    def abandon(self) -> None:
        """An admitted call ended without a verdict (cancelled): free the probe slot."""
        self._probe_running = False

    def snapshot(self) -> BreakerSnapshot:
        self._forget_old()
        state = self._state
        if state == "open" and self._probe_in() <= 0:
            state = "half_open"  # the next call will be the probe
        return BreakerSnapshot(
            name=self.name,
            state=state,
            consecutive_failures=self._consecutive_failures,
            window_calls=len(self._window),
            window_failures=sum(1 for _, failed in self._window if failed),
            times_opened=self._times_opened,
            probe_in=self._probe_in() if state == "open" else None,
        )

    def _too_many_failures(self) -> bool:
        if self._consecutive_failures >= self.policy.consecutive_failures:
            return True
        self._forget_old()
        calls = len(self._window)
        failures = sum(1 for _, failed in self._window if failed)
        return calls >= self.policy.minimum_calls and failures / calls >= self.policy.failure_rate

    def _remember(self, *, failed: bool) -> None:
        self._window.append((self._clock(), failed))
        self._forget_old()

    def _forget_old(self) -> None:
        horizon = self._clock() - self.policy.window_seconds
        while self._window and self._window[0][0] < horizon:
            self._window.popleft()

    def _open(self) -> None:
        self._state = "open"
        self._opened_at = self._clock()
        self._probe_running = False
        self._times_opened += 1
        log.warning(
            "%s: circuit opened (%d consecutive failures); calls refused for %.0fs",
            self.name,
            self._consecutive_failures,
            self.policy.cool_down_seconds,
        )

    def _close(self) -> None:
        log.info("%s: circuit closed, the probe succeeded", self.name)
        self._state = "closed"
        self._probe_running = False
        self._consecutive_failures = 0
        self._window.clear()  # failures from before the outage must not reopen it at once

    def _probe_in(self) -> float:
        return max(0.0, self._opened_at + self.policy.cool_down_seconds - self._clock())

    def _refusal(self) -> CircuitOpen:
        wait = self._probe_in()
        return CircuitOpen(
            f"{self.name}: circuit open after repeated failures; calls are refused for {wait:.1f}s more",
            retry_after=wait if wait > 0 else None,
        )
