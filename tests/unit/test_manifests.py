"""Loading manifests from YAML: the shipped examples, versions, error messages, the CLI."""

from __future__ import annotations

import copy
import json
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from aios.cli.agents import app
from aios.errors import ManifestInvalid
from aios.governance.manifests import (
    MANIFEST_DIR_VARIABLE,
    agents_dir,
    find_manifest,
    list_manifests,
    load_manifest,
)
from aios.models.manifest import AgentManifest, RiskClass

SHIPPED = Path(__file__).resolve().parents[2] / "agents"
REFUND_DESK = SHIPPED / "refund-desk.yaml"


def refund_desk() -> dict[str, Any]:
    """The shipped refund desk as plain data, to vary in a test."""
    content: dict[str, Any] = yaml.safe_load(REFUND_DESK.read_text())
    return content


def write(directory: Path, name: str, content: object) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False))
    return path


def version_of(tmp_path: Path, content: dict[str, Any]) -> str:
    return load_manifest(write(tmp_path, content["name"], content)).version


def load_error(path: Path) -> str:
    with pytest.raises(ManifestInvalid) as caught:
        load_manifest(path)
    return str(caught.value)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project directory with a copy of the shipped agents, as the current directory."""
    shutil.copytree(SHIPPED, tmp_path / "agents")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(MANIFEST_DIR_VARIABLE, raising=False)
    return tmp_path


# -- the shipped examples ----------------------------------------------------------------


def test_the_refund_desk_loads_as_written() -> None:
    desk = load_manifest(REFUND_DESK)
    assert list(desk.actions) == ["issue_refund", "send_reply", "reverse_refund"]
    refund = desk.actions["issue_refund"]
    assert (refund.risk, refund.max_amount, refund.compensation) == (
        RiskClass.MEDIUM,
        100_000,
        "reverse_refund",
    )
    assert (refund.connector, refund.target) == ("payments", "balance_credit")
    assert desk.actions["reverse_refund"].target == "balance_debit"
    assert desk.actions["reverse_refund"].compensation_only
    assert "reverse_refund" not in desk.proposable_actions()
    assert desk.policy.approval_amount_over == 10_000
    assert (desk.policy.approvers, desk.policy.escalation_approvers) == (["alice"], ["bob"])
    assert desk.policy.sla.escalate_after == timedelta(hours=4)
    assert desk.policy.sla.expire_after == timedelta(hours=24)
    assert (desk.budget.tokens_per_run, desk.budget.max_concurrent_runs) == (20_000, 3)
    assert (desk.model.provider, desk.turn_limit, desk.mode) == ("offline", 6, "live")
    assert len(desk.instructions) > 100


def test_the_noop_worker_has_three_harmless_steps() -> None:
    worker = load_manifest(SHIPPED / "noop-worker.yaml")
    assert list(worker.actions) == ["step_one", "step_two", "step_three"]
    assert {(a.connector, a.risk, tuple(a.params)) for a in worker.actions.values()} == {
        ("noop", RiskClass.LOW, ())
    }
    assert worker.policy.approvers == ["operator"]


def test_every_shipped_manifest_is_valid() -> None:
    results = list_manifests(SHIPPED)
    assert [path.name for path, _ in results] == [
        "inbox-triage.yaml",
        "invoice-chaser.yaml",
        "noop-worker.yaml",
        "refund-desk.yaml",
    ]
    assert all(isinstance(outcome, AgentManifest) for _, outcome in results)


# -- versions ----------------------------------------------------------------------------


def reorder_keys(value: Any) -> Any:
    """The same data with every mapping's keys in reverse order."""
    if not isinstance(value, dict):
        return value
    return {key: reorder_keys(value[key]) for key in reversed(value)}


def test_the_version_ignores_key_order_whitespace_and_comments(tmp_path: Path) -> None:
    original = load_manifest(REFUND_DESK).version
    content = refund_desk()
    # The actions keep their order (it is meaning); their fields, and all else, are reversed.
    actions = {name: reorder_keys(spec) for name, spec in content.pop("actions").items()}
    relaid = reorder_keys(content) | {"actions": actions}
    text = "# another layout\n" + yaml.safe_dump(relaid, sort_keys=False, indent=6, default_flow_style=True)
    path = write(tmp_path, "refund-desk", text)
    assert path.read_text() != REFUND_DESK.read_text()
    assert load_manifest(path).version == original


def test_the_version_is_of_the_meaning_not_the_spelling(tmp_path: Path) -> None:
    content = refund_desk()
    content["policy"]["sla"]["remind_after"] = 3600  # seconds instead of PT1H
    content["memory"] = {"token_budget": 1500}  # top_k left at its default of 5
    assert version_of(tmp_path, content) == load_manifest(REFUND_DESK).version


def test_reordering_the_actions_changes_the_version(tmp_path: Path) -> None:
    # The order is behaviour: the tools a model is offered, and the offline plan, follow it.
    content = refund_desk()
    content["actions"] = dict(reversed(content["actions"].items()))
    assert version_of(tmp_path, content) != load_manifest(REFUND_DESK).version


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("issue_refund", "max_amount", 999),
        ("issue_refund", "inline", True),
        ("policy", "approvers", ["alice", "carol"]),
        ("sla", "on_expiry", "approve"),
        ("budget", "cost_per_run", 0.51),
        (None, "mode", "shadow"),
    ],
)
def test_changing_any_value_changes_the_version(
    tmp_path: Path, section: str | None, key: str, value: object
) -> None:
    content = refund_desk()
    where = {
        "issue_refund": content["actions"]["issue_refund"],
        "policy": content["policy"],
        "sla": content["policy"]["sla"],
        "budget": content["budget"],
        None: content,
    }[section]
    assert where.get(key) != value
    where[key] = value
    assert version_of(tmp_path, content) != load_manifest(REFUND_DESK).version


# -- what an invalid manifest is told ----------------------------------------------------


def set_path(content: dict[str, Any], dotted: str, value: object) -> dict[str, Any]:
    changed = copy.deepcopy(content)
    *parents, last = dotted.split(".")
    target = changed
    for part in parents:
        target = target[part]
    target[last] = value
    return changed


@pytest.mark.parametrize(
    ("dotted", "value", "expected"),
    [
        (
            "actions.issue_refund.risk",
            "extreme",
            "actions.issue_refund.risk: Input should be 'low', 'medium', 'high' or 'critical'",
        ),
        ("actions.issue_refund.riks", "low", "actions.issue_refund.riks: not a known field"),
        ("polcy", {}, "polcy: not a known field"),
        (
            "actions.issue_refund.compensation",
            "undo_refund",
            "action 'issue_refund' names compensation 'undo_refund', which is not one of the actions",
        ),
        (
            "policy.sla.remind_after",
            "PT5H",
            "policy.sla: expected remind_after <= escalate_after <= expire_after",
        ),
        ("policy.approvers", [], "policy.approvers: List should have at least 1 item"),
        ("budget.max_concurrent_runs", 0, "budget.max_concurrent_runs: Input should be greater than 0"),
    ],
)
def test_an_invalid_manifest_names_the_file_the_field_and_the_reason(
    tmp_path: Path, dotted: str, value: object, expected: str
) -> None:
    path = write(tmp_path, "refund-desk", set_path(refund_desk(), dotted, value))
    message = load_error(path)
    assert message.startswith(f"{path}: ")
    assert expected in message


def test_an_unknown_field_message_lists_the_known_ones(tmp_path: Path) -> None:
    path = write(tmp_path, "refund-desk", set_path(refund_desk(), "policy.approver", ["x"]))
    message = load_error(path)
    assert "policy.approver: not a known field; known fields:" in message
    assert "approvers" in message.split("known fields:")[1]


def test_every_problem_is_reported_on_its_own_line(tmp_path: Path) -> None:
    content = set_path(refund_desk(), "actions.send_reply.risk", "loud")
    content = set_path(content, "turn_limit", 0)
    lines = load_error(write(tmp_path, "refund-desk", content)).splitlines()
    assert len(lines) == 2
    assert any("actions.send_reply.risk:" in line and "'loud'" in line for line in lines)
    assert any("turn_limit: Input should be greater than or equal to 1" in line for line in lines)


def test_the_name_must_match_the_file_name(tmp_path: Path) -> None:
    path = write(tmp_path, "refund-desk-v2", refund_desk())
    message = load_error(path)
    assert f"{path}: name 'refund-desk' does not match the file name 'refund-desk-v2'" in message


def test_a_yaml_syntax_error_names_the_line_and_column(tmp_path: Path) -> None:
    text = "name: broken\nactions:\n  lookup: [customer\npolicy:\n  approvers: [alice]\n"
    message = load_error(write(tmp_path, "broken", text))
    assert message.startswith(f"{tmp_path / 'broken.yaml'}: invalid YAML at line 4, column 7")


def test_a_key_given_twice_is_refused_rather_than_overwritten(tmp_path: Path) -> None:
    text = REFUND_DESK.read_text().replace("mode: live", "mode: live\nmode: shadow")
    message = load_error(write(tmp_path, "refund-desk", text))
    assert "duplicate key 'mode'" in message
    assert f"line {text.splitlines().index('mode: shadow') + 1}," in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- name: listed\n- policy: {}\n", "the top level is a list"),
        ("just words\n", "the top level is a str"),
        ("", "the file is empty"),
    ],
)
def test_a_top_level_that_is_not_a_mapping_is_explained(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, "odd", text)
    expectation = "; expected a mapping of manifest fields (name, actions, policy, ...)"
    assert load_error(path) == f"{path}: {expected}{expectation}"


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    assert load_error(tmp_path / "ghost.yaml") == f"{tmp_path / 'ghost.yaml'}: no such file"


# -- finding and listing -----------------------------------------------------------------


def test_agents_are_found_under_agents_of_the_current_directory(project: Path) -> None:
    assert agents_dir() == Path("agents")
    assert find_manifest("noop-worker").name == "noop-worker"


def test_the_agents_directory_can_be_named_by_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    write(elsewhere, "noop-worker", (SHIPPED / "noop-worker.yaml").read_text())
    monkeypatch.setenv(MANIFEST_DIR_VARIABLE, str(elsewhere))
    assert agents_dir() == elsewhere
    assert find_manifest("noop-worker").name == "noop-worker"


@pytest.mark.parametrize("name", ["refund-dsk", "../agents/refund-desk", "Refund-Desk"])
def test_an_unknown_agent_lists_the_known_ones(project: Path, name: str) -> None:
    with pytest.raises(ManifestInvalid) as caught:
        find_manifest(name)
    assert f"no agent named {name!r}" in str(caught.value)
    assert "known agents: inbox-triage, invoice-chaser, noop-worker, refund-desk" in str(caught.value)


def test_a_missing_agents_directory_says_how_to_point_at_one(tmp_path: Path) -> None:
    with pytest.raises(ManifestInvalid, match=MANIFEST_DIR_VARIABLE):
        list_manifests(tmp_path / "nowhere")
    with pytest.raises(ManifestInvalid, match="does not exist"):
        find_manifest("refund-desk", tmp_path / "nowhere")


def test_list_includes_broken_files_in_name_order(project: Path) -> None:
    write(project / "agents", "a-broken", "name: a-broken\nactions: {}\n")
    (project / "agents" / "notes.txt").write_text("not a manifest")
    results = list_manifests()
    assert [path.name for path, _ in results] == [
        "a-broken.yaml",
        "inbox-triage.yaml",
        "invoice-chaser.yaml",
        "noop-worker.yaml",
        "refund-desk.yaml",
    ]
    broken = results[0][1]
    assert isinstance(broken, ManifestInvalid)
    assert "actions: Dictionary should have at least 1 item" in str(broken)
    assert "policy: Field required" in str(broken)


# -- the CLI -----------------------------------------------------------------------------


def invoke(*args: str) -> Result:
    # A wide terminal, so rich neither wraps long lines nor folds table cells.
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "400"})


def test_validate_prints_each_manifest_and_its_version(project: Path) -> None:
    result = invoke("validate")
    assert result.exit_code == 0, result.output
    desk = load_manifest(REFUND_DESK)
    assert f"ok  agents/refund-desk.yaml  refund-desk  version {desk.version}" in result.output
    assert "ok  agents/noop-worker.yaml  noop-worker  version " in result.output


def test_validate_exits_1_and_prints_the_error_when_one_is_invalid(project: Path) -> None:
    write(project / "agents", "shaky", set_path(refund_desk(), "name", "shaky") | {"mode": "yolo"})
    result = invoke("validate")
    assert result.exit_code == 1
    assert "invalid  agents/shaky.yaml: mode: Input should be 'live' or 'shadow'" in result.output
    assert "ok  agents/refund-desk.yaml" in result.output  # the others are still checked


def test_validate_checks_only_the_files_given(project: Path) -> None:
    write(project / "agents", "shaky", "- not a mapping\n")
    assert invoke("validate", "agents/refund-desk.yaml").exit_code == 0
    result = invoke("validate", "agents/refund-desk.yaml", "agents/shaky.yaml")
    assert result.exit_code == 1
    assert "invalid  agents/shaky.yaml: the top level is a list" in result.output


def test_validate_with_no_manifests_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "agents").mkdir()
    monkeypatch.chdir(tmp_path)
    result = invoke("validate")
    assert result.exit_code == 1
    assert "no *.yaml manifests in agents" in result.output


def test_list_shows_a_broken_file_with_its_error(project: Path) -> None:
    write(project / "agents", "shaky", "name: shaky\nactions: [oops]\npolicy: {approvers: [a]}\n")
    result = invoke("list")
    assert result.exit_code == 0, result.output
    desk = load_manifest(REFUND_DESK)
    row = next(line for line in result.output.splitlines() if " refund-desk " in line)
    assert desk.version in row
    assert "offline/offline-planner" in row
    broken = next(line for line in result.output.splitlines() if "agents/shaky.yaml" in line)
    assert "invalid: agents/shaky.yaml: actions: Input should be a valid dictionary" in broken


def test_list_keeps_brackets_in_errors_literal(project: Path) -> None:
    # Rich would swallow `[alice]` as a markup tag if the table did not escape it.
    write(project / "agents", "shaky", "name: shaky\nactions: {a_a: {connector: x, risk: '[alice]'}}\n")
    assert "(got '[alice]')" in invoke("list").output


def test_show_json_round_trips_to_the_same_manifest(project: Path) -> None:
    result = invoke("show", "refund-desk", "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    manifest = AgentManifest.model_validate(shown["manifest"])
    assert manifest == load_manifest(REFUND_DESK)
    assert shown["version"] == manifest.version == load_manifest(REFUND_DESK).version


def test_show_prints_yaml_that_is_itself_the_same_manifest(project: Path) -> None:
    result = invoke("show", "refund-desk")
    assert result.exit_code == 0, result.output
    version = load_manifest(REFUND_DESK).version
    assert result.output.startswith(f"# refund-desk  version {version}\n")
    assert AgentManifest.model_validate(yaml.safe_load(result.output)).version == version


def test_show_of_an_unknown_agent_lists_the_known_ones(project: Path) -> None:
    result = invoke("show", "refund")
    assert result.exit_code == 1
    assert "no agent named 'refund'" in result.output
    assert "known agents: inbox-triage, invoice-chaser, noop-worker, refund-desk" in result.output
