"""Delegation without a server: the manifest's rules, the limits, the budget a child inherits."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from activities.delegation import limit_refusal
from aios.errors import ManifestInvalid
from aios.governance.manifests import load_manifest
from aios.ledger.budget import _exceeded_cap
from aios.models.delegation import ChildRequest, child_run_id
from aios.models.manifest import AgentManifest
from aios.models.run import ActionCall, BudgetRequest, Delegation
from aios.settings import Settings
from workflows.delegation import child_task

SHIPPED = Path(__file__).resolve().parents[2] / "agents"


def refund_desk() -> dict[str, Any]:
    content: dict[str, Any] = yaml.safe_load((SHIPPED / "refund-desk.yaml").read_text())
    return content


def with_action(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    content = copy.deepcopy(refund_desk())
    content["actions"][name] = spec
    return content


def hand_off(**spec: Any) -> dict[str, Any]:
    """The refund desk with one more action, `hand_off`, of the given fields (risk low)."""
    return with_action("hand_off", {"risk": "low", **spec})


def load_error(tmp_path: Path, content: dict[str, Any]) -> str:
    path = tmp_path / f"{content['name']}.yaml"
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    with pytest.raises(ManifestInvalid) as caught:
        load_manifest(path)
    return str(caught.value)


# -- the manifest ---------------------------------------------------------------------------


def test_a_delegating_action_without_its_agent_names_the_field(tmp_path: Path) -> None:
    message = load_error(tmp_path, hand_off(connector="agent"))
    assert message.endswith(
        "refund-desk.yaml: actions.hand_off: connector `agent` needs `agent: <name>`, "
        "the agent to delegate to (agents/<name>.yaml)"
    )
    assert "\n" not in message


def test_agent_on_another_connector_is_refused(tmp_path: Path) -> None:
    message = load_error(tmp_path, hand_off(connector="noop", agent="x-y"))
    assert "actions.hand_off: `agent` applies only to `connector: agent`, not 'noop'" in message


def test_a_delegating_action_is_undone_by_its_child_not_by_a_compensation(tmp_path: Path) -> None:
    spec = {"connector": "agent", "agent": "helper", "risk": "low", "compensation": "issue_refund"}
    message = load_error(tmp_path, with_action("hand_off", spec))
    assert "actions.hand_off: a delegating action is undone by the child run's own saga" in message


def test_the_child_agent_must_be_a_valid_agent_name(tmp_path: Path) -> None:
    message = load_error(tmp_path, hand_off(connector="agent", agent="../x"))
    assert "actions.hand_off.agent: String should match pattern" in message


def test_a_delegating_action_loads_and_waits_by_default() -> None:
    manifest = AgentManifest.model_validate(hand_off(connector="agent", agent="helper"))
    spec = manifest.actions["hand_off"]
    assert spec.delegates and spec.wait and spec.agent == "helper"


def test_the_delegation_fields_left_unset_keep_every_earlier_version() -> None:
    # Recorded runs name their manifest's version; adding the fields must not move it. The
    # version below is what this manifest had on the code from before delegation.
    pinned = {"name": "pinned", "actions": {"step_one": {"connector": "noop", "risk": "low"}}}
    pinned["policy"] = {"approvers": ["ann"]}
    assert AgentManifest.model_validate(pinned).version == "e1cbbaa5e8ce"
    waiting = hand_off(connector="agent", agent="h-1")
    detached = hand_off(connector="agent", agent="h-1", wait=False)
    assert AgentManifest.model_validate(detached).version != AgentManifest.model_validate(waiting).version


# -- the limits -----------------------------------------------------------------------------


def child_request(*, depth: int = 1, children: int = 0) -> ChildRequest:
    return ChildRequest(
        parent_run_id="desk-1",
        parent_agent="desk",
        step=2,
        action="hand_off",
        agent="helper",
        delegation=Delegation(parent_run_id="desk-1", depth=depth, ceiling_tokens=100, ceiling_cost=1.0),
        children=children,
        task_queue="aios",
    )


def test_depth_and_fan_out_within_the_limits_pass() -> None:
    settings = Settings(delegation_max_depth=3, delegation_max_children=2)
    assert limit_refusal(child_request(depth=3, children=1), settings) == ""


def test_a_child_past_the_depth_limit_is_refused_in_one_line() -> None:
    refusal = limit_refusal(child_request(depth=4), Settings(delegation_max_depth=3))
    assert refusal == (
        "delegation refused: step 2 (hand_off) of run desk-1 would start 'helper' at depth 4, over the "
        "limit of 3 (AIOS_DELEGATION_MAX_DEPTH); is an agent delegating in a cycle?"
    )


def test_a_child_past_the_fan_out_limit_is_refused() -> None:
    refusal = limit_refusal(child_request(children=2), Settings(delegation_max_children=2))
    expected = "would start child run 3, over the limit of 2 per run (AIOS_DELEGATION_MAX_CHILDREN)"
    assert refusal.endswith(expected)


def test_zero_depth_turns_delegation_off() -> None:
    refusal = limit_refusal(child_request(depth=1), Settings(delegation_max_depth=0))
    assert "depth 1, over the limit of 0" in refusal


def test_a_child_id_names_its_parent_step_and_agent() -> None:
    assert child_run_id("desk-1", 2, "helper") == "desk-1.step-2.helper"
    assert child_request().child_run_id == "desk-1.step-2.helper"


def test_the_child_task_is_the_action_s_parameters_and_amount() -> None:
    call = ActionCall(run_id="r", step=1, effect_key="k", action="a", connector="agent", params={"c": 1})
    call = call.model_copy(update={"amount": 5.0})
    assert child_task(call) == {"c": 1, "amount": 5}


# -- the budget -----------------------------------------------------------------------------


def budget_request(**fields: object) -> BudgetRequest:
    base: dict[str, object] = {
        "agent": "a",
        "run_id": "r",
        "reservation_key": "r/turn-1",
        "tokens": 100,
        "cost": 0.0,
        "tokens_per_run": 1000,
        "cost_per_run": 1.0,
        "tokens_per_day": 1_000_000,
        "cost_per_day": 10.0,
    }
    return BudgetRequest.model_validate(base | fields)


def test_what_the_children_spent_counts_in_the_run_budget() -> None:
    assert _exceeded_cap(budget_request(), 800, 0.0, 0, 0.0) == ("", "")
    kind, reason = _exceeded_cap(budget_request(delegated_tokens=150), 800, 0.0, 0, 0.0)
    assert (kind, reason) == ("run", "the tokens per run cap would be exceeded: 950 spent of 1000")


def test_a_child_may_not_spend_past_what_its_parent_had_left() -> None:
    kind, reason = _exceeded_cap(budget_request(ceiling_tokens=150), 100, 0.0, 0, 0.0)
    assert (kind, reason) == ("run", "the parent run's tokens cap would be exceeded: 100 spent of 150")
    assert _exceeded_cap(budget_request(ceiling_cost=0.5, cost=0.2), 0, 0.4, 0, 0.0)[0] == "run"


def test_the_readme_s_delegation_example_is_a_valid_manifest(tmp_path: Path) -> None:
    readme = (SHIPPED.parent / "README.md").read_text()
    block = readme.split("# agents/support-desk.yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "support-desk.yaml"
    path.write_text(block)
    spec = load_manifest(path).actions["hand_to_refund_desk"]
    assert spec.delegates and spec.agent == "refund-desk"
    # The child's task is the action's parameters: what the refund desk's actions need.
    desk = load_manifest(SHIPPED / "refund-desk.yaml")
    assert set(desk.actions["issue_refund"].params) <= set(spec.params)
