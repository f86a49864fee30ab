"""The realistic side-by-side's plot: throughput against its latency bound, run latency, CPU per step."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: render straight to the file

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from bench.realistic_figures import SideResult

COLORS = {"aios": "#1f77b4", "langgraph": "#ff7f0e"}
NAMES = {"aios": "aios", "langgraph": "LangGraph (sync)"}
PARTS = (
    ("process", "side's process", 1.0),
    ("temporal", "Temporal server", 0.6),
    ("postgres", "Postgres", 0.3),
)
TITLE = "aios vs LangGraph + Postgres, realistic workload: model 150±50 ms, POST 30 ms, approvals"


def plot(results: dict[str, SideResult], path: Path) -> None:
    figure, axes = plt.subplots(1, 3, figsize=(16, 5))
    _throughput(axes[0], results)
    _latency(axes[1], results)
    _cpu(axes[2], results)
    figure.suptitle(TITLE)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _counts(results: dict[str, SideResult]) -> list[int]:
    return [level.runs for level in next(iter(results.values())).levels]


def _throughput(axis: Axes, results: dict[str, SideResult]) -> None:
    counts = _counts(results)
    bound = [level.bound for level in results["aios"].levels]
    axis.plot(counts, bound, linestyle=":", color="black", marker=".", label="latency bound")
    for side, result in results.items():
        rates = [level.steps_per_second for level in result.levels]
        axis.plot(counts, rates, marker="o", color=COLORS[side], label=NAMES[side])
        for count, rate in zip(counts, rates, strict=True):
            axis.annotate(f"{rate:.0f}", (count, rate), textcoords="offset points", xytext=(0, 6), fontsize=8)
    axis.set(title="throughput", xlabel="concurrent runs", ylabel="steps/s (higher is better)")
    axis.legend(fontsize=8)


def _latency(axis: Axes, results: dict[str, SideResult]) -> None:
    counts = _counts(results)
    for side, result in results.items():
        for fraction, style in ((0.5, "-"), (0.95, "--")):
            # An unfinished run is drawn at the batch's length: a lower bound of its latency.
            values = [min(level.run_latency(fraction), level.seconds) for level in result.levels]
            label = f"{NAMES[side]} p{round(fraction * 100)}"
            axis.plot(counts, values, linestyle=style, marker="o", color=COLORS[side], label=label)
    axis.set(title="run latency", xlabel="concurrent runs", ylabel="seconds (lower is better)")
    axis.legend(fontsize=8)


def _cpu(axis: Axes, results: dict[str, SideResult]) -> None:
    counts = _counts(results)
    width = 0.38
    for offset, (side, result) in enumerate(results.items()):
        positions = [index + (offset - 0.5) * width for index in range(len(counts))]
        bottoms = [0.0] * len(counts)
        for part, label, alpha in PARTS:
            if part not in result.cpu_parts:
                continue
            heights = [level.cpu_ms_per_step(part) or 0.0 for level in result.levels]
            axis.bar(positions, heights, width, bottom=bottoms, color=COLORS[side], alpha=alpha,
                     edgecolor="black", linewidth=0.4, label=f"{NAMES[side]}: {label}")  # fmt: skip
            bottoms = [bottom + height for bottom, height in zip(bottoms, heights, strict=True)]
        for position, total in zip(positions, bottoms, strict=True):
            axis.annotate(f"{total:.0f}", (position, total), ha="center", va="bottom", fontsize=8)
    axis.set_xticks(range(len(counts)), [f"N={count}" for count in counts])
    axis.set(title="CPU per step", ylabel="CPU ms per step (lower is better)")
    axis.legend(fontsize=7)
