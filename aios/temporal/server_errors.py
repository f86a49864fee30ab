"""Server failures in the client's words: every Temporal or Postgres error becomes an AiosError.

The client (aios/client.py) maps each failure at its boundary with these functions, so the
CLI has one place that prints one line (aios/cli/common.py) and a script catches one family.
A run whose workflow task keeps failing is diagnosed here: which failure, since when, which
attempt, read from the run's description and the newest failure in its history (decrypted
through the client's data converter).
"""

from __future__ import annotations

from datetime import UTC, datetime

from psycopg import Error as PostgresError
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryReverseRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from aios.errors import (
    AiosError,
    NotAllowed,
    PostgresUnavailable,
    RunFinished,
    RunNotFound,
    RunStuck,
    ServerRequestFailed,
    TemporalUnavailable,
    WaitTimedOut,
)
from aios.settings import Settings

TASK_FAILING = "Workflow Task in failed state"
TASK_PROBLEMS = (EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED, EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT)
HISTORY_LOOKBACK = 100


# What a failed TLS handshake leaves in the SDK's error text, and what the operator should change.
TLS_FILES = "AIOS_TEMPORAL_TLS_CA, AIOS_TEMPORAL_TLS_CERT, AIOS_TEMPORAL_TLS_KEY"
TLS_PROBLEMS = (
    ("InvalidContentType", f"the server does not speak TLS: unset {TLS_FILES} and AIOS_TEMPORAL_API_KEY"),
    ("UnknownIssuer", "the server's certificate is not signed by the CA in AIOS_TEMPORAL_TLS_CA"),
    ("InvalidCertificate", "the server's certificate does not name the host of AIOS_TEMPORAL_ADDRESS"),
    (
        "CertificateRequired",
        "the server asks for a client certificate: set AIOS_TEMPORAL_TLS_CERT and AIOS_TEMPORAL_TLS_KEY",
    ),
    (
        "error after connection",  # a broken pipe or a closed connection, depending on timing
        "the server closed the connection: if it serves TLS, set AIOS_TEMPORAL_TLS_CA; if it asks for "
        "client certificates, AIOS_TEMPORAL_TLS_CERT and AIOS_TEMPORAL_TLS_KEY signed by a CA it trusts",
    ),
)


def temporal_unreachable(settings: Settings, error: Exception) -> TemporalUnavailable:
    text = str(error)
    for marker, advice in TLS_PROBLEMS:
        if marker in text:
            return TemporalUnavailable(
                f"cannot reach Temporal at {settings.temporal_address} ({marker}): {advice}"
            )
    return TemporalUnavailable(
        f"cannot reach Temporal at {settings.temporal_address} ({_first_line(error)}): start the local "
        "stack with `aios dev up`, or point AIOS_TEMPORAL_ADDRESS at your server"
    )


def postgres_unreachable(settings: Settings, error: PostgresError) -> PostgresUnavailable:
    where = settings.resolved_database_url.rpartition("@")[2]  # never the password
    return PostgresUnavailable(
        f"cannot reach Postgres at {where} ({_first_line(error)}): start the local stack with "
        "`aios dev up`, or set AIOS_DATABASE_URL"
    )


async def explain(client: Client, settings: Settings, run_id: str | None, error: RPCError) -> AiosError:
    """The one-line AiosError a server refusal means, for the run it was about (if any)."""
    if run_id is not None and _may_be_stuck(error):
        stuck = await diagnose_stuck(client, run_id)
        if stuck is not None:
            return stuck
    if error.status == RPCStatusCode.NOT_FOUND and run_id is not None:
        if "already completed" in error.message:
            return RunFinished(f"run {run_id!r} has already finished; a late request changes nothing")
        return RunNotFound(f"no run {run_id!r} in this namespace; `aios runs` lists them")
    return _unavailable_or_refused(settings, error)


def explain_unbound(settings: Settings, error: RPCError) -> AiosError:
    """`explain` for a refusal that reached no particular run or client (the CLI's safety net)."""
    return _unavailable_or_refused(settings, error)


def _unavailable_or_refused(settings: Settings, error: RPCError) -> AiosError:
    status = error.status
    if status == RPCStatusCode.UNAVAILABLE:
        return temporal_unreachable(settings, error)
    if status == RPCStatusCode.DEADLINE_EXCEEDED:
        return WaitTimedOut(f"Temporal did not answer in time ({_first_line(error)}); try again")
    if status in (RPCStatusCode.PERMISSION_DENIED, RPCStatusCode.UNAUTHENTICATED):
        return NotAllowed(
            f"Temporal refused the request ({_first_line(error)}): check AIOS_TEMPORAL_API_KEY, "
            "the TLS settings and AIOS_TEMPORAL_NAMESPACE"
        )
    return ServerRequestFailed(
        f"Temporal refused the request: {status.name if status else '?'}: {_first_line(error)}"
    )


def _may_be_stuck(error: RPCError) -> bool:
    """A query or update to a run whose task fails is refused so, or times out waiting for it."""
    waited = error.status in (RPCStatusCode.CANCELLED, RPCStatusCode.DEADLINE_EXCEEDED)
    return TASK_FAILING in error.message or waited


async def diagnose_stuck(client: Client, run_id: str) -> RunStuck | None:
    """Which failure keeps the run's workflow task from completing, since when, which attempt;
    None when its workflow task is not being retried (the refusal had another cause)."""
    handle = client.get_workflow_handle(run_id)
    try:
        description = await handle.describe()
    except RPCError:
        return None
    pending = description.raw_description.pending_workflow_task
    if pending.attempt == 0:  # no workflow task pending: the run is idle, not failing
        return None
    failed_at, failure = await _newest_task_problem(client, run_id)
    # The first attempt failing is what makes the second; but a new event (a signal, an
    # activity's completion) starts the count again at 1 while the task still fails: then
    # the newest workflow task in the history, failed, tells.
    if pending.attempt < 2 and failed_at is None:
        return None
    since = failed_at or (pending.original_scheduled_time.ToDatetime(UTC) if pending.attempt else None)
    return RunStuck(
        run_id,
        failure,
        attempt=max(pending.attempt, 1),
        since=since.isoformat(timespec="seconds") if since else "unknown",
    )


async def _newest_task_problem(client: Client, run_id: str) -> tuple[datetime | None, str]:
    """The newest failed or timed-out workflow task in the history, read from its end."""
    request = GetWorkflowExecutionHistoryReverseRequest(
        namespace=client.namespace, maximum_page_size=HISTORY_LOOKBACK
    )
    request.execution.workflow_id = run_id
    response = await client.workflow_service.get_workflow_execution_history_reverse(request)
    for event in response.history.events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            break  # the newest workflow task completed: nothing fails since
        if event.event_type in TASK_PROBLEMS:
            return event.event_time.ToDatetime(UTC), await _describe_problem(client, event)
    return None, "the failure is not in the newest events of its history"


async def _describe_problem(client: Client, event: HistoryEvent) -> str:
    if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
        return "the workflow task timed out: a worker took it and did not answer in time"
    failure = event.workflow_task_failed_event_attributes.failure
    decoded = await client.data_converter.decode_failure(failure)
    kind = getattr(decoded, "type", None) or type(decoded).__name__
    return f"{kind}: {_first_line(decoded)}"


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return (lines[0] if lines else type(error).__name__)[:300]
