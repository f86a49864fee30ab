"""tests/support/runs.wait_for_state asks again only while the run cannot answer yet."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import pytest
from temporalio.service import RPCError, RPCStatusCode

from aios.client import AiosClient
from aios.errors import RunNotFound, ServerRequestFailed, TemporalUnavailable, WaitTimedOut
from aios.models.run import RunState, RunStatus
from tests.support import runs


def _state(status: RunStatus) -> RunState:
    return RunState(run_id="r", agent="a", manifest_version="1", mode="live", status=status)


class _Answers:
    """A client whose `state` gives the scripted answers in turn, the last one for ever."""

    def __init__(self, answers: Sequence[RunState | Exception]) -> None:
        self._answers = list(answers)
        self.asked = 0

    async def state(self, run_id: str) -> RunState:
        answer = self._answers[min(self.asked, len(self._answers) - 1)]
        self.asked += 1
        if isinstance(answer, Exception):
            raise answer
        return answer


def _refused(status: RPCStatusCode, message: str) -> ServerRequestFailed:
    error = ServerRequestFailed(f"Temporal refused the request: {status.name}: {message}")
    error.__cause__ = RPCError(message, status, b"")
    return error


@pytest.fixture(autouse=True)
def _fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runs, "POLL_SECONDS", 0)


async def test_answers_that_mean_not_yet_are_asked_again() -> None:
    client = _Answers(
        [
            RunNotFound("no run 'r'"),
            _refused(RPCStatusCode.FAILED_PRECONDITION, "workflow not ready"),
            WaitTimedOut("Temporal did not answer in time"),
            _state(RunStatus.RUNNING),
            _state(RunStatus.COMPLETED),
        ]
    )
    reached = await runs.wait_for_status(cast(AiosClient, client), "r", RunStatus.COMPLETED)
    assert reached.status is RunStatus.COMPLETED
    assert client.asked == 5


@pytest.mark.parametrize(
    "error",
    [
        TemporalUnavailable("cannot reach Temporal at 127.0.0.1:1"),
        _refused(RPCStatusCode.INVALID_ARGUMENT, "bad query"),
        ValueError("a bug in the test"),
    ],
    ids=lambda error: type(error).__name__,
)
async def test_any_other_error_fails_the_wait_with_its_own_message(error: Exception) -> None:
    client = _Answers([error])
    with pytest.raises(type(error)) as caught:
        await runs.wait_for_status(cast(AiosClient, client), "r", RunStatus.COMPLETED)
    assert caught.value is error
    assert client.asked == 1


async def test_a_wait_that_runs_out_says_what_it_saw_last() -> None:
    client = _Answers([RunNotFound("no run 'r' in this namespace")])
    with pytest.raises(AssertionError, match="no run 'r' in this namespace"):
        await runs.wait_for_status(cast(AiosClient, client), "r", RunStatus.COMPLETED, within=0.05)
    assert client.asked > 1
