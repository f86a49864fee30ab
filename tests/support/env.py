"""The environment of every process a test, a benchmark or the demo starts.

A child inherits the suite's settings: this process's environment (where `AIOS_*` moves the
stack, README "Two checkouts on one machine"), then the stack the given settings point at,
then the caller's overrides. Never a hand-built environment: one that drops `AIOS_*` sends the
child to the default ports, which may be another checkout's stack or nothing at all.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from aios.settings import Settings

# The settings that say which stack a process talks to, by variable. A child keeps its own
# embedded Qdrant directory (the default under the data directory): an embedded store is one
# process's, so the suite's own path (tests/conftest.py) is deliberately not passed on.
STACK_VARIABLES: dict[str, Callable[[Settings], str | None]] = {
    "AIOS_DATA_DIR": lambda s: str(s.data_dir.resolve()),
    "AIOS_TEMPORAL_ADDRESS": lambda s: s.temporal_address,
    "AIOS_TEMPORAL_NAMESPACE": lambda s: s.temporal_namespace,
    "AIOS_TEMPORAL_UI_PORT": lambda s: str(s.temporal_ui_port),
    "AIOS_POSTGRES_PORT": lambda s: str(s.postgres_port),
    "AIOS_CODEC_PORT": lambda s: str(s.codec_port),
    "AIOS_DATABASE_URL": lambda s: s.database_url.get_secret_value() if s.database_url else None,
}


def child_env(settings: Settings | None = None, /, **overrides: str | None) -> dict[str, str]:
    """os.environ, then the stack `settings` point at, then `overrides` (None removes a variable)."""
    env = dict(os.environ)
    layers: dict[str, str | None] = {}
    if settings is not None:
        layers.update({name: value(settings) for name, value in STACK_VARIABLES.items()})
    layers.update(overrides)
    for name, value in layers.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env
