"""The typed error tree of aios.

Every error a user can cause says what was wrong and how to fix it. Each class carries the
exit code the CLI ends with (README, "Exit codes"): 1 refused or failed, 2 bad input or
configuration, 3 no such run, 4 a run stuck on a failing workflow task, 5 a server cannot be
reached, 6 a wait timed out, 7 not allowed.

The classes under "Failures that travel through Temporal" cross the wire as an
ApplicationError whose `type` is the class's name (`application_error`). Recorded histories
(tests/replay/histories) and running workflows compare that name (`cause.type`): renaming
one of those classes changes what old runs see, so it needs a patch, not just an edit.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.exceptions import ApplicationError


class AiosError(Exception):
    """Base class of every error aios raises on purpose."""

    exit_code = 1


class SettingsInvalid(AiosError):
    """A configuration value is missing or malformed; the message names the variable."""

    exit_code = 2


class StackError(AiosError):
    """The local stack (Temporal dev server, Postgres, Qdrant) could not be brought up or down."""


class MigrationError(AiosError):
    """A database migration could not be applied."""


class AdmissionRefused(AiosError):
    """A run was not started: its agent is over its daily budget."""


class ReportWindowInvalid(AiosError):
    """`aios report --since` names no time; the message lists the accepted forms."""

    exit_code = 2


class RunNotFound(AiosError):
    """No run has the given id in this namespace."""

    exit_code = 3


class EventInvalid(AiosError):
    """An event's id, topic or data is malformed; the message names the field and the rule."""

    exit_code = 2


class EventIdReused(AiosError):
    """An event id already names another event (another topic or other data)."""

    exit_code = 2


class EventNotFound(AiosError):
    """No event has the given id."""

    exit_code = 3


class ScheduleNotFound(AiosError):
    """No schedule of aios has the given name."""

    exit_code = 3


class AgentNotFound(AiosError):
    """No manifest and no recorded run has the given agent name."""

    exit_code = 3


class RunFinished(AiosError):
    """The run has already ended; signals, updates and pauses no longer reach it."""


class DecisionRefused(AiosError):
    """The run refused an approval decision; the message says why."""


class ManifestInvalid(AiosError):
    """An agent manifest is missing, unreadable or invalid; the message names the file and field."""

    exit_code = 2


class InputTooLarge(AiosError):
    """A run's input is over what Temporal accepts; nothing was started. The message names the field."""

    exit_code = 2


class RunStuck(AiosError):
    """The run's workflow task keeps failing (a bug, a non-determinism after a deploy): it can be
    neither queried nor signalled until a fixed worker takes it, and then it resumes by itself."""

    exit_code = 4

    def __init__(self, run_id: str, failure: str, attempt: int, since: str) -> None:
        self.run_id, self.failure, self.attempt, self.since = run_id, failure, attempt, since
        super().__init__(
            f"run {run_id!r} is stuck: its workflow task fails ({failure}), attempt {attempt} "
            f"since {since}; fix the worker code and restart the worker: the run resumes by itself"
        )


class ServerUnavailable(AiosError):
    """Temporal or Postgres cannot be reached; the message says where and how to bring it up."""

    exit_code = 5


class TemporalUnavailable(ServerUnavailable):
    """The Temporal frontend does not answer."""


class PostgresUnavailable(ServerUnavailable):
    """The Postgres database does not answer."""


class WaitTimedOut(AiosError):
    """A request or a wait for a run's result ran past its time; the run itself goes on."""

    exit_code = 6


class NotAllowed(AiosError):
    """The server refused the request: credentials, namespace or permissions."""

    exit_code = 7


class ServerRequestFailed(AiosError):
    """Any other refusal from the Temporal server, said in one line."""


class RunFailed(AiosError):
    """The run ended as failed, terminated or timed out in Temporal, not with a state of its own."""


class EffectNotInDoubt(AiosError):
    """Only an effect the ledger calls unknown can be resolved by hand; the message says its state."""


# Failures that travel through Temporal. Their names are wire values: see the module docstring.


class EffectConflict(AiosError):
    """The same effect key arrived with a different request (Stripe's semantics); final."""


class EffectFailed(AiosError):
    """The ledger says this effect already failed: a retry replays that failure, never the effect."""


class UnknownConnector(AiosError):
    """The manifest names a connector this worker does not have; final."""

    exit_code = 2


class NoSlotYet(AiosError):
    """All of the agent's concurrency slots are taken; Temporal retries, which queues the run."""


class ModelNotConfigured(AiosError):
    """The manifest's model provider is not configured in this worker; final."""

    exit_code = 2


class MemoryUnavailable(AiosError):
    """No embedder is installed or configured; the message says how to get one."""

    exit_code = 2


class CompactionUnavailable(AiosError):
    """Long-term memory is not configured in this worker, so nothing can be compacted."""

    exit_code = 2


class CompactionNotFound(AiosError, LookupError):
    """No compaction has the given id: there is nothing to undo. A LookupError too, as it was."""


class ActMissing(AiosError):
    """The think activity returned no outcome for the act it was given (a bug, not a refusal)."""


class ActionFailed(AiosError):
    """An act failed for good; the type of a failure whose own type is unknown."""


class DelegationRefused(AiosError):
    """A run's `connector: agent` step started no child: a depth or fan-out limit, or the child's
    admission (no such agent, its daily budget, its kill switch); final."""


class DelegationFailed(AiosError):
    """A child run ended without completing its task (compensated, cancelled, failed); final."""


class RunAborted(AiosError):
    """The run cannot go on (an action was rejected); its finished steps are compensated.

    Raised and caught inside the workflow: it never reaches Temporal itself."""


class ApproverInvalid(AiosError):
    """An approver record cannot be made as asked (bad name, address, webhook or quiet hours)."""

    exit_code = 2


class ApproverNotFound(AiosError):
    """No approver record of that name (`aios approvers list` shows them)."""

    exit_code = 3


class NotificationHeld(AiosError):
    """A recipient is in quiet hours: the notice is retried when they end."""

    minimum_delay = timedelta(seconds=1)


class LinkRefused(AiosError):
    """A signed decision link that does not count: forged, expired, used, or for another step."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


def application_error(
    kind: type[BaseException],
    message: str,
    *,
    non_retryable: bool,
    next_retry_delay: timedelta | None = None,
) -> ApplicationError:
    """The ApplicationError that carries `kind` through Temporal, its type named from the class.

    Args:
        kind: the error's class; its `__name__` is the failure's type on the wire.
        message: the one line the operator reads.
        non_retryable: True when another attempt cannot help.
        next_retry_delay: how long Temporal waits before the next attempt, if not its default.

    Returns:
        The error to raise (`raise application_error(...) from exc`).
    """
    return ApplicationError(
        message, non_retryable=non_retryable, type=kind.__name__, next_retry_delay=next_retry_delay
    )


class ChecksInvalid(AiosError):
    """A checks file (agents/<name>.checks.yaml) is malformed; the message names the field and the fix."""

    exit_code = 2


class ChecksFailed(AiosError):
    """`aios agents test`: at least one behaviour check of the version under test failed."""


class CanaryRefused(AiosError):
    """A canary was not started: the candidate version fails its behaviour checks."""


class DeployRefused(AiosError):
    """`aios deploy`: the deployment or version asked for does not exist, or the value is out of range."""

    exit_code = 2
