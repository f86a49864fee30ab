"""Where an aios run's CPU goes: py-spy samples of the worker on the no-op and the realistic workload.

`python -m bench.profile_run [--levels 10,10] [--out docs/PROFILE.md]` runs, for each
workload, the aios side of the realistic side by side (bench/realistic_measure.py: the
production worker and the driving client in one process) and attaches py-spy to it once it is
warmed up, so start-up imports stay out. Each sample's stack is sorted into categories by the
files on it (a sample counts in every category on its stack: "inclusive"; and in the one
nearest its leaf: "self"). Then the measured runs' Temporal histories give per-run counts:
workflow tasks, activities, visibility writes (search attribute upserts), events; and the CPU
readings give the Temporal server's CPU per workflow task and the Postgres transactions per run.

This measures; it changes nothing. The levers it points at are in docs/PROFILE.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aios.settings import Settings, load_settings
from bench.history_counts import HistoryCounts, history_counts
from bench.langgraph_crash import Child
from bench.profile_samples import CATEGORIES, OTHER, Samples, read_samples
from bench.realistic_figures import EFFECT_SECONDS, TIMING, SideResult
from bench.realistic_measure import WARMED_UP
from bench.realistic_servers import Servers
from bench.realistic_side_by_side import SIDE_TIMEOUT, measure_args
from tests.support.env import child_env

WORKLOADS = ("noop", "realistic")
RATE = 100  # samples per second
ATTACH_SECONDS = 3.0  # the measuring process pauses this long after its warm-up
TOP = 8  # modules and sandbox functions shown


@dataclass
class Profile:
    workload: str
    result: SideResult
    samples: Samples
    histories: HistoryCounts


async def profile(workload: str, levels: list[int], servers: Servers, settings: Settings) -> Profile:
    from bench.langgraph_side_by_side import local_servers

    print(f"  profiling aios ({workload}) at {levels} concurrent runs ...", flush=True)
    log = settings.data_dir / "logs" / f"bench-profile-{workload}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_bytes(b"")
    with tempfile.TemporaryDirectory() as scratch:
        out, raw = Path(scratch) / "out.json", Path(scratch) / "raw.txt"
        args = measure_args("aios", out, levels, servers, local_servers(settings), workload=workload)
        args += ["--pause-after-warm-up", str(ATTACH_SECONDS)]
        env = child_env(AIOS_MODEL_BASE_URL=servers.model.url)
        child = await Child.spawn(log, "-m", "bench.realistic_measure", *args, env=env)
        try:
            await _until_logged(log, WARMED_UP, child)
            spy = await asyncio.create_subprocess_exec(
                str(Path(sys.executable).parent / "py-spy"), "record", "--format", "raw", "--nonblocking",
                "--rate", str(RATE), "-o", str(raw), "-p", str(child.process.pid),
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            await child.finished(within=SIDE_TIMEOUT)
            await asyncio.wait_for(spy.wait(), 30)
        finally:
            await child.stop()
        result = SideResult.from_json(json.loads(out.read_text()))
        samples = read_samples(raw.read_text() if raw.exists() else "")
    return Profile(workload, result, samples, await history_counts(settings, result.run_ids))


async def _until_logged(log: Path, line: str, child: Child) -> None:
    async with asyncio.timeout(180):
        while line.encode() not in await asyncio.to_thread(log.read_bytes):
            if child.process.returncode is not None:
                await child.finished()  # raises with the log's tail
            await asyncio.sleep(0.2)


# -- the report -------------------------------------------------------------------------


def render(profiles: list[Profile]) -> str:
    names = [name for name, _ in CATEGORIES] + [OTHER]
    header = "| category (py-spy samples of the worker process) | " + " | ".join(
        f"{p.workload}: inclusive | {p.workload}: self" for p in profiles
    )
    lines = [header + " |", "|---" * (1 + 2 * len(profiles)) + "|"]
    for name in names:
        cells = []
        for p in profiles:
            total = max(1, p.samples.total)
            cells += [f"{p.samples.inclusive[name] / total:.0%}", f"{p.samples.leaf[name] / total:.0%}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for title, counter in (("modules whose body runs (imported) after warm-up", "modules"),
                           ("sandbox functions nearest the leaf", "sandbox")):  # fmt: skip
        lines += ["", f"Top {title}, share of samples:", ""]
        for p in profiles:
            top = getattr(p.samples, counter).most_common(TOP)
            shown = ", ".join(f"`{name}` {count / max(1, p.samples.total):.0%}" for name, count in top)
            lines.append(f"- {p.workload}: {shown or 'none'}")
    lines += ["", "| per run | " + " | ".join(p.workload for p in profiles) + " |"]
    lines.append("|---" * (1 + len(profiles)) + "|")
    for label, value in _per_run_rows():
        lines.append(f"| {label} | " + " | ".join(value(p) for p in profiles) + " |")
    return "\n".join(lines) + "\n"


def _steps(p: Profile) -> int:
    return sum(level.steps for level in p.result.levels)


def _runs(p: Profile) -> int:
    return sum(level.runs for level in p.result.levels)


def _cpu_ms(p: Profile, part: str) -> float:
    return sum(level.cpu.get(part) or 0.0 for level in p.result.levels) * 1000


def _per_run_rows() -> list[tuple[str, Callable[[Profile], str]]]:
    def fmt(value: float) -> str:
        return f"{value:.1f}"

    return [
        ("runs profiled (steps)", lambda p: f"{_runs(p)} ({_steps(p)})"),
        ("py-spy samples (at 100 Hz; idle not sampled)", lambda p: str(p.samples.total)),
        ("worker process CPU per run, ms", lambda p: fmt(_cpu_ms(p, "process") / _runs(p))),
        ("Temporal server CPU per run, ms", lambda p: fmt(_cpu_ms(p, "temporal") / _runs(p))),
        ("Postgres CPU per run, ms", lambda p: fmt(_cpu_ms(p, "postgres") / _runs(p))),
        ("child workflows per run (each a sandbox of its own)", lambda p: fmt(p.histories.children)),
        ("workflow tasks per run (children included)", lambda p: fmt(p.histories.workflow_tasks)),
        (
            "Temporal server CPU per workflow task, ms",
            lambda p: fmt(_cpu_ms(p, "temporal") / _runs(p) / max(1.0, p.histories.workflow_tasks)),
        ),
        ("activities per run", lambda p: fmt(p.histories.activities)),
        ("local activities per run", lambda p: fmt(p.histories.local_activities)),
        ("patch markers per run (workflow.patched)", lambda p: fmt(p.histories.patch_markers)),
        ("timers per run", lambda p: fmt(p.histories.timers)),
        ("visibility writes per run (start, upserts, close)", lambda p: fmt(p.histories.visibility_writes)),
        ("history events per run (children included)", lambda p: fmt(p.histories.events)),
        (
            "Postgres transactions per run (aios's database)",
            lambda p: fmt(sum(level.transactions or 0 for level in p.result.levels) / _runs(p)),
        ),
    ]


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_run")
    parser.add_argument("--levels", default="10,10", help="concurrent runs of each profiled batch")
    parser.add_argument("--out", type=Path, help="also write the tables to this markdown file")
    args = parser.parse_args(argv)
    levels = _levels(args.levels)
    settings = load_settings()
    servers = Servers.start(TIMING, EFFECT_SECONDS)
    try:
        profiles = [await profile(workload, levels, servers, settings) for workload in WORKLOADS]
    finally:
        servers.stop()
    text = render(profiles)
    print(text)
    if args.out:
        args.out.write_text(text)
        print(f"wrote {args.out}")


def _levels(text: str) -> list[int]:
    try:
        levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise SystemExit(f"--levels {text!r}: expected counts like 10,10") from None
    if not levels or min(levels) < 1:
        raise SystemExit(f"--levels {text!r}: expected positive counts like 10,10")
    return levels


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
    sys.stdout.flush()
    os._exit(0)  # as bench/__main__.py: Temporal's native threads can crash finalization
