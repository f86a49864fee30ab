"""The typed error tree of aios.

Every error a user can cause says what was wrong and how to fix it. Each class carries the
exit code the CLI ends with (README, "Exit codes"): 1 refused or failed, 2 bad input or
configuration, 3 no such run, 4 a run stuck on a failing workflow task, 5 a server cannot be
reached, 6 a wait timed out, 7 not allowed.
"""


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


class RunNotFound(AiosError):
    """No run has the given id in this namespace."""

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
