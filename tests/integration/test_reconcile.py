"""An effect whose outcome is unknown (a timeout after sending) is settled by asking, never guessing.

The loopback effect server applies an effect and then hangs, so the caller times out with
the effect applied: the ledger says `unknown`. The reconciler (`ReconcileEffect`, on the
real Temporal dev server and Postgres) asks the connector's lookup and writes the answer.
The last tests go through a whole agent run: the step ends executed, once at the server, whether
its action runs as an activity on the connector's queue or `inline`, inside the run's think.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
import psycopg
import pytest
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import ActivityEnvironment

import activities.deps
from activities.actions import ActionActivities
from activities.deps import close_deps, open_deps
from activities.reconcile import ReconcileInput, ReconcileResult
from aios.client import AiosClient
from aios.governance.subjects import SubjectVault
from aios.ledger import effects
from aios.ledger.webhooks import reconcile_workflow_id
from aios.models.manifest import ActionSpec, AgentManifest, PolicySpec, RiskClass
from aios.models.run import ActionCall, RunStatus
from aios.settings import Settings, load_settings
from connectors.actions.base import EffectRequest
from connectors.actions.http import HttpActionConnector
from connectors.actions.payments import PaymentsConnector
from connectors.errors import ClientError, ConnectFailed
from connectors.http_base import ResilientHttp, RetryPolicy
from tests.support.effect_server import EffectServer, Fault
from tests.support.manifests import unique_agent
from tests.support.runs import replay_run
from workers.main import run_worker
from workflows.reconcile import ReconcileEffectWorkflow

CLIENT_TIMEOUT = 0.5  # for the answer only: the connect gets CONNECT_TIMEOUT
CONNECT_TIMEOUT = 10.0  # a loaded machine can stall the event loop past 0.5 s before connecting
HANG = 2.0  # past the client's timeout
FAST = timedelta(milliseconds=300)


def new_key(action: str = "charge") -> str:
    return f"rec-{uuid.uuid4().hex[:10]}/step-1/{action}"


def impatient(timeout: float) -> httpx.Timeout:
    """Gives up waiting for the answer after `timeout`, but not on connecting: the test is about answers."""
    return httpx.Timeout(timeout, connect=CONNECT_TIMEOUT)


def http_connector(timeout: float = CLIENT_TIMEOUT) -> HttpActionConnector:
    http = ResilientHttp("http", timeout=impatient(timeout), retry=RetryPolicy(max_attempts=1))
    return HttpActionConnector(http=http)


def call_for(server: EffectServer, key: str) -> ActionCall:
    return ActionCall(
        run_id=key.split("/", maxsplit=1)[0],
        step=1,
        effect_key=key,
        action="charge",
        connector="http",
        params={"customer": "c-1"},
        amount=42,
        target=f"{server.url}/effects/charge",
    )


def reconcile_input(call: ActionCall, **timing: timedelta) -> ReconcileInput:
    return ReconcileInput.for_call(call, **timing)


async def call_through_the_ledger(settings: Settings, call: ActionCall) -> ApplicationError:
    """One attempt of the execute activity with an impatient client: it must fail."""
    deps = await open_deps(settings)
    try:
        actions = ActionActivities(deps, {"http": http_connector()})
        with pytest.raises(ApplicationError) as caught:
            await ActivityEnvironment().run(actions.execute, call)
        return caught.value
    finally:
        await close_deps(deps)


async def ledger_row(database_url: str, key: str) -> effects.EffectRecord:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        # The run's subject sealed its response: read as the worker does, with the subject keys.
        record = await effects.find(conn, key, vault=SubjectVault.for_settings(load_settings()))
    assert record is not None, f"no ledger row for {key}"
    return record


async def charge_in_doubt(database_url: str, key: str) -> None:
    """A payments charge the ledger calls unknown: sent, and no answer came back."""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await effects.begin(
            conn, key=key, run_id="r", action="charge", connector="payments", request={"amount": 5}
        )
        await effects.finish(conn, key=key, state="unknown", error="timed out")


def stripe_charge_input(key: str, *, poll_interval: timedelta, max_duration: timedelta) -> ReconcileInput:
    """What a reconciler of that charge is started with (Stripe: no lookup by idempotency key)."""
    return ReconcileInput(
        effect_key=key,
        run_id="r",
        connector="payments",
        action="charge",
        target="payment_intent",
        poll_interval=poll_interval,
        max_duration=max_duration,
    )


async def reconcile(client: Client, task_queue: str, request: ReconcileInput) -> ReconcileResult:
    return await client.execute_workflow(
        ReconcileEffectWorkflow.run,
        request,
        id=reconcile_workflow_id(request.effect_key),
        task_queue=task_queue,
        execution_timeout=timedelta(seconds=60),
    )


@asynccontextmanager
async def worker_on(settings: Settings, client: Client, task_queue: str) -> AsyncIterator[AiosClient]:
    """A worker in this test on its own queue; what is still running at the end is terminated."""
    settings = settings.model_copy(update={"task_queue": task_queue})
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop=stop, task_queue=task_queue))
    try:
        yield AiosClient(client, settings)
    finally:
        try:
            query = f"TaskQueue = '{task_queue}' AND ExecutionStatus = 'Running'"
            async for execution in client.list_workflows(query):
                # Visibility lags: a reconciler listed as running may have just finished.
                with contextlib.suppress(RPCError):
                    await client.get_workflow_handle(execution.id).terminate("test finished")
        finally:
            stop.set()
            await worker


@pytest.fixture
async def worker_client(
    stack_settings: Settings, temporal_client: Client, task_queue: str
) -> AsyncIterator[AiosClient]:
    async with worker_on(stack_settings, temporal_client, task_queue) as client:
        yield client


def wait_for_hung_requests() -> None:
    """Let a hung server thread finish, so a late effect would be counted before asserting."""
    time.sleep(HANG + 0.3)


# -- the connectors' lookups ------------------------------------------------------------------


async def test_the_http_lookup_answers_only_for_an_applied_effect(effect_server: EffectServer) -> None:
    connector = http_connector(timeout=2.0)
    request = EffectRequest(
        idempotency_key=new_key(), action="charge", params={"x": 1}, target=f"{effect_server.url}/effects/c"
    )
    assert await connector.lookup(request) is None
    performed = await connector.perform(request)
    assert await connector.lookup(request) == performed  # the shape perform returns
    assert effect_server.applied[request.idempotency_key] == 1  # lookups applied nothing
    assert effect_server.lookups == [request.idempotency_key] * 2


async def test_a_404_that_is_not_the_lookups_own_answer_cannot_tell() -> None:
    # e.g. a framework's "Cannot GET" page echoing the URL, key included: not "not applied".
    def no_lookup_here(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, text=f"Cannot GET {request.url.raw_path.decode()}")

    http = ResilientHttp("http", transport=httpx.MockTransport(no_lookup_here), retry=RetryPolicy(1))
    request = EffectRequest(idempotency_key="k-1", action="a", target="http://svc.test/effects/a")
    with pytest.raises(ClientError, match="offers no effect lookup") as caught:
        await HttpActionConnector(http=http).lookup(request)
    assert not caught.value.retryable


async def test_an_unreachable_service_cannot_tell_and_says_ask_again() -> None:
    request = EffectRequest(idempotency_key="k-1", action="a", target="http://127.0.0.1:9/effects/a")
    with pytest.raises(ConnectFailed) as caught:
        await http_connector().lookup(request)
    assert caught.value.retryable


async def test_stripe_cannot_be_looked_up_by_idempotency_key() -> None:
    payments = PaymentsConnector(api_key="sk_test_x", base_url="http://127.0.0.1:9")
    request = EffectRequest(idempotency_key="k-1", action="charge", target="payment_intent")
    with pytest.raises(ClientError, match="webhook") as caught:
        await payments.lookup(request)
    assert not caught.value.retryable  # "cannot tell", for good: never "not applied"
    await payments.aclose()


# -- the reconciler ---------------------------------------------------------------------------


async def test_a_timeout_after_the_server_applied_is_settled_succeeded_by_lookup(
    stack_settings: Settings,
    database_url: str,
    worker_client: AiosClient,
    task_queue: str,
    effect_server: EffectServer,
) -> None:
    key = new_key()
    call = call_for(effect_server, key)
    effect_server.faults.append(Fault(apply_then_hang=True, hang_seconds=HANG))
    failure = await call_through_the_ledger(stack_settings, call)
    assert failure.type == "TimeoutError_"
    assert (await ledger_row(database_url, key)).state == "unknown"

    result = await reconcile(worker_client.temporal, task_queue, reconcile_input(call, poll_interval=FAST))

    assert (result.outcome, result.resolved_by, result.ledger_state) == ("succeeded", "lookup", "succeeded")
    assert not result.needs_operator
    stored = {"status": 200, "body": effect_server.responses[key]}
    assert result.response == stored
    record = await ledger_row(database_url, key)
    assert (record.state, record.response) == ("succeeded", stored)
    await asyncio.to_thread(wait_for_hung_requests)
    assert effect_server.applied[key] == 1
    assert effect_server.duplicates() == 0


async def test_not_applied_is_believed_only_after_the_settle_time(
    stack_settings: Settings,
    database_url: str,
    worker_client: AiosClient,
    task_queue: str,
    effect_server: EffectServer,
) -> None:
    key = new_key()
    call = call_for(effect_server, key)
    effect_server.faults.append(Fault(reset=True))  # no answer, nothing applied
    failure = await call_through_the_ledger(stack_settings, call)
    assert failure.type == "TransportError"
    assert (await ledger_row(database_url, key)).state == "unknown"

    request = reconcile_input(call, poll_interval=FAST, settle=timedelta(seconds=1.5))
    result = await reconcile(worker_client.temporal, task_queue, request)

    assert (result.outcome, result.resolved_by, result.ledger_state) == ("failed", "lookup", "failed")
    # The first poll (at once, before the settle time) heard "not applied" and did not believe it.
    assert result.polls >= 2
    assert effect_server.lookups.count(key) == result.polls
    assert (await ledger_row(database_url, key)).state == "failed"
    assert effect_server.total_effects() == 0


async def test_without_a_conclusive_answer_the_ledger_stays_unknown(
    database_url: str, worker_client: AiosClient, task_queue: str
) -> None:
    # Stripe cannot be looked up and no webhook comes: the operator must decide, nobody guesses.
    key = new_key()
    await charge_in_doubt(database_url, key)
    request = stripe_charge_input(key, poll_interval=FAST, max_duration=timedelta(seconds=2))
    result = await reconcile(worker_client.temporal, task_queue, request)
    assert (result.outcome, result.resolved_by, result.ledger_state) == ("unresolved", "none", "unknown")
    assert result.needs_operator
    assert result.polls >= 1
    assert (await ledger_row(database_url, key)).state == "unknown"


async def test_an_effect_the_ledger_does_not_call_unknown_is_left_alone(
    database_url: str, worker_client: AiosClient, task_queue: str, effect_server: EffectServer
) -> None:
    key = new_key()
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await effects.begin(conn, key=key, run_id="r", action="charge", connector="http", request={})
        await effects.finish(conn, key=key, state="failed", error="422: refused")
    call = call_for(effect_server, key)
    result = await reconcile(worker_client.temporal, task_queue, reconcile_input(call))
    assert (result.outcome, result.ledger_state) == ("not_unknown", "failed")
    assert effect_server.lookups == []  # the ledger's answer needs no asking
    assert (await ledger_row(database_url, key)).error == "422: refused"


# -- inside an agent run --------------------------------------------------------------------


@pytest.fixture
async def impatient_client(
    stack_settings: Settings, temporal_client: Client, task_queue: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[AiosClient]:
    """A worker whose HTTP client gives up after CLIENT_TIMEOUT (the server hangs for longer)."""
    monkeypatch.setattr(activities.deps, "HTTP_TIMEOUT", impatient(CLIENT_TIMEOUT))
    async with worker_on(stack_settings, temporal_client, task_queue) as client:
        yield client


def charge_then_ship(base_url: str, *, inline: bool = False) -> AgentManifest:
    def http(name: str, **extra: object) -> ActionSpec:
        return ActionSpec.model_validate(
            {"connector": "http", "risk": RiskClass.LOW, "params": ["customer"], "inline": inline}
            | {"target": f"{base_url}/effects/{name}", **extra}
        )

    return AgentManifest.model_validate(
        {
            "name": unique_agent("recon"),
            "actions": {
                "charge": http("charge", compensation="refund"),
                "ship": http("ship"),
                "refund": http("refund", risk=RiskClass.HIGH, compensation_only=True),
            },
            "policy": PolicySpec(approvers=["alice"], min_confidence=0.5),
        }
    )


# Both ways an action reaches its connector: an activity on the connector's queue, or inline.
WHERE = pytest.mark.parametrize("inline", [False, True], ids=["queue", "inline"])


async def execute_activities(client: AiosClient, run_id: str) -> int:
    """How many `action.execute` activities the run scheduled (inline actions schedule none)."""
    history = await client.handle(run_id).fetch_history()
    return sum(
        1
        for event in history.events
        if event.HasField("activity_task_scheduled_event_attributes")
        and event.activity_task_scheduled_event_attributes.activity_type.name == "action.execute"
    )


@WHERE
async def test_a_run_whose_call_timed_out_after_the_effect_goes_on_once_reconciled(
    impatient_client: AiosClient, effect_server: EffectServer, database_url: str, inline: bool
) -> None:
    # Attempt 1: applied, then no answer (unknown). Attempt 2: a final refusal, which does not
    # undo attempt 1, so the ledger still says unknown and the activity has failed for good.
    effect_server.faults.extend([Fault(apply_then_hang=True, hang_seconds=HANG), Fault(status=400)])
    manifest = charge_then_ship(effect_server.url, inline=inline)
    started = await impatient_client.start_run(manifest.name, {"customer": "c-7"}, manifest=manifest)
    final = await asyncio.wait_for(impatient_client.result(started.run_id), timeout=120)

    assert final.status is RunStatus.COMPLETED, final.outcome
    steps = {step.action: step for step in final.steps}
    assert steps["charge"].status == "executed"
    assert steps["charge"].detail["reconciled"] == "succeeded"
    assert steps["charge"].detail["resolved_by"] == "lookup"
    assert steps["ship"].status == "executed"
    charge_key = f"{started.run_id}/step-1/charge"
    record = await ledger_row(database_url, charge_key)
    assert record.state == "succeeded"
    assert record.response == {"status": 200, "body": effect_server.responses[charge_key]}
    await asyncio.to_thread(wait_for_hung_requests)
    assert effect_server.applied[charge_key] == 1
    assert effect_server.effects_for("/effects/charge") == 1
    assert effect_server.duplicates() == 0
    reconciler = await impatient_client.temporal.get_workflow_handle(
        reconcile_workflow_id(charge_key), result_type=ReconcileResult
    ).result()
    assert reconciler.outcome == "succeeded"
    assert await execute_activities(impatient_client, started.run_id) == (0 if inline else 2)
    await replay_run(impatient_client, started.run_id)


@WHERE
async def test_a_plain_refusal_fails_the_step_as_before(
    worker_client: AiosClient, effect_server: EffectServer, database_url: str, inline: bool
) -> None:
    effect_server.faults.append(Fault(status=422))  # refused, nothing applied: ledger 'failed'
    manifest = charge_then_ship(effect_server.url, inline=inline)
    started = await worker_client.start_run(manifest.name, {"customer": "c-8"}, manifest=manifest)
    final = await asyncio.wait_for(worker_client.result(started.run_id), timeout=60)
    assert final.status is RunStatus.COMPENSATED
    [charge] = [step for step in final.steps if step.action == "charge"]
    assert charge.status == "failed"
    assert "reconciled" not in charge.detail
    assert (await ledger_row(database_url, f"{started.run_id}/step-1/charge")).state == "failed"


@WHERE
async def test_a_reconciled_step_is_compensated_like_any_executed_one(
    impatient_client: AiosClient, effect_server: EffectServer, database_url: str, inline: bool
) -> None:
    # charge: applied but unanswered, then refused (reconciled: succeeded); ship: refused for good.
    effect_server.faults.extend(
        [Fault(apply_then_hang=True, hang_seconds=HANG), Fault(status=400), Fault(status=422)]
    )
    manifest = charge_then_ship(effect_server.url, inline=inline)
    started = await impatient_client.start_run(manifest.name, {"customer": "c-9"}, manifest=manifest)
    final = await asyncio.wait_for(impatient_client.result(started.run_id), timeout=120)

    assert final.status is RunStatus.COMPENSATED, final.outcome
    statuses = {(step.action, step.status) for step in final.steps}
    assert statuses == {("charge", "executed"), ("ship", "failed"), ("refund", "compensated")}
    refund_key = f"{started.run_id}/step-1/charge/undo/refund"
    assert (await ledger_row(database_url, refund_key)).state == "succeeded"
    await asyncio.to_thread(wait_for_hung_requests)
    assert effect_server.applied[f"{started.run_id}/step-1/charge"] == 1
    assert effect_server.applied[refund_key] == 1
    assert effect_server.effects_for("/effects/ship") == 0
    assert await execute_activities(impatient_client, started.run_id) == (0 if inline else 3)
    await replay_run(impatient_client, started.run_id)
