"""What a connector's circuit breaker did during a scenario, from what an operator can see.

Two sources, which must agree: the breaker's own log lines ("circuit opened", "circuit closed,
the probe succeeded") and the worker's health rows in Postgres (`aios_connector_health`, what
`aios status` shows), sampled while the scenario runs. Temporal's "Completing activity as
failed" log lines add how many activity attempts failed, by error type, including the attempts
the open circuit refused. Only an in-process worker's logs reach the test's handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import Counter
from collections.abc import AsyncIterator
from itertools import pairwise

import psycopg

BREAKER_LOGGER = "connectors.breaker"
ACTIVITY_LOGGER = "temporalio.activity"
SAMPLE_EVERY = 0.5
# The worker reports every 5 s (workers/main.py); a final report must land within this.
REPORT_WITHIN = 15.0
# The traceback's last line: "temporalio.exceptions.ApplicationError: CircuitOpen: http: circuit open ..."
FAILED_AS = re.compile(r"ApplicationError: (\w+): ")
HEALTH = "SELECT worker_id, state, times_opened FROM aios_connector_health WHERE connector = %s"


class BreakerWatch(logging.Handler):
    """A log handler that also samples the health rows: one connector, one worker (by its queue)."""

    def __init__(self, connector: str, task_queue: str) -> None:
        super().__init__(logging.INFO)
        self.connector = connector
        self.task_queue = task_queue
        self.transitions: list[str] = []  # "opened" / "closed", as logged
        self.failed_attempts: Counter[str] = Counter()  # activity attempts, by error type
        self.states_seen: set[str] = set()  # in the health rows
        self.reported_opened = 0  # times_opened in the latest health row

    def emit(self, record: logging.LogRecord) -> None:
        # Read as text: aios's redacting record factory has already rendered the message and the
        # traceback (args and exc_info are gone), as every handler in the process sees them.
        if record.name == BREAKER_LOGGER:
            message = record.getMessage()
            if message.startswith(f"{self.connector}: circuit opened"):
                self.transitions.append("opened")
            elif message.startswith(f"{self.connector}: circuit closed"):
                self.transitions.append("closed")
        elif record.name == ACTIVITY_LOGGER and record.exc_text:
            found = FAILED_AS.search(record.exc_text.rstrip().rpartition("\n")[2])
            self.failed_attempts[found.group(1) if found else "other"] += 1

    @property
    def opened(self) -> int:
        return self.transitions.count("opened")

    @property
    def reopened_after_failed_probe(self) -> int:
        """An open that follows an open: the half-open probe failed and the cool-down began again."""
        return sum(1 for a, b in pairwise(self.transitions) if a == b == "opened")

    @property
    def closed_after_probe(self) -> int:
        return self.transitions.count("closed")

    def summary(self) -> str:
        last = "open" if self.transitions and self.transitions[-1] == "opened" else "closed"
        refused = self.failed_attempts.get("CircuitOpen", 0)
        return (
            f"breaker of the {self.connector} connector: opened {self.opened} time(s) "
            f"({self.reopened_after_failed_probe} after a failed half-open probe), closed "
            f"{self.closed_after_probe} time(s) after a successful probe, {last} at the end; "
            f"{refused} activity attempt(s) refused while open (Temporal waited out the cool-down); "
            f"failed activity attempts by type {dict(sorted(self.failed_attempts.items()))}; health rows "
            f"(aios_connector_health) showed states {sorted(self.states_seen)} and times_opened="
            f"{self.reported_opened}. "
        )

    async def sample(self, database_url: str, stop: asyncio.Event) -> None:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            while not stop.is_set():
                await self._read(conn)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), SAMPLE_EVERY)

    async def _read(self, conn: psycopg.AsyncConnection[object]) -> None:
        cursor = await conn.execute(HEALTH, (self.connector,))
        for worker_id, state, opened in await cursor.fetchall():
            if str(worker_id).endswith(f":{self.task_queue}"):
                self.states_seen.add(str(state))
                self.reported_opened = int(opened)

    async def settle_reports(self, database_url: str) -> None:
        """Wait until the health rows have caught up with the log (the worker reports every 5 s)."""
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            for _ in range(int(REPORT_WITHIN / SAMPLE_EVERY)):
                await self._read(conn)
                if self.reported_opened == self.opened and self.states_seen:
                    return
                await asyncio.sleep(SAMPLE_EVERY)


@contextlib.asynccontextmanager
async def watch_breaker(connector: str, task_queue: str, database_url: str) -> AsyncIterator[BreakerWatch]:
    """Listen to the breaker's and the activities' log lines and sample the health rows meanwhile."""
    watch = BreakerWatch(connector, task_queue)
    breaker, activities = logging.getLogger(BREAKER_LOGGER), logging.getLogger(ACTIVITY_LOGGER)
    level = breaker.level
    # The breaker logs "closed" at INFO; the root logger's default (WARNING) would drop it.
    breaker.setLevel(logging.INFO)
    breaker.addHandler(watch)
    activities.addHandler(watch)  # failed attempts are logged at WARNING
    stop = asyncio.Event()
    sampler = asyncio.create_task(watch.sample(database_url, stop))
    try:
        yield watch
    finally:
        stop.set()
        await sampler
        breaker.removeHandler(watch)
        activities.removeHandler(watch)
        breaker.setLevel(level)
