"""Task queue names, shared by workflows (which route activities) and workers (which poll).

Each connector's actions go to a queue of their own, so a rate limit set on that queue
(`max_task_queue_activities_per_second`) holds across every worker of the deployment.
"""


def connector_queue(base: str, connector: str) -> str:
    return f"{base}/connector/{connector}"


# Connectors that do no I/O of their own run as local activities in the run's workflow task:
# no trip through a task queue, and no rate limit to hold. Every other connector gets a queue,
# unless the manifest marks the action `inline` (a short call whose workflow task it saves).
INLINE_CONNECTORS = frozenset({"noop"})


def runs_inline(connector: str, *, inline: bool = False) -> bool:
    return inline or connector in INLINE_CONNECTORS
