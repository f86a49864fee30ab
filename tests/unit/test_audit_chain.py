"""The audit hash chain without a database: canonical form, sealing, and tamper detection."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from aios.governance.audit import (
    GENESIS,
    AuditEntry,
    AuditRow,
    canonical_json,
    chain_hash,
    digest,
    seal,
    verify_rows,
)

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def _entry(n: int, **fields: object) -> AuditEntry:
    values: dict[str, object] = {
        "event_key": f"run-1/e{n}",
        "run_id": "run-1",
        "step": f"step-{n}",
        "actor": "agent",
        "action": "payout",
        "outcome": "proposed:needs_approval",
        "rationale": "the customer was charged twice",
        "detail": {"confidence": 0.9, "amount": 250.0, "customer": "c-42"},
        "manifest_version": "v3",
        "trace_id": "ab" * 16,
    }
    values.update(fields)
    return AuditEntry(**values)  # type: ignore[arg-type]


def _chain(count: int) -> list[AuditRow]:
    rows, prev = [], GENESIS
    for n in range(1, count + 1):
        row = dataclasses.replace(
            seal(_entry(n), seq=n, prev_hash=prev, recorded_at=T0 + timedelta(seconds=n)), id=100 + n
        )
        rows.append(row)
        prev = row.row_hash or ""
    return rows


# -- canonical form ------------------------------------------------------------------------


def test_canonical_json_sorts_keys_and_drops_whitespace() -> None:
    assert canonical_json({"b": [1, {"d": None, "c": True}], "a": "é"}) == (
        '{"a":"é","b":[1,{"c":true,"d":null}]}'
    )


@pytest.mark.parametrize(
    ("written", "read_back"),
    [
        (250.0, 250),  # jsonb may drop the ".0"
        (1e16, 10000000000000000),  # jsonb never writes exponents
        (1e-07, 1e-07),
        (-0.0, 0),  # jsonb has no negative zero
        (0.1 + 0.2, 0.30000000000000004),
    ],
)
def test_numbers_are_canonical_by_value(written: float, read_back: float) -> None:
    assert canonical_json({"x": written}) == canonical_json({"x": read_back})


def test_different_values_stay_different() -> None:
    assert canonical_json(1) != canonical_json("1")
    assert canonical_json(0.1) != canonical_json(0.10000000000000002)
    assert canonical_json([1, 2]) != canonical_json([2, 1])


def test_canonical_json_refuses_what_json_cannot_hold() -> None:
    with pytest.raises(ValueError, match="nan"):
        canonical_json(float("nan"))
    with pytest.raises(TypeError, match="set"):
        canonical_json({1, 2})


def test_digest_is_sha256_of_the_canonical_form() -> None:
    assert digest({"b": 1, "a": 2}) == digest({"a": 2, "b": 1.0})
    assert len(digest({})) == 64


def test_seal_stores_what_jsonb_will_hold_and_hashes_it() -> None:
    row = seal(_entry(1, detail={1: "int key"}), seq=1, prev_hash=GENESIS, recorded_at=T0)
    assert row.detail == {"1": "int key"}
    assert row.input_digest == digest({"1": "int key"})
    assert row.row_hash == chain_hash(GENESIS, row.content())


def test_time_is_hashed_in_utc_whatever_zone_it_comes_back_in() -> None:
    row = seal(_entry(1), seq=1, prev_hash=GENESIS, recorded_at=T0)
    elsewhere = dataclasses.replace(row, recorded_at=T0.astimezone(timezone(timedelta(hours=2))))
    assert chain_hash(GENESIS, elsewhere.content()) == row.row_hash


def test_confidence_and_approver_come_from_the_event() -> None:
    assert _entry(1).confidence == 0.9
    assert _entry(1, detail={"confidence": True}).confidence is None
    assert _entry(1, actor="alice", outcome="approve").approver == "alice"
    assert _entry(1, actor="alice", outcome="executed").approver == "alice"
    assert _entry(1, actor="policy", outcome="executed").approver is None
    assert _entry(1, actor="operator", action="start", outcome="started").approver is None


def test_detail_is_not_hashed_raw_but_through_its_digest() -> None:
    row = seal(_entry(1), seq=1, prev_hash=GENESIS, recorded_at=T0)
    assert "detail" not in row.content()
    assert row.content()["input_digest"] == row.input_digest
    assert json.dumps(row.to_json())  # the JSON view is serialisable as it is


# -- tamper detection ----------------------------------------------------------------------


def test_an_intact_chain_verifies() -> None:
    rows = _chain(5)
    report = verify_rows(rows)
    assert report.ok
    assert (report.rows_checked, report.head_seq, report.head_hash) == (5, 5, rows[-1].row_hash)


def test_an_empty_chain_verifies() -> None:
    report = verify_rows([], unchained_rows=3)
    assert report.ok
    assert (report.rows_checked, report.head_hash, report.unchained_rows) == (0, GENESIS, 3)


@pytest.mark.parametrize(
    "change",
    [
        {"outcome": "rejected"},
        {"actor": "mallory"},
        {"rationale": ""},
        {"confidence": 0.99},
        {"approver": "mallory"},
        {"recorded_at": T0},
        {"trace_id": None},
        {"manifest_version": "v4"},
    ],
)
def test_a_changed_field_is_named(change: dict[str, object]) -> None:
    rows = _chain(4)
    rows[2] = dataclasses.replace(rows[2], **change)  # type: ignore[arg-type]
    report = verify_rows(rows)
    assert report.broken is not None
    assert (report.broken.id, report.broken.event_key) == (103, "run-1/e3")
    assert "a field was edited" in report.broken.reason
    assert report.rows_checked == 2


def test_a_changed_detail_is_named() -> None:
    rows = _chain(3)
    rows[1] = dataclasses.replace(rows[1], detail={**rows[1].detail, "amount": 25000})
    report = verify_rows(rows)
    assert report.broken is not None
    assert report.broken.id == 102
    assert "detail" in report.broken.reason


def test_a_rehashed_row_is_caught_at_the_next_row() -> None:
    rows = _chain(3)
    forged = dataclasses.replace(rows[1], outcome="rejected")
    rows[1] = dataclasses.replace(forged, row_hash=chain_hash(rows[0].row_hash or "", forged.content()))
    report = verify_rows(rows)
    assert report.broken is not None
    assert report.broken.id == 103
    assert "previous row was rewritten" in report.broken.reason


def test_a_deleted_row_is_named() -> None:
    rows = _chain(5)
    del rows[2]
    report = verify_rows(rows)
    assert report.broken is not None
    assert report.broken.id == 104
    assert "expected position 3 but found 4" in report.broken.reason


def test_reordered_rows_are_named() -> None:
    rows = _chain(4)
    rows[1], rows[2] = rows[2], rows[1]
    report = verify_rows(rows)
    assert report.broken is not None
    assert report.broken.id == 103
    assert "reordered" in report.broken.reason


def test_swapped_positions_are_caught_by_the_hash() -> None:
    rows = _chain(4)
    second, third = rows[1], rows[2]
    rows[1] = dataclasses.replace(third, chain_seq=2, prev_hash=second.prev_hash)
    rows[2] = dataclasses.replace(second, chain_seq=3, prev_hash=third.prev_hash)
    report = verify_rows(rows)
    assert report.broken is not None
    assert report.broken.id == 103


def test_report_names_the_row_for_a_person() -> None:
    rows = _chain(2)
    rows[1] = dataclasses.replace(rows[1], outcome="rejected")
    broken = verify_rows(rows).broken
    assert broken is not None
    assert broken.describe().startswith("row #2 (id 102, event run-1/e2, run run-1): ")
