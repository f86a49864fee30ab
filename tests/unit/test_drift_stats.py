"""The statistics of drift (aios/drift/stats.py) and the comparison of two sets of runs."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from aios.drift.compare import agent_comparisons, compare
from aios.drift.facts import RunFacts
from aios.drift.stats import (
    chi_square,
    chi_square_p,
    judge_mean,
    judge_mix,
    judge_rate,
    psi,
    two_proportion_z,
    welch_z,
)
from aios.models.drift import DriftWindows

NOW = datetime(2026, 12, 5, 6, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("statistic", "dof", "p"),
    [
        (3.841, 1, 0.05),
        (6.635, 1, 0.01),
        (5.991, 2, 0.05),
        (7.815, 3, 0.05),
        (11.070, 5, 0.05),
        (20.515, 5, 0.001),
    ],
)
def test_chi_square_p_matches_the_tables(statistic: float, dof: int, p: float) -> None:
    assert chi_square_p(statistic, dof) == pytest.approx(p, rel=2e-3)


def test_chi_square_p_of_nothing_is_one() -> None:
    assert chi_square_p(0.0, 3) == 1.0 and chi_square_p(5.0, 0) == 1.0


def test_psi_is_zero_for_the_same_mix_and_grows_with_the_shift() -> None:
    same = psi({"refund": 50, "reply": 50}, {"refund": 50, "reply": 50})
    small = psi({"refund": 500, "reply": 500}, {"refund": 450, "reply": 550})
    large = psi({"refund": 500, "reply": 500}, {"refund": 300, "reply": 700})
    assert same == pytest.approx(0.0, abs=1e-12)
    assert small < 0.1 < large
    # the textbook value of a 50/50 -> 30/70 move, to the smoothing's effect
    assert large == pytest.approx(0.2 * math.log(5 / 3) + 0.2 * math.log(7 / 5), rel=0.01)


def test_psi_is_finite_for_an_action_new_in_the_window() -> None:
    assert math.isfinite(psi({"refund": 100}, {"refund": 60, "escalate": 40}))


def test_chi_square_pools_rare_actions() -> None:
    statistic, dof = chi_square({"a": 100, "b": 100, "r1": 6, "r2": 6}, {"a": 50, "b": 50, "r1": 4, "r2": 4})
    assert dof == 2  # r1 and r2 (each expected under 5 on a side) pooled into one cell
    statistic, dof = chi_square({"a": 100, "b": 100, "rare": 1}, {"a": 50, "b": 50})
    assert dof == 1  # `rare` (expected under 5 on a side) gets no cell of its own
    assert statistic == pytest.approx(0.0, abs=0.05)


def test_a_twenty_point_shift_moves_the_mix_with_enough_runs_and_not_with_few() -> None:
    baseline = {"refund": 350, "reply": 350}
    assert judge_mix(baseline, {"refund": 30, "reply": 70}).moved
    assert not judge_mix(baseline, {"refund": 6, "reply": 14}).moved  # 20 runs: not significant
    assert not judge_mix(baseline, {"refund": 48, "reply": 52}).moved


def test_the_mix_judgement_shows_each_sides_shares() -> None:
    judged = judge_mix({"refund": 60, "reply": 40}, {"refund": 30, "reply": 70})
    assert judged.baseline == {"refund": 0.6, "reply": 0.4}
    assert judged.window == {"refund": 0.3, "reply": 0.7}
    assert judged.statistic.startswith("psi ")


def test_a_rate_moves_only_when_significant_and_five_points_or_more() -> None:
    assert judge_rate(70, 700, 40, 100).moved  # 10% -> 40%
    assert not judge_rate(70, 700, 12, 100).moved  # 10% -> 12%: noise
    assert not judge_rate(10_000, 100_000, 10_300, 100_000).moved  # significant, but 0.3 points
    assert two_proportion_z(0, 100, 0, 100) == 0.0  # nothing on either side: nothing moved


def test_a_rate_too_rare_for_the_normal_approximation_is_not_judged() -> None:
    judged = judge_rate(2, 700, 3, 20)  # 0.3% -> 15%, but the window expects under one hit
    assert not judged.moved and judged.statistic.endswith("too rare to test")


def test_the_continuity_correction_shrinks_z_on_small_samples() -> None:
    plain = (12 / 40 - 4 / 40) / math.sqrt(0.2 * 0.8 * (2 / 40))
    assert 0 < two_proportion_z(4, 40, 12, 40) < plain


def test_a_mean_moves_only_when_significant_and_ten_percent_or_more() -> None:
    base = [100.0 + (i % 10) for i in range(200)]
    assert judge_mean(base, [150.0 + (i % 10) for i in range(50)]).moved
    assert not judge_mean(base, [105.0 + (i % 10) for i in range(50)]).moved  # under 10%
    assert welch_z([5.0, 5.0, 5.0], [5.0, 5.0]) == 0.0
    assert welch_z([5.0, 5.0, 5.0], [6.0, 6.0]) == math.inf  # constant sides that differ


def _run(version: str, hours_ago: float, actions: tuple[str, ...], tokens: int = 100) -> RunFacts:
    return RunFacts(
        version=version,
        started_at=NOW - timedelta(hours=hours_ago),
        actions=actions,
        gated=0,
        rejected=0,
        confidences=(0.9,) * len(actions),
        tokens=tokens,
        cost=0.01,
        compensated=False,
    )


def _mix(version: str, start_hour: float, count: int, refund_share: float) -> list[RunFacts]:
    refunds = round(count * refund_share)
    return [
        _run(version, start_hour + i * 0.1, ("refund",) if i < refunds else ("reply",)) for i in range(count)
    ]


def test_a_version_is_compared_with_its_own_baseline() -> None:
    runs = _mix("v1", 1, 100, 0.5) + _mix("v1", 30, 400, 0.5) + _mix("v2", 1, 100, 0.2)
    found = agent_comparisons("desk", runs, as_of=NOW, windows=DriftWindows())
    by_version = {comparison.version: comparison for comparison in found}
    assert by_version["v1"].enough and not by_version["v1"].moved
    assert by_version["v1"].baseline_runs == 400 and by_version["v1"].window_runs == 100
    assert not by_version["v2"].enough and by_version["v2"].moved == []  # no baseline yet: no verdict


def test_a_live_canary_is_compared_with_the_live_version() -> None:
    runs = _mix("v1", 1, 100, 0.5) + _mix("v2", 1, 100, 0.2)
    found = agent_comparisons("desk", runs, as_of=NOW, windows=DriftWindows(), canary="v2")
    canary = next(comparison for comparison in found if comparison.against == "live v1")
    assert canary.version == "v2" and canary.kind == "canary"
    assert [row.metric for row in canary.moved] == ["action_mix"]


def test_too_few_runs_is_never_a_verdict() -> None:
    compared = compare(
        agent="desk",
        version="v1",
        against="baseline",
        baseline=_mix("v1", 30, 10, 0.9),
        window=_mix("v1", 1, 10, 0.1),
        span=(NOW - timedelta(days=1), NOW),
        min_runs=20,
    )
    assert not compared.enough and compared.moved == []
    assert {row.statistic for row in compared.metrics} == {"too few runs"}
