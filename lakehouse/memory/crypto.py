"""Encryption of memory content and metadata at rest (``AURA_MEMORY_KEY``).

With a key configured, every copy of a memory's ``content`` and ``metadata`` (the Redis hash,
the ``aura:events:memory`` entry, ``memory_events``, the Qdrant payload and ``memories``) holds
a sealed token instead of the text; vectors, ids, the tenant, times, importance and the
signature stay in the clear (search, TTL and erase need them).

Token: ``aura-enc:v1:`` + urlsafe base64 of ``key id (4 bytes) ‖ nonce (12) ‖ AES-256-GCM
ciphertext and tag``. The associated data binds the token to its tenant, memory id and field
(``content`` or ``metadata``): a token copied to another tenant, memory or field does not
decrypt. Sealed metadata is the JSON object ``{"aura_sealed": token}``, so every contract that
wants an object still gets one.

Invariants:

- Without a key, records pass through unchanged (plaintext), and reading a sealed record raises
  :class:`~lakehouse.exceptions.MemoryKeyError`, never returns the token as content.
- With a key, plaintext records written before it was set still read (and
  :meth:`MemoryStore.rotate_key` seals them).
- Keys appear in no message: errors name the key's id (a 4-byte digest), never the key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from lakehouse.exceptions import MemoryKeyError, ValidationError
from lakehouse.settings import Settings

PREFIX = "aura-enc:v1:"
SEALED = "aura_sealed"
"""The one key of a sealed metadata object."""
_NONCE = 12
_KID = 4
_SET_KEY = (
    "set AURA_MEMORY_KEY to the key these memories were written with (or add it to "
    "AURA_MEMORY_OLD_KEYS and run `aura memory rotate-key`)"
)


def new_key() -> str:
    """A fresh memory key: 32 random bytes, urlsafe base64 (the ``AURA_MEMORY_KEY`` format)."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def key_id(key: bytes) -> bytes:
    """A 4-byte digest naming a key (in tokens and error messages) without revealing it."""
    return hashlib.sha256(b"aura-memory-key-id\x00" + key).digest()[:_KID]


def _embedding_key(key: bytes) -> bytes:
    return hashlib.blake2b(key, digest_size=32, person=b"aura-embed-v1").digest()


def _aad(tenant_id: str, memory_id: str, name: str) -> bytes:
    return f"aura-memory\x00v1\x00{tenant_id}\x00{memory_id}\x00{name}".encode()


def is_sealed(value: object) -> bool:
    """Whether a stored content string or metadata object is a sealed token."""
    if isinstance(value, str):
        return value.startswith(PREFIX)
    return isinstance(value, Mapping) and len(value) == 1 and SEALED in value


class MemoryCipher:
    """Seals and opens memory records; a cipher without keys is the plaintext mode."""

    def __init__(self, key: bytes | None = None, old_keys: Sequence[bytes] = ()) -> None:
        self._current = AESGCM(key) if key else None
        self._kid = key_id(key) if key else b""
        self._keys = {key_id(k): AESGCM(k) for k in (*old_keys, *([key] if key else []))}
        self._embedding_keys = [_embedding_key(key)] if key else []
        self._old_embedding_keys = [_embedding_key(k) for k in old_keys]

    def embedding_key(self) -> bytes | None:
        """The key of the hashing embedder's vectors (derived from the current key), or None
        without a key: vectors stored in the clear then reveal no text to a guesser."""
        return self._embedding_keys[0] if self._embedding_keys else None

    def old_embedding_keys(self) -> list[bytes | None]:
        """The embedding keys of the old keys, and None (vectors made without a key)."""
        return [*self._old_embedding_keys, None]

    @classmethod
    def from_settings(cls, settings: Settings) -> MemoryCipher:
        """The cipher of ``AURA_MEMORY_KEY`` and ``AURA_MEMORY_OLD_KEYS`` (validated there)."""
        decode = base64.urlsafe_b64decode
        key = decode(settings.memory_key) if settings.memory_key else None
        return cls(key, [decode(k) for k in settings.memory_old_keys])

    @property
    def enabled(self) -> bool:
        """Whether new records are sealed (a current key is configured)."""
        return self._current is not None

    # -- one field ---------------------------------------------------------------------------

    def seal(self, tenant_id: str, memory_id: str, name: str, text: str) -> str:
        """``text`` as a token bound to the tenant, memory and field ``name``."""
        assert self._current is not None
        nonce = os.urandom(_NONCE)
        sealed = self._current.encrypt(nonce, text.encode(), _aad(tenant_id, memory_id, name))
        return PREFIX + base64.urlsafe_b64encode(self._kid + nonce + sealed).decode()

    def open(self, tenant_id: str, memory_id: str, name: str, token: str) -> str:
        """The text of a token.

        Raises:
            MemoryKeyError: no key is configured, the token's key is not configured, or the
                token does not authenticate (altered, or moved from another tenant/memory).
        """
        where = f"memory {memory_id} of tenant {tenant_id!r}"
        if not self._keys:
            raise MemoryKeyError(f"{where} is encrypted and AURA_MEMORY_KEY is unset: {_SET_KEY}")
        try:
            raw = base64.urlsafe_b64decode(token[len(PREFIX) :].encode())
        except (binascii.Error, ValueError):
            raise MemoryKeyError(f"{where}: its {name} is a malformed encrypted token") from None
        kid, nonce, sealed = raw[:_KID], raw[_KID : _KID + _NONCE], raw[_KID + _NONCE :]
        aead = self._keys.get(kid)
        if aead is None:
            raise MemoryKeyError(
                f"{where} was encrypted with key id {kid.hex()}, which is neither AURA_MEMORY_KEY "
                f"nor one of AURA_MEMORY_OLD_KEYS: {_SET_KEY}"
            )
        try:
            return aead.decrypt(nonce, sealed, _aad(tenant_id, memory_id, name)).decode()
        except InvalidTag:
            raise MemoryKeyError(
                f"{where}: its {name} does not authenticate with key id {kid.hex()}: the stored "
                "value was altered or copied from another tenant or memory; restore it from a "
                "backup or forget the memory"
            ) from None

    def current(self, value: object) -> bool:
        """Whether a stored content or metadata value is sealed with the current key."""
        if isinstance(value, Mapping):
            value = value.get(SEALED) if is_sealed(value) else None
        if not isinstance(value, str) or not value.startswith(PREFIX):
            return False
        try:
            head = base64.urlsafe_b64decode(value[len(PREFIX) : len(PREFIX) + 8].encode())
        except (binascii.Error, ValueError):
            return False  # malformed: opening it says so
        return head[:_KID] == self._kid

    # -- records -----------------------------------------------------------------------------

    def seal_record(self, rec: Mapping[str, Any]) -> dict[str, Any]:
        """A record (``Memory.record()`` or an event) with content and metadata sealed.

        The memory id is ``rec["id"]`` or ``rec["memory_id"]``. Without a key the record is
        returned as is.

        Raises:
            ValidationError: the content or metadata looks like a token (reads would take it
                for one).
        """
        out = dict(rec)
        content, metadata = out.get("content"), out.get("metadata")
        if is_sealed(content) or is_sealed(metadata):
            raise ValidationError(
                f"content starts with the reserved prefix {PREFIX!r} or metadata is an object "
                f"with the single key {SEALED!r}; change it"
            )
        if self._current is None:
            return out
        tenant, mid = str(out["tenant_id"]), str(out.get("id") or out["memory_id"])
        if isinstance(content, str):
            out["content"] = self.seal(tenant, mid, "content", content)
        if metadata is not None:
            text = json.dumps(metadata, separators=(",", ":"), allow_nan=False)
            out["metadata"] = {SEALED: self.seal(tenant, mid, "metadata", text)}
        return out

    def open_record(self, rec: dict[str, Any]) -> dict[str, Any]:
        """A stored record with content and metadata opened (plaintext records pass through)."""
        content, metadata = rec.get("content"), rec.get("metadata")
        sealed_content, sealed_meta = is_sealed(content), is_sealed(metadata)
        if not (sealed_content or sealed_meta):
            return rec
        out = dict(rec)
        tenant, mid = str(out["tenant_id"]), str(out.get("id") or out["memory_id"])
        if sealed_content:
            out["content"] = self.open(tenant, mid, "content", content)  # type: ignore[arg-type]
        if sealed_meta:
            token = metadata[SEALED]  # type: ignore[index]
            out["metadata"] = json.loads(self.open(tenant, mid, "metadata", token))
        return out

    def reseal_record(self, rec: dict[str, Any]) -> dict[str, Any]:
        """A stored record sealed with the current key (opened with any configured key); one
        already sealed with it is returned as is."""
        fields = [rec.get(name) for name in ("content", "metadata")]
        if all(v is None or self.current(v) for v in fields):
            return rec
        return self.seal_record(self.open_record(rec))
