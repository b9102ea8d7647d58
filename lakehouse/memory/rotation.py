"""Key rotation: every copy of every memory re-sealed with ``AURA_MEMORY_KEY``."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from functools import partial

import numpy as np
import redis

from lakehouse.exceptions import ConfigurationError
from lakehouse.memory.cold import Revector, TableReseal, reseal_table, resealed_rows
from lakehouse.memory.coldindex import INDEX_ERRORS
from lakehouse.memory.model import HashingEmbedder, Memory
from lakehouse.memory.tables import MEMORIES, MEMORY_EVENTS, memory_table
from lakehouse.memory.tiers import MemoryTiers
from lakehouse.memory.warm import WARM_ERRORS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RotationReport:
    """What a key rotation re-sealed with the current key, per tier and copy."""

    hot_records: int
    stream_entries: int
    warm_points: int
    iceberg: tuple[TableReseal, ...]
    qdrant_files_vacuumed: tuple[str, ...]
    redis_persistence_rewritten: bool


class KeyRotation(MemoryTiers):
    """``rotate_key``."""

    def rotate_key(self) -> RotationReport:
        """Re-seal every copy of every memory with ``AURA_MEMORY_KEY``; return what changed.

        Reads accept ``AURA_MEMORY_OLD_KEYS`` (and plaintext); afterwards no tier, stream entry,
        Iceberg snapshot or data file of ``memories`` / ``memory_events`` needs an old key, Qdrant
        local storage is vacuumed and Redis persistence rewritten, so the old keys can be
        dropped. Snapshots other than the ref heads of those tables are expired (their time
        travel ends). Dead letters (``memory_events_rejected``) are kept as received.

        Raises:
            ConfigurationError: no ``AURA_MEMORY_KEY`` is set.
            MemoryKeyError: some copy is sealed with a key that is not configured (nothing
                after that copy is re-sealed; fix the keys and run it again: it is idempotent).
        """
        if not self.cipher.enabled:
            raise ConfigurationError(
                "rotate-key needs the new key in AURA_MEMORY_KEY (and the previous ones in "
                "AURA_MEMORY_OLD_KEYS); nothing was changed"
            )
        self.drain_spool()  # spooled copies join Redis first, and are re-sealed there
        revector = self._revector()
        try:
            hot = sum(self.hot.reseal(tenant) for tenant in self.hot.tenants())
            if revector is not None:
                for tenant in self.hot.tenants():
                    self.hot.revector(tenant, revector)
            entries = self.hot.reseal_stream()
        except redis.RedisError as exc:
            raise self._unavailable("hot", exc, "the key was not rotated everywhere") from None
        try:
            points = self.warm.scan()
            if revector is not None:
                points = [_with_vector(m, revector(m.content, m.vector)) for m in points]
            self.warm.put(points)
        except WARM_ERRORS as exc:
            raise self._unavailable("warm", exc, "the key was not rotated everywhere") from None
        vacuumed = tuple(self.warm.vacuum())
        iceberg = tuple(
            reseal_table(
                memory_table(self.lakehouse, spec.name),
                partial(resealed_rows, cipher=self.cipher, revector=revector),
            )
            for spec in (MEMORIES, MEMORY_EVENTS)
        )
        self.cold.rows.forget()  # rows sealed with the old key leave this process's cache
        if revector is not None:  # the cold tier's vectors changed with its rows
            try:
                self.cold.reindex()
                vacuumed += tuple(self.cold.index.vacuum()) if self.cold.index else ()
            except INDEX_ERRORS as exc:
                raise self._unavailable("warm", exc, "the cold vector index is stale") from None
        rewritten = self.hot.rewrite_persistence()
        report = RotationReport(hot, entries, len(points), iceberg, vacuumed, rewritten)
        log.info("memory key rotation: %s", report)
        return report

    def _revector(self) -> Revector | None:
        """For the keyed default embedder: a memory's vector made with an old key (or none)
        remade with the current one, so search keeps working and old keys can be dropped."""
        if not self.keyed_embedder:
            return None  # the caller's embedder or vectors: not ours to remake
        current = self.embedder
        olds = [HashingEmbedder(self.dim, key=k) for k in self.cipher.old_embedding_keys()]

        def remake(content: str, vector: np.ndarray) -> np.ndarray | None:
            for old in olds:
                if np.allclose(old.embed(content), vector, atol=1e-5):
                    return current.embed(content)
            return None

        return remake


def _with_vector(memory: Memory, vector: np.ndarray | None) -> Memory:
    return memory if vector is None else dataclasses.replace(memory, vector=vector)
