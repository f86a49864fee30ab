"""Comparing what two manifest versions of an agent proposed (`aios agents diff`).

Pure: it reads the run mirrors (aios_runs rows) and compares proposals, pairing each
shadow run with the live run it shadowed, so the same task is compared to itself.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

Proposed = tuple[str, str]  # (action, policy grade)


@dataclass(frozen=True)
class PairDiff:
    live_run: str
    shadow_run: str
    live: list[Proposed]
    shadow: list[Proposed]

    @property
    def same(self) -> bool:
        return self.live == self.shadow


@dataclass
class VersionDiff:
    pairs: list[PairDiff] = field(default_factory=list)
    by_version: dict[str, Counter[Proposed]] = field(default_factory=dict)
    runs_by_version: Counter[str] = field(default_factory=Counter)


def _proposals(state: dict[str, Any]) -> list[Proposed]:
    return [(p["proposed"]["action"], p["grade"]) for p in state.get("proposals", [])]


def diff_runs(rows: list[dict[str, Any]]) -> VersionDiff:
    """`rows` as returned by aios.ledger.runs.recent_runs."""
    report = VersionDiff()
    by_id = {row["run_id"]: row for row in rows}
    for row in rows:
        version = row["manifest_version"]
        report.runs_by_version[version] += 1
        report.by_version.setdefault(version, Counter()).update(_proposals(row["state"]))
        live = by_id.get(row["paired_with"]) if row.get("paired_with") else None
        if live is not None:
            report.pairs.append(
                PairDiff(
                    live_run=live["run_id"],
                    shadow_run=row["run_id"],
                    live=_proposals(live["state"]),
                    shadow=_proposals(row["state"]),
                )
            )
    return report
