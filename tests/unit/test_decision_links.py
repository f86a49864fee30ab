"""Signed decision links: bound to run, step, verdict and approver; expiring; unforgeable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aios.approvals.approvers import Approver, check_approver
from aios.approvals.links import EXPIRED, FORGED, MALFORMED, make_token, read_claim, verify
from aios.errors import ApproverInvalid, LinkRefused
from aios.models.manifest import AgentManifest

SECRET = b"s" * 32
NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def token(**changes: object) -> str:
    fields: dict[str, object] = {
        "run_id": "run-1",
        "step": 2,
        "verdict": "approve",
        "approver": "alice",
        "expires": NOW + timedelta(hours=1),
    }
    fields.update(changes)
    return make_token(SECRET, **fields)  # type: ignore[arg-type]


def refusal(made: str, secret: bytes | None = SECRET, now: datetime = NOW) -> str:
    with pytest.raises(LinkRefused) as refused:
        verify(made, secret, now=now)
    return refused.value.reason


def test_a_token_verifies_with_its_approvers_secret_and_says_what_it_binds() -> None:
    claim = verify(token(), SECRET, now=NOW)
    assert (claim.run_id, claim.step, claim.verdict, claim.approver) == ("run-1", 2, "approve", "alice")
    assert token() != token()  # a fresh nonce each: each link is used once on its own


def test_another_secret_an_altered_claim_and_an_expired_token_are_refused() -> None:
    made = token()
    assert refusal(made, b"x" * 32) == FORGED
    assert refusal(made, None) == FORGED  # no such approver
    other = token(verdict="reject")
    spliced = f"{other.split('.')[0]}.{made.split('.')[1]}"
    assert read_claim(spliced).verdict == "reject" and refusal(spliced) == FORGED
    assert refusal(made, now=NOW + timedelta(hours=1)) == EXPIRED
    for garbage in ("", "abc", "a.b.c", "bm90IGpzb24.sig", "x" * 3000):
        assert refusal(garbage) == MALFORMED


def test_quiet_hours_hold_until_their_end_also_across_midnight() -> None:
    night = Approver("bob", "bob@example.com", None, "22:00-07:00", SECRET)
    assert night.quiet_until(NOW) is None  # noon
    assert night.quiet_until(NOW.replace(hour=23)) == datetime(2026, 12, 5, 7, 0, tzinfo=UTC)
    assert night.quiet_until(NOW.replace(hour=3)) == datetime(2026, 12, 4, 7, 0, tzinfo=UTC)
    lunch = Approver("carol", "c@example.com", None, "12:00-13:00", SECRET)
    assert lunch.quiet_until(NOW) == NOW.replace(hour=13)


def test_an_approver_record_is_checked_before_it_is_stored() -> None:
    check_approver("alice", "alice@example.com", None, None)
    for name, email, webhook, quiet in (
        ("al ice", "a@example.com", None, None),
        ("alice", "not-an-address", None, None),
        ("alice", None, "ftp://x", None),
        ("alice", None, None, None),
        ("alice", "a@example.com", None, "25:00-07:00"),
    ):
        with pytest.raises(ApproverInvalid):
            check_approver(name, email, webhook, quiet)


def test_verified_over_unset_leaves_every_manifest_version_unchanged() -> None:
    raw = {
        "name": "desk",
        "actions": {"notify": {"connector": "noop", "risk": "low"}},
        "policy": {"approvers": ["alice"]},
    }
    # The version this manifest had before policy.verified_over existed.
    assert AgentManifest.model_validate(raw).version == "609cc3b24c01"
    limited = AgentManifest.model_validate({**raw, "policy": {"approvers": ["alice"], "verified_over": 100}})
    assert limited.version != "609cc3b24c01"
