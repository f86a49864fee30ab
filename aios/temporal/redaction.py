"""Keeping the process's secrets out of logs, span attributes and error messages (decision 11).

The secrets are what the settings hold as secrets (API keys, passwords, the password of a
database URL) and the payload keys; on top of them, connectors.redaction's patterns mask
anything that looks like a credential (`Bearer ...`, `sk_live_...`, `password=...`).

- logs: `install_redaction(settings)` masks every log record as it is created, whichever
  handler (console, file, pytest's caplog) shows it later; `RedactionFilter` is the same
  masking as a `logging.Filter`, for a handler configured by hand.
- error messages: `RedactingFailureConverter` masks failure messages and stack traces before
  they go to Temporal, and (with encryption on) moves them into the encrypted attributes.
- spans: `RedactingSpanExporter` wraps an exporter and masks attribute values, event
  attributes (recorded exceptions) and status descriptions.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Status
from opentelemetry.util import types
from pydantic import SecretStr
from temporalio.api.failure.v1 import Failure
from temporalio.converter import DefaultFailureConverter, FailureConverter, PayloadConverter

from aios.settings import Settings
from aios.temporal.codec import KeyringInvalid, load_keyring
from connectors.redaction import MASK, Redactor

__all__ = [
    "MASK",
    "RedactingFailureConverter",
    "RedactingSpanExporter",
    "RedactionFilter",
    "failure_converter_class",
    "install_redaction",
    "known_secrets",
    "redactor_for",
]

Redact = Callable[[str], str]
ENCODED_FAILURE_MESSAGE = "Encoded failure"  # what Temporal's own converter leaves in the clear


def known_secrets(settings: Settings) -> list[str]:
    """Every secret value the settings hold, and the payload keys as they are written down."""
    found: list[str] = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            found += [value.get_secret_value(), *_url_password(value.get_secret_value())]
    return found + _payload_keys(settings)


def _url_password(text: str) -> list[str]:
    if "://" not in text:
        return []
    try:
        password = urlsplit(text).password
    except ValueError:
        return []
    return [password] if password else []


def _payload_keys(settings: Settings) -> list[str]:
    try:
        return load_keyring(settings, create=False).encoded_keys()
    except KeyringInvalid:
        return []  # no keyring yet (or a broken one, reported where it is used)


def redactor_for(settings: Settings) -> Redactor:
    return Redactor(known_secrets(settings))


# -- logs ---------------------------------------------------------------------------------------


class RedactionFilter(logging.Filter):
    """Masks secrets in a record's message, traceback and stack; never drops a record."""

    def __init__(self, redact: Redact) -> None:
        super().__init__()
        self.redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record, self.redact)
        return True


def redact_record(record: logging.LogRecord, redact: Redact) -> None:
    try:
        message = record.getMessage()
    except (TypeError, ValueError):
        return  # a malformed call; logging reports it when the record is formatted
    record.msg, record.args = redact(message), None
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact(record.exc_text)
        # Formatters print exc_text; dropping the exception object keeps a handler that renders
        # exc_info itself (rich, error trackers) from showing the unmasked original.
        record.exc_info = None
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


class _SecretsSeen:
    """The union of every settings' secrets installed in this process (tests run several)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self.redactor = Redactor()

    def add(self, secrets: Iterable[str]) -> None:
        with self._lock:
            self._secrets.update(secrets)
            self.redactor = Redactor(self._secrets)

    def __call__(self, text: str) -> str:
        return self.redactor(text)


_SEEN = _SecretsSeen()
_FACTORY_INSTALLED = threading.Event()


def install_redaction(settings: Settings) -> RedactionFilter:
    """Mask these settings' secrets in every log record this process creates from now on.

    A record factory rather than a filter on some handlers: handlers added later (a log
    file, pytest's caplog) and records propagated from any library's logger are covered too.
    """
    _SEEN.add(known_secrets(settings))
    if not _FACTORY_INSTALLED.is_set():
        _FACTORY_INSTALLED.set()
        logging.setLogRecordFactory(_redacting_factory(logging.getLogRecordFactory()))
    return RedactionFilter(_SEEN)


def _redacting_factory(inner: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = inner(*args, **kwargs)
        redact_record(record, _SEEN)
        return record

    return factory


# -- error messages -----------------------------------------------------------------------------


class RedactingFailureConverter(DefaultFailureConverter):
    """Temporal's failure converter, with secrets masked before a failure leaves the process.

    With `encrypt`, message and stack trace then move into the failure's encoded attributes,
    which the payload codec encrypts (what Temporal's `encode_common_attributes` does, done
    after masking): error texts often quote the input that failed.
    """

    def __init__(self, redact: Redact, *, encrypt: bool) -> None:
        super().__init__(encode_common_attributes=False)
        self._redact = redact
        self._encrypt = encrypt

    def to_failure(
        self, exception: BaseException, payload_converter: PayloadConverter, failure: Failure
    ) -> None:
        super().to_failure(exception, payload_converter, failure)
        link: Failure | None = failure
        while link is not None:
            # A re-raised error copies its decoded failure, plain message next to the encoded
            # attributes: only a link whose text is already sealed away is left as it is.
            if not _sealed(link):
                self._scrub(link, payload_converter)
            link = link.cause if link.HasField("cause") else None

    def _scrub(self, failure: Failure, payload_converter: PayloadConverter) -> None:
        failure.message = self._redact(failure.message)
        failure.stack_trace = self._redact(failure.stack_trace)
        if self._encrypt:
            attributes = {"message": failure.message, "stack_trace": failure.stack_trace}
            failure.encoded_attributes.CopyFrom(payload_converter.to_payloads([attributes])[0])
            failure.message, failure.stack_trace = ENCODED_FAILURE_MESSAGE, ""


def _sealed(failure: Failure) -> bool:
    return (
        failure.HasField("encoded_attributes")
        and failure.message == ENCODED_FAILURE_MESSAGE
        and not failure.stack_trace
    )


def failure_converter_class(redact: Redact, *, encrypt: bool) -> type[FailureConverter]:
    """A class, because Temporal's DataConverter instantiates its failure converter itself."""

    class ConfiguredFailureConverter(RedactingFailureConverter):
        def __init__(self) -> None:
            super().__init__(redact, encrypt=encrypt)

    return ConfiguredFailureConverter


# -- spans --------------------------------------------------------------------------------------


class RedactingSpanExporter(SpanExporter):
    """Masks secrets in what a span carries as text, then hands the spans to `inner`."""

    def __init__(self, inner: SpanExporter, redact: Redact = _SEEN) -> None:
        self._inner = inner
        self._redact = redact

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._inner.export([self._masked(span) for span in spans])

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)

    def _masked(self, span: ReadableSpan) -> ReadableSpan:
        status = span.status
        if status.description:
            status = Status(status.status_code, self._redact(status.description))
        events = [
            Event(event.name, self._attributes(event.attributes), event.timestamp) for event in span.events
        ]
        return ReadableSpan(
            name=span.name,
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=self._attributes(span.attributes),
            events=events,
            links=span.links,
            kind=span.kind,
            status=status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )

    def _attributes(self, attributes: types.Attributes) -> dict[str, types.AttributeValue]:
        return {key: self._value(value) for key, value in (attributes or {}).items()}

    def _value(self, value: types.AttributeValue) -> types.AttributeValue:
        if isinstance(value, str):
            return self._redact(value)
        if isinstance(value, Sequence) and value and isinstance(value[0], str):
            return [self._redact(str(item)) for item in value]
        return value
