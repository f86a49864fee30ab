"""The AES-GCM payload codec, its keyring, and the redaction of secrets (no server needed)."""

from __future__ import annotations

import base64
import logging
import stat
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Status, StatusCode
from pydantic import BaseModel, SecretStr
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError

from aios.settings import Settings
from aios.temporal.codec import (
    ENCODING,
    KEY_ID_METADATA,
    NONCE_BYTES,
    AesGcmCodec,
    Keyring,
    KeyringInvalid,
    PayloadDecryptionFailed,
    codec_for,
    default_key_file,
    load_keyring,
    parse_keyring,
    rotate_key,
)
from aios.temporal.connection import data_converter
from aios.temporal.redaction import MASK, RedactingSpanExporter, RedactionFilter, failure_converter_class

PLAIN = "payload-canary-plaintext"
KEY_A = base64.b64encode(b"a" * 32).decode()
KEY_B = base64.b64encode(b"b" * 32).decode()


class Order(BaseModel):
    customer: str
    note: str


def local_settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {"data_dir": tmp_path, "payload_keys": None, "payload_key_file": None}
    return Settings(**{**values, **overrides})  # type: ignore[arg-type]


def json_payload(text: str) -> Payload:
    return pydantic_data_converter.payload_converter.to_payloads([text])[0]


# -- the codec ----------------------------------------------------------------------------------


async def test_round_trip_through_the_data_converter_hides_the_value(tmp_path: Path) -> None:
    converter = data_converter(local_settings(tmp_path))
    [payload] = await converter.encode([Order(customer="c-1", note=PLAIN)])
    assert PLAIN.encode() not in payload.SerializeToString()
    assert b"json/plain" not in payload.SerializeToString()  # the original metadata is sealed too
    [back] = await converter.decode([payload], [Order])
    assert back == Order(customer="c-1", note=PLAIN)


async def test_metadata_names_the_encoding_and_the_key() -> None:
    keyring = Keyring.generate()
    [payload] = await AesGcmCodec(keyring).encode([json_payload(PLAIN)])
    assert payload.metadata["encoding"] == ENCODING == b"binary/encrypted"
    assert payload.metadata[KEY_ID_METADATA] == keyring.current.encode()


async def test_every_payload_gets_a_fresh_nonce() -> None:
    codec = AesGcmCodec(Keyring.generate())
    sealed = await codec.encode([json_payload(PLAIN)] * 200)
    nonces = {payload.data[:NONCE_BYTES] for payload in sealed}
    assert len(nonces) == 200
    assert len({payload.data for payload in sealed}) == 200


async def test_unencrypted_payloads_pass_through_unchanged() -> None:
    plain = json_payload(PLAIN)
    [decoded] = await AesGcmCodec(Keyring.generate()).decode([plain])
    assert decoded == plain


async def test_rotation_keeps_old_payloads_readable_and_encrypts_with_the_new_key() -> None:
    old = Keyring.generate()
    [before] = await AesGcmCodec(old).encode([json_payload("sealed before rotation")])
    rotated = old.rotated()
    assert rotated.current != old.current
    assert set(rotated.keys) == {old.current, rotated.current}
    codec = AesGcmCodec(rotated)
    [after] = await codec.encode([json_payload("sealed after rotation")])
    assert after.metadata[KEY_ID_METADATA] == rotated.current.encode()
    assert await codec.decode([before]) == [json_payload("sealed before rotation")]


async def test_an_unknown_key_id_fails_naming_the_key() -> None:
    stranger = Keyring.generate()
    [payload] = await AesGcmCodec(stranger).encode([json_payload(PLAIN)])
    with pytest.raises(PayloadDecryptionFailed, match=stranger.current) as caught:
        await AesGcmCodec(Keyring.generate()).decode([payload])
    assert "rotation must keep old keys" in str(caught.value)


async def test_a_wrong_key_under_the_right_id_or_altered_bytes_fail() -> None:
    first = parse_keyring(f"k1:{KEY_A}", source="test")
    impostor = parse_keyring(f"k1:{KEY_B}", source="test")
    [payload] = await AesGcmCodec(first).encode([json_payload(PLAIN)])
    with pytest.raises(PayloadDecryptionFailed, match="'k1' did not decrypt"):
        await AesGcmCodec(impostor).decode([payload])
    altered = Payload()
    altered.CopyFrom(payload)
    altered.data = payload.data[:-1] + bytes([payload.data[-1] ^ 1])
    with pytest.raises(PayloadDecryptionFailed):
        await AesGcmCodec(first).decode([altered])
    altered.data = payload.data[: NONCE_BYTES + 3]
    with pytest.raises(PayloadDecryptionFailed, match="'k1' did not decrypt"):
        await AesGcmCodec(first).decode([altered])
    del altered.metadata[KEY_ID_METADATA]
    with pytest.raises(PayloadDecryptionFailed, match="no encryption-key-id"):
        await AesGcmCodec(first).decode([altered])


async def test_a_payload_relabelled_with_another_key_id_fails() -> None:
    both = parse_keyring(f"k1:{KEY_A}\nk2:{KEY_A}", source="test")  # same bytes, two ids
    [payload] = await AesGcmCodec(both).encode([json_payload(PLAIN)])
    payload.metadata[KEY_ID_METADATA] = b"k2"
    with pytest.raises(PayloadDecryptionFailed, match="'k2'"):
        await AesGcmCodec(both).decode([payload])


# -- the keyring ----------------------------------------------------------------------------------


def test_lines_format_first_key_is_current_and_comments_are_ignored() -> None:
    keyring = parse_keyring(f"# header\nk2:{KEY_B}  # newest\n\nk1:{KEY_A}\n", source="keys")
    assert keyring.current == "k2"
    assert list(keyring.keys) == ["k2", "k1"]
    assert parse_keyring(keyring.to_text(), source="again") == keyring


def test_environment_form_separates_keys_by_commas() -> None:
    keyring = parse_keyring(f"k2:{KEY_B},k1:{KEY_A}", source="AIOS_PAYLOAD_KEYS")
    assert (keyring.current, list(keyring.keys)) == ("k2", ["k2", "k1"])


def test_json_format_names_its_current_key() -> None:
    text = f'{{"current": "k1", "keys": {{"k2": "{KEY_B}", "k1": "{KEY_A}"}}}}'
    keyring = parse_keyring(text, source="keys.json")
    assert keyring.current == "k1"
    assert keyring.keys["k2"] == b"b" * 32


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "holds no payload key"),
        (f"k1:{KEY_A}\nk1-without-colon", r"keyfile, line 2: expected `id:base64key`"),
        ("k1:not*base64", "'k1' is not valid base64"),
        (f"k1:{base64.b64encode(b'short').decode()}", "'k1' is 5 bytes; AES-256 needs 32"),
        (f"k1:{KEY_A}\nk1:{KEY_B}", "'k1' appears twice"),
        (f"bad/id:{KEY_A}", "key id 'bad/id' must be"),
        ('{"current": "k1", "keys": ', "keyfile is not valid JSON"),
        (f'{{"current": "k9", "keys": {{"k1": "{KEY_A}"}}}}', "current key 'k9' is not among"),
        ('{"keys": {}}', 'expected {"current"'),
    ],
)
def test_keyring_errors_name_the_source_and_the_problem(text: str, expected: str) -> None:
    with pytest.raises(KeyringInvalid, match=expected) as caught:
        parse_keyring(text, source="keyfile")
    assert "keyfile" in str(caught.value)
    assert KEY_A not in str(caught.value) and KEY_B not in str(caught.value)


def test_first_use_creates_a_private_key_file_once(tmp_path: Path) -> None:
    settings = local_settings(tmp_path)
    first = load_keyring(settings)
    path = default_key_file(settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_keyring(settings) == first
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_no_key_is_invented_for_a_remote_temporal(tmp_path: Path) -> None:
    remote = local_settings(tmp_path, temporal_address="temporal.example.com:7233")
    with pytest.raises(KeyringInvalid, match="AIOS_PAYLOAD_KEY_FILE"):
        load_keyring(remote)
    assert not default_key_file(remote).exists()


def test_a_named_key_file_that_is_missing_is_reported(tmp_path: Path) -> None:
    settings = local_settings(tmp_path, payload_key_file=tmp_path / "nowhere")
    with pytest.raises(KeyringInvalid, match=r"AIOS_PAYLOAD_KEY_FILE is .*nowhere, which does not exist"):
        load_keyring(settings)


def test_environment_keys_win_over_the_file(tmp_path: Path) -> None:
    settings = local_settings(tmp_path, payload_keys=SecretStr(f"env1:{KEY_A}"))
    assert load_keyring(settings).current == "env1"
    assert not default_key_file(settings).exists()
    with pytest.raises(KeyringInvalid, match="AIOS_PAYLOAD_KEYS"):
        rotate_key(settings)


def test_encryption_can_be_turned_off(tmp_path: Path) -> None:
    assert codec_for(local_settings(tmp_path, payload_encryption=False)) is None
    assert not default_key_file(local_settings(tmp_path)).exists()


async def test_rotate_key_file_keeps_old_keys_and_running_codecs_pick_up_the_new_one(tmp_path: Path) -> None:
    settings = local_settings(tmp_path)
    running = codec_for(settings)  # a worker started before the rotation
    assert running is not None
    [old_payload] = await running.encode([json_payload("old")])
    path, rotated = rotate_key(settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert running.current_key_id in rotated.keys
    fresh = codec_for(settings)  # a process started after it
    assert fresh is not None and fresh.current_key_id == rotated.current
    [new_payload] = await fresh.encode([json_payload("new")])
    # The old process meets the new key id, re-reads the file once, and carries on.
    assert await running.decode([new_payload]) == [json_payload("new")]
    assert await fresh.decode([old_payload]) == [json_payload("old")]


# -- redaction ------------------------------------------------------------------------------------

SECRET = "sk-canary-0123456789"


def redact(text: str) -> str:
    return text.replace(SECRET, MASK)


def test_log_filter_masks_message_arguments_and_traceback() -> None:
    try:
        raise RuntimeError(f"upstream said {SECRET}")
    except RuntimeError:
        record = logging.getLogger("t").makeRecord(
            "t", logging.ERROR, __file__, 1, "calling with %s", (SECRET,), exc_info=sys.exc_info()
        )
    assert RedactionFilter(redact).filter(record)
    text = logging.Formatter().format(record)
    assert SECRET not in text
    assert text.count(MASK) == 2
    assert "RuntimeError" in text  # the traceback is kept, masked


def test_failure_converter_masks_and_seals_messages_and_causes() -> None:
    converter = failure_converter_class(redact, encrypt=True)()
    try:
        try:
            raise ValueError(f"inner {SECRET}")
        except ValueError as inner:
            raise ApplicationError(f"outer {SECRET}") from inner
    except ApplicationError as error:
        failure = Failure()
        converter.to_failure(error, pydantic_data_converter.payload_converter, failure)
    assert SECRET.encode() not in failure.SerializeToString()
    assert failure.message == failure.cause.message == "Encoded failure"
    back = converter.from_failure(failure, pydantic_data_converter.payload_converter)
    assert isinstance(back, ApplicationError) and back.message == f"outer {MASK}"
    assert isinstance(back.__cause__, ApplicationError) and back.__cause__.message == f"inner {MASK}"


def test_span_exporter_masks_attributes_events_and_status() -> None:
    exported: list[ReadableSpan] = []

    class Collect(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            exported.extend(spans)
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(RedactingSpanExporter(Collect(), redact)))
    with provider.get_tracer("t").start_as_current_span("call", record_exception=False) as span:
        span.set_attribute("http.url", f"https://api/x?key={SECRET}")
        span.set_attribute("retries", 2)
        span.record_exception(RuntimeError(SECRET))
        span.set_status(Status(StatusCode.ERROR, f"failed: {SECRET}"))
    [masked] = exported
    assert masked.attributes is not None and masked.attributes["retries"] == 2
    texts = [str(masked.attributes), str(masked.status.description)]
    texts += [str(event.attributes) for event in masked.events]
    assert all(SECRET not in text for text in texts)
    assert MASK in texts[0] and MASK in texts[1]
