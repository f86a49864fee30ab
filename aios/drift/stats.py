"""The statistics of drift: pure functions, no I/O.

Each metric is judged by two tests at once: one that says the move is real (not the noise of a
small sample) and one that says it is large enough to matter (a huge sample makes any move
"significant"). A metric has moved only when both say so, and only with at least
`MIN_RUNS` runs on each side: fewer is "too few runs", never an alarm.

- **Action mix** (the share of each action among the steps): population stability index,
  PSI = sum((w - b) * ln(w / b)), with half a count added to every action on both sides so an
  action new in the window has a finite term. Moved when PSI >= 0.1 *and* a chi-square test
  of homogeneity of the two count vectors gives p < 0.001. Why not the customary PSI >= 0.2
  alone: a 20-point move between two actions (50/50 to 30/70) has a PSI of only 0.17, and on
  a small window PSI alone is biased upward by about (k-1)(1/n_w + 1/n_b), so it false-alarms
  exactly when samples are small; the chi-square test brings the sample size in. Actions
  expected fewer than 5 times are pooled into one cell before the test, as the chi-square
  approximation asks.
- **Rates** (approval: the share of steps sent to a person; rejection: the share of those a
  person or an expired SLA rejected; compensation: the share of runs that ended compensated):
  a two-proportion z-test (pooled, with Yates' continuity correction), moved when |z| >= 3.29
  (p < 0.001, two-sided) *and* the rate moved by at least 5 points; a rate whose sides expect
  fewer than 5 hits or misses is "too rare to test" (the normal approximation fails there).
  An absolute threshold rather than a relative one because these rates are often near zero,
  where 1% to 2% "doubles" and means nothing.
- **Means** (confidence per proposal, tokens and cost per run): Welch's z on the two means,
  moved when |z| >= 3.29 *and* the mean moved by at least 10% of the baseline's.

The strict p < 0.001 is because seven metrics are checked per agent and version every day: a
per-test false-alarm rate of 0.1% keeps the daily rate of an unchanged agent well under 1%
(bench/drift_detection.py measures it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

MIN_RUNS = 20  # per side: fewer runs than this are "too few to compare", never an alarm
PSI_THRESHOLD = 0.1
CHI_SQUARE_P = 0.001
Z_THRESHOLD = 3.29  # two-sided p < 0.001
RATE_POINTS = 0.05  # a rate must move at least 5 points
MEAN_RELATIVE = 0.10  # a mean must move at least 10% of the baseline's
PSI_SMOOTHING = 0.5  # counts added to every action on both sides
MIN_EXPECTED = 5.0  # chi-square cells expected fewer times are pooled
OTHER = "(other)"


@dataclass(frozen=True)
class Judgement:
    """One metric's comparison: its value on each side, the statistic, and whether it moved."""

    baseline: float | dict[str, float]  # the action mix: each action's share
    window: float | dict[str, float]
    statistic: str  # "psi 0.31, chi2 p=2e-05"
    moved: bool


def psi(baseline: Mapping[str, int], window: Mapping[str, int]) -> float:
    """Population stability index of two count vectors (smoothed: see the module docstring)."""
    keys = sorted(set(baseline) | set(window))
    if not keys:
        return 0.0
    b_total = sum(baseline.values()) + PSI_SMOOTHING * len(keys)
    w_total = sum(window.values()) + PSI_SMOOTHING * len(keys)
    total = 0.0
    for key in keys:
        b = (baseline.get(key, 0) + PSI_SMOOTHING) / b_total
        w = (window.get(key, 0) + PSI_SMOOTHING) / w_total
        total += (w - b) * math.log(w / b)
    return total


def chi_square(baseline: Mapping[str, int], window: Mapping[str, int]) -> tuple[float, int]:
    """Pearson's chi-square of homogeneity of two count vectors: (statistic, degrees of freedom).

    Cells expected fewer than MIN_EXPECTED times on either side are pooled into one (which
    joins the smallest other cell when it is still that rare)."""
    b_total, w_total = sum(baseline.values()), sum(window.values())
    if b_total == 0 or w_total == 0:
        return 0.0, 0
    cells = _pooled(baseline, window, b_total, w_total)
    if len(cells) < 2:
        return 0.0, 0
    grand = b_total + w_total
    statistic = 0.0
    for b_count, w_count in cells:
        column = b_count + w_count
        for observed, side in ((b_count, b_total), (w_count, w_total)):
            expected = column * side / grand
            statistic += (observed - expected) ** 2 / expected
    return statistic, len(cells) - 1


def _pooled(
    baseline: Mapping[str, int], window: Mapping[str, int], b_total: int, w_total: int
) -> list[tuple[int, int]]:
    cells: list[tuple[int, int]] = []
    other = [0, 0]
    for key in sorted(set(baseline) | set(window)):
        b_count, w_count = baseline.get(key, 0), window.get(key, 0)
        if _expected_min(b_count + w_count, b_total, w_total) < MIN_EXPECTED:
            other[0] += b_count
            other[1] += w_count
        else:
            cells.append((b_count, w_count))
    if not sum(other):
        return cells
    if cells and _expected_min(sum(other), b_total, w_total) < MIN_EXPECTED:
        smallest = min(range(len(cells)), key=lambda index: sum(cells[index]))  # still too rare: join it
        cells[smallest] = (cells[smallest][0] + other[0], cells[smallest][1] + other[1])
    else:
        cells.append((other[0], other[1]))
    return cells


def _expected_min(column: int, b_total: int, w_total: int) -> float:
    """The smaller of a cell's two expected counts."""
    return min(column * b_total, column * w_total) / (b_total + w_total)


def chi_square_p(statistic: float, dof: int) -> float:
    """The upper tail of the chi-square distribution, exact for whole degrees of freedom."""
    if dof <= 0:
        return 1.0
    if statistic <= 0:
        return 1.0
    half = statistic / 2
    if dof % 2 == 0:  # Q = e^-x/2 * sum_{i < dof/2} (x/2)^i / i!
        term, total = 1.0, 1.0
        for i in range(1, dof // 2):
            term *= half / i
            total += term
        return min(1.0, math.exp(-half) * total)
    root = math.sqrt(statistic)  # odd: 2(1 - Phi(sqrt x)) + 2 phi(sqrt x) * sum x^(2i-1)/2 / (2i-1)!!
    total = math.erfc(root / math.sqrt(2))
    term = root
    series = 0.0
    for i in range(1, (dof + 1) // 2):
        series += term
        term *= statistic / (2 * i + 1)
    density = math.exp(-half) / math.sqrt(2 * math.pi)
    return min(1.0, total + 2 * density * series)


def judge_mix(baseline: Mapping[str, int], window: Mapping[str, int]) -> Judgement:
    """The action mix: moved when PSI >= 0.1 and the chi-square test gives p < 0.001."""
    index = psi(baseline, window)
    statistic, dof = chi_square(baseline, window)
    p = chi_square_p(statistic, dof)
    return Judgement(
        baseline=shares(baseline),
        window=shares(window),
        statistic=f"psi {index:.3f}, chi2 p={p:.2g}",
        moved=index >= PSI_THRESHOLD and p < CHI_SQUARE_P,
    )


def two_proportion_z(b_hits: int, b_total: int, w_hits: int, w_total: int) -> float:
    """z of the difference of two proportions, with the pooled proportion's standard error and
    Yates' continuity correction (the counts are whole numbers: without it small samples
    false-alarm more often than the threshold says)."""
    if b_total == 0 or w_total == 0:
        return 0.0
    pooled = (b_hits + w_hits) / (b_total + w_total)
    error = math.sqrt(pooled * (1 - pooled) * (1 / b_total + 1 / w_total))
    difference = w_hits / w_total - b_hits / b_total
    if error == 0:
        return 0.0  # both sides all hits or all misses: nothing moved
    corrected = max(0.0, abs(difference) - (1 / b_total + 1 / w_total) / 2)
    return math.copysign(corrected, difference) / error


def rate_testable(b_hits: int, b_total: int, w_hits: int, w_total: int) -> bool:
    """The normal approximation holds: each side expects at least MIN_EXPECTED hits and misses."""
    if b_total == 0 or w_total == 0:
        return False
    pooled = (b_hits + w_hits) / (b_total + w_total)
    return min(b_total, w_total) * min(pooled, 1 - pooled) >= MIN_EXPECTED


def judge_rate(b_hits: int, b_total: int, w_hits: int, w_total: int) -> Judgement:
    """A rate: moved when |z| >= 3.29 and it moved by at least 5 points (and each side expects
    at least 5 hits and 5 misses, else the test is not trusted and nothing moved)."""
    base = b_hits / b_total if b_total else 0.0
    now = w_hits / w_total if w_total else 0.0
    z = two_proportion_z(b_hits, b_total, w_hits, w_total)
    testable = rate_testable(b_hits, b_total, w_hits, w_total)
    return Judgement(
        baseline=base,
        window=now,
        statistic=f"z {z:+.2f} (n {b_total}/{w_total})" + ("" if testable else ", too rare to test"),
        moved=testable and abs(z) >= Z_THRESHOLD and abs(now - base) >= RATE_POINTS,
    )


def welch_z(baseline: Sequence[float], window: Sequence[float]) -> float:
    """Welch's statistic for the difference of two means (as a z: the samples are large)."""
    if len(baseline) < 2 or len(window) < 2:
        return 0.0
    b_mean, w_mean = _mean(baseline), _mean(window)
    error = math.sqrt(_variance(baseline) / len(baseline) + _variance(window) / len(window))
    if error == 0:
        return 0.0 if b_mean == w_mean else math.copysign(math.inf, w_mean - b_mean)
    return (w_mean - b_mean) / error


def judge_mean(baseline: Sequence[float], window: Sequence[float]) -> Judgement:
    """A mean: moved when |z| >= 3.29 and it moved by at least 10% of the baseline's."""
    base, now = _mean(baseline), _mean(window)
    z = welch_z(baseline, window)
    relative = abs(now - base) / abs(base) if base else (math.inf if now else 0.0)
    return Judgement(
        baseline=base,
        window=now,
        statistic=f"z {z:+.2f}, {relative:+.0%}" if math.isfinite(relative) else f"z {z:+.2f}",
        moved=abs(z) >= Z_THRESHOLD and relative >= MEAN_RELATIVE,
    )


def shares(counts: Mapping[str, int]) -> dict[str, float]:
    """Each action's share of the steps, rounded for reading."""
    total = sum(counts.values())
    return {key: round(count / total, 3) for key, count in sorted(counts.items())} if total else {}


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _variance(values: Sequence[float]) -> float:
    mean = _mean(values)
    return sum((value - mean) ** 2 for value in values) / (len(values) - 1)
