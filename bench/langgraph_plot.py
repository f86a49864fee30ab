"""The side-by-side benchmark's plot: six panels, one PNG, for docs/BENCHMARKS.md."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: render straight to the file

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from bench.langgraph_common import STEPS_LONG, STEPS_SHORT, SideFigures
from bench.langgraph_crash import CrashOutcome

COLORS = {"aios": "#1f77b4", "langgraph": "#ff7f0e", "langgraph-async": "#fdbf6f"}
NAMES = {"aios": "aios", "langgraph": "LangGraph\nsync", "langgraph-async": "LangGraph\nasync (default)"}
CPU_PARTS = (
    ("process", "side's process", 1.0),
    ("temporal", "Temporal server", 0.6),
    ("postgres", "Postgres", 0.3),
)


def plot(sides: dict[str, SideFigures], crashes: list[CrashOutcome], path: Path) -> None:
    figure, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    _percentiles(axes[0][0], sides, f"per-step latency: run time / K (K={STEPS_LONG})", _run_time)
    _percentiles(axes[0][1], sides, f"per-step latency: marginal, K{STEPS_SHORT}->K{STEPS_LONG}", _marginal)
    _throughput(axes[0][2], sides)
    _cpu(axes[1][0], sides)
    _memory(axes[1][1], sides)
    _crashes(axes[1][2], crashes)
    figure.suptitle("aios vs LangGraph + Postgres checkpointer: the same agent loop (python -m bench)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _run_time(figures: SideFigures, fraction: float) -> float:
    return figures.per_step(STEPS_LONG, fraction) * 1000


def _marginal(figures: SideFigures, fraction: float) -> float:
    return figures.marginal(fraction) * 1000


def _percentiles(
    axis: Axes, sides: dict[str, SideFigures], title: str, value: Callable[[SideFigures, float], float]
) -> None:
    width = 0.38
    for offset, (fraction, hatch) in enumerate(((0.5, ""), (0.95, "//"))):
        positions = [index + (offset - 0.5) * width for index in range(len(sides))]
        heights = [value(figures, fraction) for figures in sides.values()]
        colors = [COLORS[side] for side in sides]
        bars = axis.bar(
            positions, heights, width, color=colors, hatch=hatch, edgecolor="black", linewidth=0.5
        )
        axis.bar_label(bars, labels=[f"p{round(fraction * 100)}\n{h:.1f}" for h in heights], fontsize=7)
    _sides_axis(axis, sides, title, "ms per step (lower is better)")


def _throughput(axis: Axes, sides: dict[str, SideFigures]) -> None:
    medians = [figures.throughput for figures in sides.values()]
    low = [median - min(figures.rounds) for median, figures in zip(medians, sides.values(), strict=True)]
    high = [max(figures.rounds) - median for median, figures in zip(medians, sides.values(), strict=True)]
    bars = axis.bar(
        range(len(sides)), medians, color=[COLORS[side] for side in sides], yerr=[low, high], capsize=4
    )
    axis.bar_label(bars, labels=[f"{median:.0f}" for median in medians], fontsize=8)
    _sides_axis(axis, sides, "throughput: N concurrent runs", "steps/s (higher is better)")


def _cpu(axis: Axes, sides: dict[str, SideFigures]) -> None:
    bottoms = [0.0] * len(sides)
    for part, label, alpha in CPU_PARTS:
        heights = [
            (figures.cpu_ms_per_step(part) or 0.0) if part in figures.cpu_parts else 0.0
            for figures in sides.values()
        ]
        axis.bar(range(len(sides)), heights, bottom=bottoms, label=label, color="#555555", alpha=alpha)
        bottoms = [bottom + height for bottom, height in zip(bottoms, heights, strict=True)]
    for index, total in enumerate(bottoms):
        axis.annotate(f"{total:.1f}", (index, total), ha="center", va="bottom", fontsize=8)
    axis.legend(fontsize=7)
    _sides_axis(axis, sides, "CPU per step (servers also serve other load)", "CPU ms per step")


def _memory(axis: Axes, sides: dict[str, SideFigures]) -> None:
    positions = range(len(sides))
    peaks = [figures.peak_rss_mb for figures in sides.values()]
    temporal = [figures.temporal_rss_mb or 0.0 for figures in sides.values()]
    axis.bar(positions, peaks, color=[COLORS[side] for side in sides], label="side's process (peak)")
    if any(temporal):
        axis.bar(positions, temporal, bottom=peaks, color="white", edgecolor="gray", hatch="..",
                 label="+ Temporal dev server (shared, whole process)")  # fmt: skip
        axis.legend(fontsize=7)
    for index, (peak, extra) in enumerate(zip(peaks, temporal, strict=True)):
        text = f"{peak:.0f}" + (f" + {extra:.0f}" if extra else "")
        axis.annotate(text, (index, peak + extra), ha="center", va="bottom", fontsize=8)
    _sides_axis(axis, sides, "memory: RSS", "MB")


def _crashes(axis: Axes, crashes: list[CrashOutcome]) -> None:
    width = 0.38
    positions = range(len(crashes))
    posts = [outcome.posts.get(outcome.crashed_action, 0) for outcome in crashes]
    applied = [outcome.applied.get(outcome.crashed_action, 0) for outcome in crashes]
    axis.bar([p - width / 2 for p in positions], posts, width, label="POSTs received", color="#bbbbbb")
    bars = axis.bar(
        [p + width / 2 for p in positions], applied, width, label="effects applied", color="#d62728"
    )
    axis.bar_label(bars, labels=[f"repeated: {outcome.repeated}" for outcome in crashes], fontsize=8)
    axis.axhline(1, color="black", linewidth=0.8, linestyle=":")
    axis.set_xticks(list(positions), [outcome.side.replace(", ", "\n") for outcome in crashes], fontsize=8)
    axis.set_ylim(0, max(posts + applied) + 1)
    axis.set_title("crash mid-effect, then resume: the killed step", fontsize=10)
    axis.set_ylabel("count at the server")
    axis.legend(fontsize=7, loc="upper left")


def _sides_axis(axis: Axes, sides: dict[str, SideFigures], title: str, ylabel: str) -> None:
    axis.set_xticks(range(len(sides)), [NAMES[side] for side in sides], fontsize=8)
    axis.set_title(title, fontsize=10)
    axis.set_ylabel(ylabel)
    axis.margins(y=0.2)
