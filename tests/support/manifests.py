"""Manifests built in code for tests: small, explicit, each test states what matters to it."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from aios.models.manifest import ActionSpec, AgentManifest, BudgetSpec, PolicySpec, RiskClass, SlaSpec

FAST_SLA = SlaSpec(
    remind_after=timedelta(seconds=1), escalate_after=timedelta(seconds=2), expire_after=timedelta(seconds=3)
)
SLOW_SLA = SlaSpec(
    remind_after=timedelta(hours=1), escalate_after=timedelta(hours=2), expire_after=timedelta(hours=3)
)


def unique_agent(prefix: str = "t") -> str:
    """Agents share budgets and slots by name: each test gets its own."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def http_action(
    base_url: str,
    name: str,
    risk: RiskClass,
    *,
    params: tuple[str, ...] = ("customer", "amount"),
    compensation: str | None = None,
    **extra: Any,
) -> ActionSpec:
    return ActionSpec(
        connector="http",
        risk=risk,
        params=list(params),
        target=f"{base_url}/effects/{name}",
        compensation=compensation,
        **extra,
    )


def refund_like_manifest(
    base_url: str,
    *,
    name: str | None = None,
    sla: SlaSpec = SLOW_SLA,
    mode: str = "live",
    budget: BudgetSpec | None = None,
    approval_amount_over: float = 100,
) -> AgentManifest:
    """charge (low: auto, undone by refund), then payout (medium: needs approval over the amount)."""
    return AgentManifest.model_validate(
        {
            "name": name or unique_agent(),
            "actions": {
                "charge": http_action(
                    base_url, "charge", RiskClass.LOW, params=("customer",), compensation="refund"
                ),
                "payout": http_action(base_url, "payout", RiskClass.MEDIUM),
                "refund": http_action(base_url, "refund", RiskClass.HIGH, compensation_only=True),
            },
            "policy": PolicySpec(
                approvers=["alice"],
                escalation_approvers=["bob"],
                sla=sla,
                approval_amount_over=approval_amount_over,
            ),
            "budget": budget or BudgetSpec(),
            "mode": mode,
        }
    )


def noop_manifest(steps: int = 3, *, name: str | None = None, **fields: Any) -> AgentManifest:
    actions = {f"step_{i}": ActionSpec(connector="noop", risk=RiskClass.LOW) for i in range(1, steps + 1)}
    return AgentManifest.model_validate(
        {
            "name": name or unique_agent(),
            "actions": actions,
            "policy": PolicySpec(approvers=["operator"]),
            "turn_limit": steps + 1,
            **fields,
        }
    )
