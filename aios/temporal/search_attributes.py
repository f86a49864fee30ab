"""The search attributes every agent run carries, so the Web UI and `aios runs` can find it.

One definition for the client (which sets them at start), the workflow (which updates state
and risk) and the local stack (which registers them with the dev server).
"""

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

from aios.models.run import RunInput

AGENT_KEY = SearchAttributeKey.for_keyword("AiosAgent")
VERSION_KEY = SearchAttributeKey.for_keyword("AiosManifestVersion")
STATE_KEY = SearchAttributeKey.for_keyword("AiosState")
RISK_KEY = SearchAttributeKey.for_keyword("AiosRisk")
# What started the run, `kind:ref` (aios.models.run.Cause.label): `AiosCause = "event:evt-1"`.
CAUSE_KEY = SearchAttributeKey.for_keyword("AiosCause")

ALL_KEYS = (AGENT_KEY, VERSION_KEY, STATE_KEY, RISK_KEY, CAUSE_KEY)


def run_attributes(request: RunInput) -> TypedSearchAttributes:
    """A run's search attributes as it starts: admission's client start and a delegating run's
    child workflow set the same ones (its cause is `run:<parent id>` for a child)."""
    cause = request.cause.label if request.cause else f"person:{request.requested_by}"
    return TypedSearchAttributes(
        [
            SearchAttributePair(AGENT_KEY, request.agent),
            SearchAttributePair(VERSION_KEY, request.manifest.version),
            SearchAttributePair(STATE_KEY, "queued"),
            SearchAttributePair(CAUSE_KEY, cause),
        ]
    )
