"""The one door of every signal and update: handlers that take any input and refuse bad ones.

`inbound_signal` and `inbound_update` register a handler with Temporal under its public name,
taking `*inputs` (any count, any shape: see aios/temporal/inbound.py), and call the typed method they
decorate only with a valid model. A bad input is refused through the workflow's
`_refuse_input` (recorded in its state and, for a run, its audit trail) and the run goes on
unchanged; an update's validator refuses it before it reaches history. Every workflow class's
handlers are declared this way; tests/integration/test_inbound_shapes.py walks them all.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from aios.temporal.inbound import InputRefused, read_input

ModelT = TypeVar("ModelT", bound=BaseModel)
ResultT = TypeVar("ResultT")
HandlerT = TypeVar("HandlerT", bound=Callable[..., Any])
INBOUND_MARK = "__aios_inbound__"


class RefusesInput(Protocol):
    async def _refuse_input(self, handler: str, refused: InputRefused) -> None:
        """Record a refused input where the operator will see it (state, audit)."""


SignalMethod = Callable[[Any, ModelT], Awaitable[None]]
UpdateMethod = Callable[[Any, ModelT], Awaitable[ResultT]]


def inbound_signal(
    name: str, model: type[ModelT], *, description: str
) -> Callable[[SignalMethod[ModelT]], Callable[..., Awaitable[None]]]:
    """Register `method` as signal `name`; it runs only with a valid `model`."""

    def register(method: SignalMethod[ModelT]) -> Callable[..., Awaitable[None]]:
        async def handler(self: RefusesInput, *inputs: Any) -> None:
            request = read_input(model, inputs, name)
            if isinstance(request, InputRefused):
                await self._refuse_input(name, request)
                return
            await method(self, request)

        return _declared(workflow.signal(name=name, description=description)(handler), method, model)

    return register


def inbound_update(
    name: str, model: type[ModelT], *, description: str, check: str | None = None
) -> Callable[[UpdateMethod[ModelT, ResultT]], Callable[..., Any]]:
    """Register `method` as update `name`; its validator refuses a bad input before history.

    `check` names a `(self, request) -> None` method for the checks that need the workflow's
    state (e.g. "no approval is pending"); it runs in the validator after the input is read.
    """

    def register(method: UpdateMethod[ModelT, ResultT]) -> Callable[..., Any]:
        async def handler(self: Any, *inputs: Any) -> ResultT:
            request = read_input(model, inputs, name)
            assert not isinstance(request, InputRefused)  # the validator let only valid ones in
            return await method(self, request)

        def validate(self: Any, *inputs: Any) -> None:
            request = read_input(model, inputs, name)
            if isinstance(request, InputRefused):
                raise ValueError(request.reason)
            if check is not None:
                getattr(self, check)(request)

        registered = workflow.update(name=name, description=description)(handler)
        registered.validator(validate)
        return _declared(registered, method, model)

    return register


def _declared(handler: HandlerT, method: Callable[..., Any], model: type[BaseModel]) -> HandlerT:
    # Not functools.wraps: its __wrapped__ would make inspect.signature (and so the SDK) see the
    # typed `(self, request)` method, and decode inputs with its hints again.
    handler.__name__ = method.__name__
    handler.__qualname__ = method.__qualname__
    handler.__doc__ = method.__doc__
    setattr(handler, INBOUND_MARK, model)
    return handler


def inbound_model(handler: Callable[..., Any]) -> type[BaseModel] | None:
    """The model a handler was declared with, or None for one that bypasses the door."""
    return getattr(handler, INBOUND_MARK, None)
