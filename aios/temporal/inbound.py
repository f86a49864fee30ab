"""What an operator sends a run, as it arrives: any number of inputs, of any shape.

Temporal hands a signal or update handler whatever the Web UI's form, `temporal workflow
signal` or a client sent: no input, several inputs, `null`, a number, a string, a list, an
object with unknown fields, bytes that are not UTF-8. Every handler of every aios workflow
takes its inputs as `*inputs` (workflows/inbound.py) and reads them through `read_input`
here, which answers either the handler's model or one line saying what was wrong and what
was expected. Nothing an operator types reaches a handler as an exception.

Handlers declared with `*inputs` have no type hints, so the SDK decodes each payload with
none. `InboundPayloadConverter` keeps that decoding from failing (the SDK would then drop a
signal without a trace): a payload it cannot decode arrives as `UndecodableInput`, and the
handler refuses it like any other bad input. Decoding with a type hint is unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, get_args, get_origin

from pydantic import BaseModel, ValidationError
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import PydanticPayloadConverter

ModelT = TypeVar("ModelT", bound=BaseModel)

RECEIVED_EXCERPT = 300
REASON_LIMIT = 400


@dataclass(frozen=True)
class UndecodableInput:
    """A payload that is not valid JSON (invalid UTF-8, an unknown encoding, truncated text)."""

    encoding: str
    excerpt: str
    problem: str


class InboundPayloadConverter(PydanticPayloadConverter):
    """The pydantic converter, except that un-hinted decoding never fails (see the module doc)."""

    def from_payloads(self, payloads: Sequence[Payload], type_hints: list[type] | None = None) -> list[Any]:
        if type_hints:
            return super().from_payloads(payloads, type_hints)
        return [self._lenient(payload) for payload in payloads]

    def _lenient(self, payload: Payload) -> Any:
        try:
            return super().from_payloads([payload])[0]
        except Exception as error:  # any failure becomes data the handler refuses
            encoding = payload.metadata.get("encoding", b"<none>").decode(errors="replace")
            return UndecodableInput(
                encoding=encoding,
                excerpt=payload.data[:RECEIVED_EXCERPT].decode(errors="replace"),
                problem=_one_line(error),
            )


@dataclass(frozen=True)
class InputRefused:
    """Why an input was refused, and an excerpt of what arrived, for the record."""

    received: str
    reason: str


def read_input(model: type[ModelT], inputs: Sequence[Any], what: str) -> ModelT | InputRefused:
    """The one input a handler takes, validated; or why not, with the shape it expects.

    No input and `null` mean "all defaults" (a pause needs nothing more); a model with
    required fields then says which one is missing.
    """
    received = describe_inputs(inputs)
    if len(inputs) > 1:
        problem = f"malformed {what}: it takes one JSON object, got {len(inputs)} inputs"
        return InputRefused(received, f"{problem}; {expected(model)}")
    value = inputs[0] if inputs else None
    if isinstance(value, UndecodableInput):
        problem = f"malformed {what}: the input is not readable JSON ({value.encoding}: {value.problem})"
        return InputRefused(received, f"{problem}; {expected(model)}")
    try:
        return model.model_validate({} if value is None else value)
    except ValidationError as error:
        return InputRefused(received, f"malformed {what}: {field_problems(error)}; {expected(model)}")


def describe_inputs(inputs: Sequence[Any]) -> str:
    """What arrived, as text, short enough for the audit trail."""
    if not inputs:
        return "(no input)"
    parts = [item.excerpt if isinstance(item, UndecodableInput) else _json_excerpt(item) for item in inputs]
    return ", ".join(parts)[:RECEIVED_EXCERPT]


def expected(model: type[BaseModel]) -> str:
    """`expected {"approver": "<string>", "note": ""}`: the model's fields, required ones first."""
    return f"expected {shape_of(model)}"


def shape_of(model: type[BaseModel]) -> str:
    return json.dumps(_example(model), ensure_ascii=False)


def _example(model: type[BaseModel]) -> dict[str, Any]:
    """Each field with its default, or a placeholder naming its type when it is required."""
    fields: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        if name == "schema_version":
            continue
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            fields[name] = _example(annotation)
        elif field.is_required():
            fields[name] = _placeholder(annotation)
        else:
            fields[name] = _jsonable(field.get_default(call_default_factory=True))
    return fields


def field_problems(error: ValidationError) -> str:
    """One clause per wrong field: `decision.approver: Input should be a valid string`."""
    return "; ".join(
        f"{'.'.join(str(part) for part in problem['loc']) or 'input'}: {problem['msg']}"
        for problem in error.errors()
    )[:REASON_LIMIT]


def _placeholder(annotation: Any) -> str:
    choices = get_args(annotation) if get_origin(annotation) is Literal else ()
    if choices:
        return " | ".join(str(choice) for choice in choices)
    name = getattr(annotation, "__name__", None) or str(annotation)
    return (
        "<" + {"str": "text", "int": "integer", "float": "number", "bool": "true|false"}.get(name, name) + ">"
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value if isinstance(value, str | int | float | bool | list | dict | type(None)) else str(value)


def _json_excerpt(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except ValueError:  # a circular or otherwise odd value: its repr will do
        text = repr(value)
    return text[:RECEIVED_EXCERPT]


def _one_line(error: BaseException) -> str:
    cause = error.__cause__ or error
    text = str(cause).strip().splitlines()
    return (text[0] if text else type(cause).__name__)[:200]
