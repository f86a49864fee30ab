from aios.governance.admission import bucket as _bucket
from aios.governance.rollouts import diff_runs


def _row(run_id: str, version: str, actions: list[str], paired_with: str | None = None) -> dict[str, object]:
    proposals = [{"proposed": {"action": action}, "grade": "auto"} for action in actions]
    return {
        "run_id": run_id,
        "manifest_version": version,
        "paired_with": paired_with,
        "state": {"proposals": proposals},
    }


def test_shadow_runs_are_paired_with_the_run_they_shadowed() -> None:
    report = diff_runs(
        [
            _row("r1", "v1", ["a", "b"]),
            _row("r1-shadow", "v2", ["a", "c"], paired_with="r1"),
            _row("r2", "v1", ["a", "b"]),
            _row("r2-shadow", "v2", ["a", "b"], paired_with="r2"),
        ]
    )
    assert [(pair.live_run, pair.same) for pair in report.pairs] == [("r1", False), ("r2", True)]
    assert report.runs_by_version == {"v1": 2, "v2": 2}
    assert report.by_version["v2"][("c", "auto")] == 1


def test_a_shadow_whose_live_run_is_out_of_the_window_is_not_paired() -> None:
    report = diff_runs([_row("r9-shadow", "v2", ["a"], paired_with="r9")])
    assert report.pairs == []


def test_canary_buckets_are_stable_and_spread() -> None:
    ids = [f"agent-{i}" for i in range(2000)]
    share = sum(1 for run_id in ids if _bucket(run_id) < 0.25) / len(ids)
    assert 0.2 < share < 0.3
    assert [_bucket(run_id) for run_id in ids[:5]] == [_bucket(run_id) for run_id in ids[:5]]
