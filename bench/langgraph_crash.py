"""Crash recovery, side by side: SIGKILL a process mid-effect, resume, count the effects.

Each side runs a loop of CRASH_STEPS actions whose every step POSTs to a loopback counting
server (tests/support/effect_server.py: it applies a POST once per Idempotency-Key, and every
keyless POST). The server applies the approved step's POST, then holds its answer: the
process that sent it is SIGKILLed at that moment, after the effect happened and before the
step could be checkpointed. Then a new process carries the run on:

- aios: the killed process is the worker (`aios worker`, on a fresh task queue); the run
  lives in Temporal, so a new worker simply picks it up (the killed activity is retried once
  its heartbeat times out);
- LangGraph: the killed process is the one running the graph (bench/langgraph_loop.py
  `start`); a new one (`resume`) calls `ainvoke(None)` on the same thread_id, which starts
  again from the last checkpoint. Twice: the act node as usually written (a plain POST), and
  with an Idempotency-Key of the thread, the step and the action, as aios's ledger sends.

Reported per side: the POSTs that reached the server and the effects it applied, per step.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from aios.client import AiosClient
from aios.settings import Settings
from bench.langgraph_aios import AiosLoop
from bench.langgraph_common import APPROVAL_AT, loop_manifest
from tests.support.effect_server import EffectServer, Fault
from tests.support.env import child_env

CRASH_STEPS = 4
CRASH_AT = APPROVAL_AT  # the approved step is the one killed mid-effect
HANG_SECONDS = 60.0  # how long the server holds its answer: far longer than the kill takes
WAIT_SECONDS = 120.0  # for any one phase; a longer one is a broken benchmark


@dataclass
class CrashOutcome:
    side: str
    posts: dict[str, int] = field(default_factory=dict)  # action -> POSTs that reached the server
    applied: dict[str, int] = field(default_factory=dict)  # action -> effects the server applied
    finished: str = ""  # how the run ended after the resume
    recovery_s: float = 0.0  # from the kill to the run's end, the new process's start included

    @property
    def repeated(self) -> int:
        """Effects applied more than once: the figure that must be zero."""
        return sum(count - 1 for count in self.applied.values() if count > 1)

    @property
    def resent(self) -> int:
        return sum(count - 1 for count in self.posts.values() if count > 1)

    @property
    def crashed_action(self) -> str:
        return f"step_{CRASH_AT}"


def _counting_server() -> EffectServer:
    # Faults are taken one per POST, in order: the CRASH_AT-th POST is applied, then held.
    faults = [Fault() for _ in range(CRASH_AT - 1)]
    faults.append(Fault(apply_then_hang=True, hang_seconds=HANG_SECONDS))
    return EffectServer(faults=faults).start()


def _tally(server: EffectServer, outcome: CrashOutcome) -> CrashOutcome:
    with server.lock:
        requests = list(server.requests)
    actions = [(request["path"].rsplit("/", 1)[-1], bool(request["applied"])) for request in requests]
    outcome.posts = dict(sorted(Counter(action for action, _ in actions).items()))
    outcome.applied = dict(sorted(Counter(action for action, applied in actions if applied).items()))
    return outcome


async def _until_applied(server: EffectServer, action: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while server.effects_for(f"/effects/{action}") == 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the counting server never saw {action}'s effect")
        await asyncio.sleep(0.005)


class Child:
    """A subprocess of this benchmark, its output kept in a log to show when it fails."""

    def __init__(self, process: asyncio.subprocess.Process, log: Path, sink: IO[bytes]) -> None:
        self.process, self.log, self._sink = process, log, sink

    @classmethod
    async def spawn(cls, log: Path, *args: str, env: dict[str, str] | None = None) -> Child:
        sink = log.open("ab")
        process = await asyncio.create_subprocess_exec(
            sys.executable, *args, env=env if env is not None else child_env(), stdout=sink, stderr=sink
        )
        return cls(process, log, sink)

    async def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except TimeoutError:
                await self.kill()
        self._sink.close()

    async def finished(self, within: float = WAIT_SECONDS) -> None:
        code = await asyncio.wait_for(self.process.wait(), within)
        if code != 0:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{self.log.name} exited {code}:\n{tail}")


# -- aios -------------------------------------------------------------------------------


async def aios_crash(settings: Settings, logs: Path) -> CrashOutcome:
    server = _counting_server()
    queue = f"bench-langgraph-crash-{uuid.uuid4().hex[:8]}"
    manifest = loop_manifest(
        CRASH_STEPS, CRASH_AT, name=f"bench-lg-crash-{uuid.uuid4().hex[:8]}", effects_url=server.url
    )
    loop = AiosLoop(await AiosClient.connect(settings), queue)
    worker_env = child_env(settings, AIOS_TASK_QUEUE=queue)
    log = logs / "bench-langgraph-crash-aios.log"
    workers = [await Child.spawn(log, "-m", "aios.cli", "worker", env=worker_env)]
    try:
        run_id = await loop.start(manifest, {"bench": "crash"})
        async with asyncio.timeout(WAIT_SECONDS):
            await loop.approve_when_waiting(run_id)
            await _until_applied(server, f"step_{CRASH_AT}")
        await workers[0].kill()
        killed = time.monotonic()
        workers.append(await Child.spawn(log, "-m", "aios.cli", "worker", env=worker_env))
        final = await asyncio.wait_for(loop.client.result(run_id), WAIT_SECONDS)
        recovery = time.monotonic() - killed
    finally:
        for worker in workers:
            await worker.stop()
        server.stop()
    executed = sum(1 for step in final.steps if step.status == "executed")
    finished = f"{final.status.value}, {executed} of {CRASH_STEPS} steps executed"
    return _tally(server, CrashOutcome("aios", finished=finished, recovery_s=recovery))


# -- LangGraph --------------------------------------------------------------------------


async def langgraph_crash(logs: Path, *, keyed: bool) -> CrashOutcome:
    server = _counting_server()
    side = "langgraph, keyed POST" if keyed else "langgraph, plain POST"
    common = ["--thread", uuid.uuid4().hex, "--effects", server.url]
    common += ["--steps", str(CRASH_STEPS), "--approval-at", str(CRASH_AT)]
    common += ["--keyed"] if keyed else []
    log = logs / f"bench-langgraph-crash-{'keyed' if keyed else 'plain'}"
    first = await Child.spawn(log.with_suffix(".start.log"), "-m", "bench.langgraph_loop", "start", *common)
    second: Child | None = None
    try:
        await _until_applied(server, f"step_{CRASH_AT}")
        await first.kill()
        killed = time.monotonic()
        resumed = log.with_suffix(".resume.log")
        second = await Child.spawn(resumed, "-m", "bench.langgraph_loop", "resume", *common)
        await second.finished()
        recovery = time.monotonic() - killed
    finally:
        await first.stop()
        if second is not None:
            await second.stop()
        server.stop()
    final = json.loads(resumed.read_text().strip().splitlines()[-1])
    done = final.get("done", [])
    finished = (
        f"{'completed' if len(done) == CRASH_STEPS else 'ended'}, {len(done)} of {CRASH_STEPS} steps done"
    )
    return _tally(server, CrashOutcome(side, finished=finished, recovery_s=recovery))


async def crash_all(settings: Settings) -> list[CrashOutcome]:
    logs = settings.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    for stale in logs.glob("bench-langgraph-crash-*.log"):
        stale.unlink()
    return [
        await aios_crash(settings, logs),
        await langgraph_crash(logs, keyed=False),
        await langgraph_crash(logs, keyed=True),
    ]
