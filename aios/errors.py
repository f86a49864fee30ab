"""The typed error tree of aios.

Every error a user can cause says what was wrong and how to fix it.
"""


class AiosError(Exception):
    """Base class of every error aios raises on purpose."""


class SettingsInvalid(AiosError):
    """A configuration value is missing or malformed; the message names the variable."""


class StackError(AiosError):
    """The local stack (Temporal dev server, Postgres, Qdrant) could not be brought up or down."""


class MigrationError(AiosError):
    """A database migration could not be applied."""


class AdmissionRefused(AiosError):
    """A run was not started: its agent is over its daily budget."""


class RunNotFound(AiosError):
    """No run has the given id in this namespace."""


class RunFinished(AiosError):
    """The run has already ended; signals, updates and pauses no longer reach it."""


class DecisionRefused(AiosError):
    """The run refused an approval decision; the message says why."""


class ManifestInvalid(AiosError):
    """An agent manifest is missing, unreadable or invalid; the message names the file and field."""


class InputTooLarge(AiosError):
    """A run's input is over what Temporal accepts; nothing was started. The message names the field."""


class EffectNotInDoubt(AiosError):
    """Only an effect the ledger calls unknown can be resolved by hand; the message says its state."""
