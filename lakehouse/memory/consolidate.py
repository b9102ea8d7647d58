"""Consolidation of near-duplicate memories during compaction, with provenance kept.

Two memories of one tenant are near-duplicates when all of these hold:

- their vectors' cosine similarity is at least ``cosine`` (default :data:`COSINE`);
- their texts, case-folded with punctuation dropped and whitespace collapsed, are equal, or
  hold the same numbers in the same order (memories that differ by an order number, an
  amount or a date stay apart) and match at least ``text`` by
  :class:`difflib.SequenceMatcher` ratio (default :data:`TEXT`);
- their metadata (provenance aside) and their topology signatures are equal, so no filter
  and no shape search answers differently after the merge.

A group of near-duplicates collapses into one survivor: the memory with the highest
importance (then the oldest, then the smallest id) keeps its id, content, vector and creation
time, and takes the group's highest importance, latest access and latest expiry (no expiry if
any member had none, so nothing outlives less than it was stored for). Its metadata key
:data:`PROVENANCE` lists, sorted, every id it absorbed (and those they had absorbed); that key
travels with the metadata into every tier, ``memories`` included. Absorbed memories are gone
from every read once their survivor is verified in its tier. Groups form greedily around the
survivors (a memory joins the first survivor it duplicates), so similarity never chains.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from lakehouse.exceptions import ValidationError
from lakehouse.memory.model import PROVENANCE, Memory

COSINE = 0.97
TEXT = 0.95
_PUNCTUATION = re.compile(r"[^\w\s]+")
_NUMBER = re.compile(r"\d+")


def check_thresholds(cosine: float, text: float) -> None:
    for name, value in (("cosine", cosine), ("text", text)):
        if not 0.0 < value <= 1.0:
            raise ValidationError(f"consolidation {name} threshold must lie in (0, 1], got {value}")


def _text(content: str) -> str:
    return " ".join(_PUNCTUATION.sub(" ", content.casefold()).split())


def _same_kind(a: Memory, b: Memory) -> bool:
    strip = {k: v for k, v in a.metadata.items() if k != PROVENANCE}
    other = {k: v for k, v in b.metadata.items() if k != PROVENANCE}
    return a.tenant_id == b.tenant_id and a.signature == b.signature and strip == other


def _alike(a: Memory, b: Memory, sim: float, cosine: float, text: float) -> bool:
    if sim < cosine or not _same_kind(a, b):
        return False
    ta, tb = _text(a.content), _text(b.content)
    if ta == tb:
        return True
    if _NUMBER.findall(ta) != _NUMBER.findall(tb):  # an order number, an amount, a date
        return False
    return difflib.SequenceMatcher(None, ta, tb, autojunk=False).ratio() >= text


def _unit(memories: Sequence[Memory]) -> np.ndarray:
    matrix = np.asarray([m.vector for m in memories], dtype=np.float32)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def near_duplicates(a: Memory, b: Memory, *, cosine: float = COSINE, text: float = TEXT) -> bool:
    """Whether ``a`` and ``b`` collapse into one memory (see the module docstring)."""
    va, vb = _unit([a, b])
    return _alike(a, b, float(va @ vb), cosine, text)


def _priority(m: Memory) -> tuple[float, int, str]:
    return (-m.importance, m.created_ms, m.id)


def merge(group: Sequence[Memory]) -> Memory:
    """The survivor of a group, carrying the group's importance, access, expiry and provenance."""
    ordered = sorted(group, key=_priority)
    head = ordered[0]
    absorbed: set[str] = set(head.metadata.get(PROVENANCE, ()))
    for m in ordered[1:]:
        absorbed |= {m.id, *m.metadata.get(PROVENANCE, ())}
    accessed = [m.last_access_ms for m in ordered if m.last_access_ms is not None]
    expiries = [m.expires_ms for m in ordered]
    return replace(
        head,
        importance=max(m.importance for m in ordered),
        last_access_ms=max(accessed) if accessed else None,
        expires_ms=None if None in expiries else max(e for e in expiries if e is not None),
        metadata={**head.metadata, PROVENANCE: sorted(absorbed)} if absorbed else head.metadata,
    )


@dataclass
class Plan:
    """What a hot → warm move writes once near-duplicates are consolidated."""

    survivors: list[Memory] = field(default_factory=list)
    absorbed_hot: dict[str, str] = field(default_factory=dict)  # hot id → survivor id
    absorbed_warm: dict[str, str] = field(default_factory=dict)  # warm id → survivor id


def plan(
    moving: Sequence[Memory],
    neighbours: Callable[[Sequence[Memory]], Sequence[Sequence[Memory]]],
    *,
    cosine: float = COSINE,
    text: float = TEXT,
) -> Plan:
    """Consolidate memories leaving the hot tier among themselves and with warm ``neighbours``.

    ``neighbours(memories)`` returns, for each memory, the tenant's warm memories nearest to
    it (one batched lookup for every group). Every
    memory in ``moving`` either is a survivor or is absorbed by one; a warm neighbour is only
    rewritten (as a survivor) or deleted (absorbed) when it duplicates a moving memory.
    """
    groups: list[list[Memory]] = []
    # Only memories of one tenant whose texts hold the same numbers can be alike (_alike), so
    # each memory is compared with the leads of its bucket only: the greedy order within a
    # bucket is the global one, and the grouping is the one an all-pairs pass would make, in
    # time linear in the memories when the buckets are small (not quadratic in the batch).
    ordered = sorted(moving, key=_priority)
    unit = _unit(ordered) if ordered else np.empty((0, 0), dtype=np.float32)
    buckets: dict[tuple[str, tuple[str, ...]], tuple[list[int], list[np.ndarray]]] = {}
    for i, memory in enumerate(ordered):
        key = (memory.tenant_id, tuple(_NUMBER.findall(_text(memory.content))))
        leads, vectors = buckets.setdefault(key, ([], []))
        home = None
        if leads:
            sims = np.stack(vectors) @ unit[i]
            home = next(
                (leads[j] for j in np.flatnonzero(sims >= cosine)
                 if _alike(groups[leads[j]][0], memory, float(sims[j]), cosine, text)),
                None,
            )  # fmt: skip
        if home is None:
            leads.append(len(groups))
            vectors.append(unit[i])
            groups.append([memory])
        else:
            groups[home].append(memory)
    out = Plan()
    taken: set[str] = set()
    moving_ids = {m.id for m in moving}
    near = neighbours([g[0] for g in groups]) if groups else []
    for group, candidates in zip(groups, near, strict=True):
        lead = group[0]
        for warm in candidates:
            fresh = warm.id not in taken and warm.id not in moving_ids
            if fresh and near_duplicates(lead, warm, cosine=cosine, text=text):
                group.append(warm)
                taken.add(warm.id)
        survivor = merge(group)
        out.survivors.append(survivor)
        for m in group:
            if m.id == survivor.id:
                continue
            target = out.absorbed_hot if m.id in moving_ids else out.absorbed_warm
            target[m.id] = survivor.id
    return out
