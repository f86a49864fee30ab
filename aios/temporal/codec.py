"""Payload encryption: an AES-256-GCM payload codec and its keyring (docs/ARCHITECTURE.md, decision 11).

Every payload Temporal stores (inputs, results, signals, memos, summaries, failure details)
leaves the process as `binary/encrypted`: the whole original Payload (metadata and data) is
sealed with the keyring's current key under a fresh 96-bit nonce, and the key's id travels in
the metadata so that after a rotation the old keys still open what they sealed. Payloads that
are not encrypted pass through, so histories written before encryption still decode.

The keyring comes from AIOS_PAYLOAD_KEYS, else from AIOS_PAYLOAD_KEY_FILE, else from
`<data_dir>/keys/payload-keys`, which is created with one random key when Temporal is local.
Its format, one key per line, the current (encrypting) key first:

    k20260101-3fa2c1:q4mB...base64 of 32 bytes...=
    k20251201-77de01:Zx81...=

or JSON: {"current": "k20260101-3fa2c1", "keys": {"k20260101-3fa2c1": "q4mB...=", ...}}.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from aios.errors import AiosError
from aios.settings import Settings

ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # the 96-bit nonce GCM is designed for; random, so never reused in practice
TAG_BYTES = 16  # GCM's authentication tag, appended to the ciphertext
KEY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
KEY_FILE_HEADER = (
    "# aios payload keys: `id:base64(32 bytes)`, one per line, the current (encrypting) key first.\n"
    "# Keep every old key while histories it encrypted exist: it is the only way to read them.\n"
)


class KeyringInvalid(AiosError):
    """The payload keyring is missing or malformed; the message names the source and the fix."""


class PayloadDecryptionFailed(AiosError):
    """An encrypted payload could not be opened: unknown key id, wrong key, or altered bytes."""


@dataclass(frozen=True)
class Keyring:
    """Named AES-256 keys; `current` encrypts, every key decrypts."""

    current: str
    keys: Mapping[str, bytes]
    _ciphers: dict[str, AESGCM] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.current not in self.keys:
            raise KeyringInvalid(f"the current key {self.current!r} is not among the keys {list(self.keys)}")
        for key_id, key in self.keys.items():
            self._ciphers[key_id] = AESGCM(key)

    @classmethod
    def generate(cls) -> Keyring:
        key_id = new_key_id()
        return cls(key_id, {key_id: AESGCM.generate_key(bit_length=KEY_BYTES * 8)})

    def rotated(self) -> Keyring:
        """A keyring whose new random key encrypts from now on; the old keys still decrypt."""
        fresh = Keyring.generate()
        return Keyring(fresh.current, {**fresh.keys, **self.keys})

    def cipher(self, key_id: str) -> AESGCM | None:
        return self._ciphers.get(key_id)

    def encoded_keys(self) -> list[str]:
        """The keys in base64, as they are written down (what a log redaction must hide)."""
        return [base64.b64encode(key).decode() for key in self.keys.values()]

    def to_text(self) -> str:
        order = [self.current, *(key_id for key_id in self.keys if key_id != self.current)]
        lines = [f"{key_id}:{base64.b64encode(self.keys[key_id]).decode()}" for key_id in order]
        return KEY_FILE_HEADER + "\n".join(lines) + "\n"


def new_key_id() -> str:
    # Date first so an operator sees at a glance which key is older; random suffix so two
    # rotations in the same second never collide.
    return f"k{time.strftime('%Y%m%d', time.gmtime())}-{secrets.token_hex(3)}"


# -- parsing ---------------------------------------------------------------------------------


def parse_keyring(text: str, *, source: str) -> Keyring:
    """Read a keyring in the lines or the JSON format; errors name `source` and the bad entry."""
    if text.lstrip().startswith("{"):
        return _parse_json(text, source)
    return _parse_lines(text, source)


def _parse_lines(text: str, source: str) -> Keyring:
    keys: dict[str, bytes] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        # Commas and spaces also separate entries, so AIOS_PAYLOAD_KEYS fits on one line.
        for entry in re.split(r"[,\s]+", line.split("#", 1)[0].strip()):
            if entry:
                key_id, key = _parse_entry(entry, f"{source}, line {number}")
                _add_key(keys, key_id, key, source)
    if not keys:
        raise KeyringInvalid(
            f"{source} holds no payload key; expected lines `id:base64key` (32 random bytes in "
            "base64), the current key first. `aios dev rotate-key` writes a new key file."
        )
    return Keyring(next(iter(keys)), keys)


def _parse_entry(entry: str, where: str) -> tuple[str, bytes]:
    key_id, sep, encoded = entry.partition(":")
    if not sep:
        raise KeyringInvalid(f"{where}: expected `id:base64key`, found an entry without a colon")
    return key_id, _decode_key(key_id, encoded, where)


def _parse_json(text: str, source: str) -> Keyring:
    try:
        document: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise KeyringInvalid(f"{source} is not valid JSON ({exc})") from None
    raw_keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(raw_keys, dict) or not raw_keys:
        raise KeyringInvalid(
            f'{source}: expected {{"current": "<id>", "keys": {{"<id>": "<base64 key>", ...}}}}'
        )
    keys: dict[str, bytes] = {}
    for key_id, encoded in raw_keys.items():
        if not isinstance(encoded, str):
            raise KeyringInvalid(f"{source}: the key {key_id!r} must be a base64 string")
        _add_key(keys, key_id, _decode_key(key_id, encoded, source), source)
    current = document.get("current", next(iter(keys)))
    if current not in keys:
        raise KeyringInvalid(f"{source}: the current key {current!r} is not among the keys {list(keys)}")
    return Keyring(current, keys)


def _decode_key(key_id: str, encoded: str, where: str) -> bytes:
    if not KEY_ID.fullmatch(key_id):
        raise KeyringInvalid(
            f"{where}: key id {key_id!r} must be 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise KeyringInvalid(f"{where}: the key {key_id!r} is not valid base64") from None
    if len(key) != KEY_BYTES:
        raise KeyringInvalid(
            f"{where}: the key {key_id!r} is {len(key)} bytes; AES-256 needs {KEY_BYTES} random bytes "
            "(`aios dev rotate-key` generates one)"
        )
    return key


def _add_key(keys: dict[str, bytes], key_id: str, key: bytes, source: str) -> None:
    if key_id in keys:
        raise KeyringInvalid(f"{source}: the key id {key_id!r} appears twice; key ids must be unique")
    keys[key_id] = key


# -- where the keyring lives --------------------------------------------------------------------


def default_key_file(settings: Settings) -> Path:
    return settings.data_dir / "keys" / "payload-keys"


def key_file(settings: Settings) -> Path:
    return settings.payload_key_file or default_key_file(settings)


def load_keyring(settings: Settings, *, create: bool = True) -> Keyring:
    """The configured keyring; with `create`, a local default key file is made when missing."""
    if settings.payload_keys is not None:
        return parse_keyring(settings.payload_keys.get_secret_value(), source="AIOS_PAYLOAD_KEYS")
    path = key_file(settings)
    if path.is_file():
        return read_key_file(path)
    if settings.payload_key_file is not None:
        raise KeyringInvalid(
            f"AIOS_PAYLOAD_KEY_FILE is {path}, which does not exist; point it at the key file, "
            "or unset it to use the local default key."
        )
    if not create or not settings.temporal_is_local:
        # A key made up on one machine would leave every other worker unable to read its
        # payloads: against a shared Temporal the key must be given, never invented.
        raise KeyringInvalid(
            "no payload key is configured: set AIOS_PAYLOAD_KEY_FILE (or AIOS_PAYLOAD_KEYS) to the "
            "keyring every worker and client share, or AIOS_PAYLOAD_ENCRYPTION=false."
        )
    return _create_key_file(path, Keyring.generate())


def read_key_file(path: Path) -> Keyring:
    try:
        text = path.read_text()
    except OSError as exc:
        raise KeyringInvalid(f"cannot read the payload key file {path}: {exc.strerror}") from None
    return parse_keyring(text, source=str(path))


def write_key_file(path: Path, keyring: Keyring) -> None:
    """Replace the key file atomically, so a crash never leaves a half-written keyring."""
    temporary = _write_temporary(path, keyring)
    os.replace(temporary, path)


def _create_key_file(path: Path, keyring: Keyring) -> Keyring:
    """Create the key file unless another process just did; return the keyring on disk.

    A worker and a client starting together must end up with the same key: link() is atomic
    and refuses an existing name, so exactly one generated key wins and the other reads it.
    """
    temporary = _write_temporary(path, keyring)
    try:
        os.link(temporary, path)
    except FileExistsError:
        return read_key_file(path)
    finally:
        temporary.unlink()
    return keyring


def _write_temporary(path: Path, keyring: Keyring) -> Path:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    # Mode 0600 from the first byte: the key is never readable by others, not even briefly.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(keyring.to_text())
    return temporary


def rotate_key(settings: Settings) -> tuple[Path, Keyring]:
    """Add a new current key to the key file, keeping the old keys; return the file and keyring."""
    if settings.payload_keys is not None:
        raise KeyringInvalid(
            "the payload keys come from AIOS_PAYLOAD_KEYS, which aios cannot rewrite: add a new "
            "`id:base64key` entry at its front yourself (keep the old ones), or use a key file."
        )
    path = key_file(settings)
    # Rotating into a file that does not exist yet is how an operator creates a keyring.
    keyring = load_keyring(settings).rotated() if path.exists() else Keyring.generate()
    write_key_file(path, keyring)
    return path, keyring


# -- the codec ----------------------------------------------------------------------------------


class AesGcmCodec(PayloadCodec):
    """Encrypts with the keyring's current key; decrypts with whichever key the payload names."""

    def __init__(self, keyring: Keyring, *, reload: Callable[[], Keyring] | None = None) -> None:
        self._keyring = keyring
        # After `aios dev rotate-key`, a process started earlier meets the new key id; one
        # re-read of the key file lets it continue instead of failing until it is restarted.
        self._reload = reload

    @property
    def current_key_id(self) -> str:
        return self._keyring.current

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(payload) for payload in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        key_id = self._keyring.current
        cipher = self._keyring.cipher(key_id)
        assert cipher is not None  # Keyring guarantees its current key has a cipher
        nonce = os.urandom(NONCE_BYTES)
        sealed = cipher.encrypt(nonce, payload.SerializeToString(), _associated_data(key_id))
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID_METADATA: key_id.encode()},
            data=nonce + sealed,
        )

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload  # written before encryption was on, or by a process without it
        key_id = payload.metadata.get(KEY_ID_METADATA, b"").decode(errors="replace")
        if not key_id:
            raise PayloadDecryptionFailed(f"an encrypted payload carries no {KEY_ID_METADATA} metadata")
        cipher = self._cipher_for(key_id)
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            if len(sealed) < TAG_BYTES:
                raise InvalidTag  # cut short: treated like any other altered payload
            plain = cipher.decrypt(nonce, sealed, _associated_data(key_id))
        except InvalidTag:
            raise PayloadDecryptionFailed(
                f"a payload encrypted with key {key_id!r} did not decrypt: the key stored under that "
                "id is not the one that encrypted it, or the payload was altered."
            ) from None
        return Payload.FromString(plain)

    def _cipher_for(self, key_id: str) -> AESGCM:
        cipher = self._keyring.cipher(key_id)
        if cipher is None and self._reload is not None:
            self._keyring = self._reload()
            cipher = self._keyring.cipher(key_id)
        if cipher is None:
            raise PayloadDecryptionFailed(
                f"a payload was encrypted with key {key_id!r}, which is not in the keyring "
                f"(it holds {', '.join(self._keyring.keys)}). Add that key to the key file or "
                "AIOS_PAYLOAD_KEYS: rotation must keep old keys while histories use them."
            )
        return cipher


def _associated_data(key_id: str) -> bytes:
    # Binds the key id into the tag: relabelling a payload with another id makes it fail.
    return b"aios-payload-v1:" + key_id.encode()


def codec_for(settings: Settings) -> AesGcmCodec | None:
    """The codec every client and worker uses, or None when AIOS_PAYLOAD_ENCRYPTION=false."""
    if not settings.payload_encryption:
        return None
    reload = None if settings.payload_keys is not None else (lambda: load_keyring(settings, create=False))
    return AesGcmCodec(load_keyring(settings), reload=reload)
