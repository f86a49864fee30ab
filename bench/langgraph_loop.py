"""The agent loop of the side-by-side benchmark, as an aios manifest and as a LangGraph graph.

Both sides run the same loop: K actions, proposed one per turn by aios's offline model
(`connectors/model/offline.py`), graded by aios's policy (`aios.governance.policy.grade_action`), one of
them of high risk so it waits for an approval, each executed as a side effect (a no-op, or a
POST to a loopback counting server). The LangGraph side is a StateGraph of three nodes,
think -> gate -> act, checkpointed by AsyncPostgresSaver into its own schema of the same
Postgres database aios uses; the gate calls `langgraph.types.interrupt` for the approval and
the driver answers with `Command(resume=...)`.

Run as a module it is the LangGraph process of the crash scenario (bench/langgraph_crash.py):
`start` runs a thread until it is killed, `resume` carries the same thread on from its last
checkpoint with `ainvoke(None)`, and prints what the thread ended with as JSON.

This module imports neither temporalio nor aios's workers, so the LangGraph process's CPU and
memory are LangGraph's own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

import httpx
import psycopg
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, interrupt
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from aios.governance.policy import grade_action
from aios.models.manifest import AgentManifest, Grade
from aios.models.run import ProposedAction
from aios.settings import load_settings
from bench.langgraph_common import APPROVER, loop_manifest
from connectors.model import ModelProvider
from connectors.model.offline import OfflineModel
from connectors.model.types import ChatMessage, ChatRequest, ToolSpec

SCHEMA = "bench_langgraph"  # LangGraph's checkpoint tables live here, apart from aios's
POOL_SIZE = 10  # as aios's worker pool (activities/deps.py)
# The same extra tool arguments aios's think activity offers (activities/agent.py).
JUDGEMENT_PROPERTIES: dict[str, Any] = {
    "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    "rationale": {"type": "string"},
}
Durability = Literal["sync", "async", "exit"]
MODEL = OfflineModel()


# -- the LangGraph loop -----------------------------------------------------------------


class LoopState(TypedDict, total=False):
    task: dict[str, Any]
    done: list[str]  # actions executed, in order: what the model sees as tool results
    proposal: dict[str, Any] | None  # the model's next action, a ProposedAction as JSON
    approved_by: str | None
    outcome: str


@dataclass(frozen=True)
class EffectCall:
    thread_id: str
    step: int
    action: str
    params: dict[str, Any]


Effect = Callable[[EffectCall], Awaitable[dict[str, Any]]]


async def noop_effect(call: EffectCall) -> dict[str, Any]:
    """What aios's `noop` connector does: nothing."""
    return {"noop": True, "action": call.action}


class HttpEffect:
    """POST the step to the counting server, as an act node would call any API.

    `keyed` adds an Idempotency-Key made of the thread, the step and the action (what aios's
    ledger sends); without it the POST is what a LangGraph node usually is: a plain request.
    """

    def __init__(self, base_url: str, client: httpx.AsyncClient, *, keyed: bool) -> None:
        self._base_url = base_url
        self._client = client
        self._keyed = keyed

    async def __call__(self, call: EffectCall) -> dict[str, Any]:
        headers = {}
        if self._keyed:
            headers["Idempotency-Key"] = f"{call.thread_id}/step-{call.step}/{call.action}"
        body = {"action": call.action, **call.params}
        response = await self._client.post(
            f"{self._base_url}/effects/{call.action}", json=body, headers=headers
        )
        response.raise_for_status()
        return dict(response.json())


def chat_request(manifest: AgentManifest, task: dict[str, Any], done: list[str]) -> ChatRequest:
    """The request aios's think activity builds (activities/agent.py), without memories."""
    system = manifest.instructions or f"You are the {manifest.name} agent."
    messages = [
        ChatMessage(role="system", content=system),
        ChatMessage(role="user", content=json.dumps(task, sort_keys=True)),
    ]
    messages += [ChatMessage(role="tool", name=action, content="done") for action in done]
    tools = []
    for name, spec in manifest.proposable_actions().items():
        properties: dict[str, Any] = {param: {} for param in spec.params}
        properties.update(JUDGEMENT_PROPERTIES)
        parameters = {"type": "object", "properties": properties, "required": ["confidence"]}
        tools.append(ToolSpec(name=name, description=spec.description, parameters=parameters))
    return ChatRequest(model=manifest.model.name, messages=messages, tools=tools)


def build_graph(
    manifest: AgentManifest,
    effect: Effect,
    checkpointer: AsyncPostgresSaver,
    model: ModelProvider = MODEL,
) -> CompiledStateGraph[LoopState, None, LoopState, LoopState]:
    """think -> gate -> act -> think ... -> END once the model says it is done."""

    async def think(state: LoopState) -> LoopState:
        response = await model.chat(chat_request(manifest, state["task"], state["done"]))
        if not response.tool_calls:
            return {"proposal": None, "outcome": response.text}
        call = response.tool_calls[0]
        spec = manifest.actions.get(call.name)
        wanted = set(spec.params) if spec else set()
        proposed = ProposedAction(
            action=call.name,
            params={key: value for key, value in call.arguments.items() if key in wanted},
            confidence=min(1.0, max(0.0, float(call.arguments.get("confidence", 0.0)))),
            rationale=str(call.arguments.get("rationale", "")),
        )
        return {"proposal": proposed.model_dump(mode="json"), "approved_by": None}

    async def gate(state: LoopState) -> LoopState:
        proposed = ProposedAction.model_validate(state["proposal"])
        verdict = grade_action(manifest, proposed)
        if verdict.grade is Grade.FORBIDDEN:
            return {"proposal": None, "outcome": f"forbidden: {verdict.reason}"}
        if verdict.grade is not Grade.NEEDS_APPROVAL:
            return {"approved_by": "policy"}
        decision = interrupt({"action": proposed.action, "approvers": manifest.policy.approvers})
        if decision.get("verdict") != "approve":
            return {"proposal": None, "outcome": f"{proposed.action} rejected by {decision.get('approver')}"}
        return {"approved_by": str(decision.get("approver"))}

    async def act(state: LoopState, config: RunnableConfig) -> LoopState:
        proposal = state["proposal"]
        assert proposal is not None
        done = state["done"]
        thread_id = str(config.get("configurable", {}).get("thread_id"))
        await effect(EffectCall(thread_id, len(done) + 1, proposal["action"], proposal["params"]))
        return {"done": [*done, proposal["action"]], "proposal": None}

    def after_think(state: LoopState) -> str:
        return "gate" if state.get("proposal") else END

    def after_gate(state: LoopState) -> str:
        return "act" if state.get("proposal") else END

    graph = StateGraph(LoopState)
    graph.add_node("think", think)
    graph.add_node("gate", gate)
    graph.add_node("act", act)
    graph.add_edge(START, "think")
    graph.add_conditional_edges("think", after_think, ["gate", END])
    graph.add_conditional_edges("gate", after_gate, ["act", END])
    graph.add_edge("act", "think")
    return graph.compile(checkpointer=checkpointer)


@asynccontextmanager
async def postgres_saver(database_url: str, pool_size: int = POOL_SIZE) -> AsyncIterator[AsyncPostgresSaver]:
    """AsyncPostgresSaver on a connection pool, its tables in their own schema of the same database."""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    # The saver's documented connection settings, plus the schema as the search path.
    kwargs = {"autocommit": True, "row_factory": dict_row, "prepare_threshold": 0}
    kwargs["options"] = f"-c search_path={SCHEMA}"
    async with AsyncConnectionPool(
        database_url, kwargs=kwargs, min_size=1, max_size=pool_size, open=False
    ) as pool:
        saver = AsyncPostgresSaver(pool)  # type: ignore[arg-type]
        await saver.setup()
        yield saver


async def run_thread(
    graph: CompiledStateGraph[LoopState, None, LoopState, LoopState],
    thread_id: str,
    task: dict[str, Any] | None,
    durability: Durability,
    approval_delay: float = 0.0,
) -> dict[str, Any]:
    """Run (task given) or carry on (None) a thread to its end, approving every interrupt
    `approval_delay` seconds after it is raised."""
    config: RunnableConfig = {"configurable": {"thread_id": thread_id}}
    start: LoopState | None = None if task is None else {"task": task, "done": [], "proposal": None}
    result: dict[str, Any] = await graph.ainvoke(start, config, durability=durability)
    while result.get("__interrupt__"):
        if approval_delay:
            await asyncio.sleep(approval_delay)
        answer = Command(resume={"verdict": "approve", "approver": APPROVER})
        result = await graph.ainvoke(answer, config, durability=durability)
    return result


# -- the crash scenario's process -------------------------------------------------------


async def _crash_process(args: argparse.Namespace) -> dict[str, Any]:
    manifest = loop_manifest(args.steps, args.approval_at, name="bench-langgraph", effects_url=args.effects)
    async with (
        postgres_saver(load_settings().resolved_database_url, pool_size=2) as saver,
        httpx.AsyncClient(timeout=120) as client,
    ):
        graph = build_graph(manifest, HttpEffect(args.effects, client, keyed=args.keyed), saver)
        task = {"bench": "crash"} if args.mode == "start" else None
        final = await run_thread(graph, args.thread, task, args.durability)
    return {"done": final.get("done", []), "outcome": final.get("outcome", "")}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.langgraph_loop")
    parser.add_argument("mode", choices=["start", "resume"])
    parser.add_argument("--thread", default=uuid.uuid4().hex)
    parser.add_argument("--effects", required=True, help="base URL of the counting server")
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--approval-at", type=int, required=True)
    parser.add_argument("--keyed", action="store_true", help="send an Idempotency-Key")
    parser.add_argument("--durability", choices=["sync", "async", "exit"], default="sync")
    outcome = asyncio.run(_crash_process(parser.parse_args(argv)))
    print(json.dumps(outcome), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
