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
