"""Shared helpers: percentiles, the machine description, and the BENCHMARKS.md section format."""

from __future__ import annotations

import os
import platform
import statistics
from dataclasses import dataclass, field


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            names = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {platform.system()}"


@dataclass
class Section:
    """One benchmark's part of docs/BENCHMARKS.md."""

    title: str
    command: str
    rows: list[tuple[str, str]] = field(default_factory=list)
    notes: str = ""

    def add(self, name: str, value: str) -> None:
        self.rows.append((name, value))
        print(f"  {name}: {value}")

    def markdown(self) -> str:
        lines = [
            f"## {self.title}",
            "",
            f"Command: `{self.command}`",
            "",
            "| figure | value |",
            "|---|---|",
        ]
        lines += [f"| {name} | {value} |" for name, value in self.rows]
        if self.notes:
            lines += ["", self.notes]
        return "\n".join(lines) + "\n"


def summarize_ms(samples_s: list[float]) -> str:
    ms = [sample * 1000 for sample in samples_s]
    return (
        f"p50 {percentile(ms, 0.5):.1f} ms, p95 {percentile(ms, 0.95):.1f} ms, "
        f"mean {statistics.fmean(ms):.1f} ms (n={len(ms)})"
    )
