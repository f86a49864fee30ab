"""Checking a signed decision link for the run: `approvals.verify_link`.

The run cannot read an approver's secret, so it asks: does this token, signed with this
approver's secret and not expired, bind exactly this run, step, verdict and approver? Only
then does the decision count as verified (policy.verified_over).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporalio import activity

from activities.deps import ActivityDeps
from aios.approvals.approvers import ApproverBook
from aios.approvals.links import verify
from aios.errors import LinkRefused
from aios.models.run import LinkCheck, LinkChecked

# A link confirmed a moment before it expired still counts when the run checks it.
EXPIRY_GRACE = timedelta(minutes=2)


class ApprovalActivities:
    def __init__(self, deps: ActivityDeps) -> None:
        self._pool = deps.pool
        self._book = ApproverBook.for_settings(deps.settings)

    @activity.defn(name="approvals.verify_link")
    async def verify_link(self, check: LinkCheck) -> LinkChecked:
        async with self._pool.connection() as conn:
            approver = await self._book.get(conn, check.approver)
        try:
            claim = verify(
                check.token,
                approver.secret if approver else None,
                now=datetime.now(UTC) - EXPIRY_GRACE,
            )
        except LinkRefused as refused:
            return LinkChecked(verified=False, reason=str(refused))
        bound = (claim.run_id, claim.step, claim.verdict, claim.approver)
        if bound != (check.run_id, check.step, check.verdict, check.approver):
            return LinkChecked(
                verified=False, reason="the link was made for another run, step, verdict or approver"
            )
        return LinkChecked(verified=True)
