"""Hot tier: Redis hashes per memory, a per-tenant index, and the event stream.

Keys (``T`` a validated tenant id, which cannot contain ``:``, braces or glob characters; the
full names, hash-tagged into the stream's cluster slot, are in :mod:`.keys`)::

    ...:T:m:<id>   hash {rec: JSON without vector, vec: float32 bytes}; PEXPIREAT = hard TTL
                   (``rec``'s content and metadata sealed with AURA_MEMORY_KEY, if set)
    ...:T:idx      sorted set id → created_ms (age-based compaction, search scan)
    ...:T:acc      hash id → last access ms (decay refresh for memories in every tier)
    ...:T:gen      hash {n: bumped when a memory enters or leaves, reset: bumped when
                   vectors change in place}: what a process's vector cache checks
    ...:tenants    set of tenants with memories

A store writes the hash, the index and its stream event in one MULTI/EXEC (a bulk load
:meth:`HotTier.put_many` batches of them); a get reads the hash
and refreshes the access time in one round trip.

Search reads no vectors out of Redis per query: each process keeps the tenant's hot vectors in a
bounded cache (:class:`_VectorCache`), checked against ``gen`` in one round trip and brought up
to date by reading only the vectors of memories that entered since (a ``reset`` reloads all).
The cache only picks candidates: their similarity is recomputed from the records loaded, so a
stale cache can cost recall for a moment, never a wrong score or another tenant's memory.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

import numpy as np
import orjson
import redis
from redis.commands.core import Script

from lakehouse.exceptions import StreamRefusedError
from lakehouse.ingest.streams import field_of, raw_text
from lakehouse.memory import keys as names
from lakehouse.memory.crypto import MemoryCipher
from lakehouse.memory.events import STREAM, encode_event, mentions, publish_event
from lakehouse.memory.model import Memory, matches, parse_id, read_record, read_records
from lakehouse.stores import HeldConnection, RedisClient

TENANTS = names.TENANTS
_SCAN_BATCH = 500
_VECTOR_BATCH = 5000
_CACHED_TENANTS = 64  # tenants whose hot vectors a process keeps (least recently searched go)
# The ``vec`` fields of KEYS, concatenated into one reply, and the (1-based) positions of the
# keys that are gone (expired since the index was read): one bulk string instead of a reply per
# memory, which redis-py would parse one by one.
_VECTORS = """
local out, gone = {}, {}
for i, key in ipairs(KEYS) do
  local vec = redis.call('HGET', key, 'vec')
  if vec then out[#out + 1] = vec else gone[#gone + 1] = i end
end
return {table.concat(out), gone}
"""
# One memory with its event: the event first, so a stream that refuses it (an entry at the
# maximum id, a key of another type) fails the script before the memory is written.
# KEYS: stream, memory key, index, tenants, generation. ARGV: event, rec, vec, expires_ms or '',
# memory id, created_ms, tenant.
_PUT = """
redis.call('XADD', KEYS[1], '*', 'data', ARGV[1])
redis.call('HSET', KEYS[2], 'rec', ARGV[2], 'vec', ARGV[3])
if ARGV[4] ~= '' then redis.call('PEXPIREAT', KEYS[2], ARGV[4]) end
redis.call('ZADD', KEYS[3], ARGV[6], ARGV[5])
redis.call('SADD', KEYS[4], ARGV[7])
redis.call('HINCRBY', KEYS[5], 'n', 1)
"""
_SET_IF_EXISTS = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
"""

# Rebuild a stream without some entries (ARGV: pairs of entry id and its new ``data`` field, an
# empty one dropping the entry; key rotation replaces, erase drops; returns how many changed).
# XDEL only marks entries deleted inside their listpack node, whose bytes stay in memory, in
# RDB dumps and in AOF rewrites; copying the survivors into
# a fresh stream (same ids, last id, groups, last-delivered ids and pending entries with their
# consumers; delivery counts restart at 1) and renaming it over the old one frees them.
_REBUILD = """
local src, tmp = KEYS[1], KEYS[2]
if redis.call('EXISTS', src) == 0 then return 0 end
local drop, swap = {}, {}
for i = 1, #ARGV, 2 do
  if ARGV[i + 1] == '' then drop[ARGV[i]] = true else swap[ARGV[i]] = ARGV[i + 1] end
end
local info = redis.call('XINFO', 'STREAM', src)
local lastgen
for i = 1, #info, 2 do if info[i] == 'last-generated-id' then lastgen = info[i + 1] end end
local groups = redis.call('XINFO', 'GROUPS', src)
redis.call('DEL', tmp)
local prev, last, dropped = {}, '0-0', 0
for _, e in ipairs(redis.call('XRANGE', src, '-', '+')) do
  if drop[e[1]] then
    dropped = dropped + 1
  else
    if swap[e[1]] then
      redis.call('XADD', tmp, e[1], 'data', swap[e[1]])
      dropped = dropped + 1
    else
      redis.call('XADD', tmp, e[1], unpack(e[2]))
    end
    prev[e[1]] = last
    last = e[1]
  end
end
if last == '0-0' then
  redis.call('XADD', tmp, lastgen, 'erased', '1')
  redis.call('XDEL', tmp, lastgen)
else
  redis.call('XSETID', tmp, lastgen)
end
for _, g in ipairs(groups) do
  local name, delivered
  for i = 1, #g, 2 do
    if g[i] == 'name' then name = g[i + 1] end
    if g[i] == 'last-delivered-id' then delivered = g[i + 1] end
  end
  redis.call('XGROUP', 'CREATE', tmp, name, '0')
  for _, p in ipairs(redis.call('XPENDING', src, name, '-', '+', '1000000000')) do
    if prev[p[1]] then
      redis.call('XGROUP', 'SETID', tmp, name, prev[p[1]])
      redis.call('XREADGROUP', 'GROUP', name, p[2], 'COUNT', '1', 'STREAMS', tmp, '>')
    end
  end
  redis.call('XGROUP', 'SETID', tmp, name, delivered)
end
redis.call('RENAME', tmp, src)
return dropped
"""


def _refused(exc: redis.ResponseError) -> str:
    """What to do when Redis refuses an event on the memory stream."""
    if "exhausted" in str(exc):
        return (
            f"Redis refuses new entries on {STREAM}: an entry sits at the maximum stream id "
            "(18446744073709551615-18446744073709551615), which no entry can follow. Ingest "
            "the stream (the memory_ingest job) so every entry reaches memory_events, then "
            f"delete the key {STREAM} in Redis (DEL) and retry; nothing was written"
        )
    return (
        f"Redis refuses new entries on {STREAM} ({str(exc)[:200]}); check that the key is a "
        "stream AURA writes, then retry; nothing was written"
    )


def _loads(rec: bytes) -> dict[str, Any]:
    """A record's JSON (orjson; ``json`` for the NaN and Infinity tokens orjson refuses)."""
    try:
        return cast(dict[str, Any], orjson.loads(rec))
    except orjson.JSONDecodeError:
        return cast(dict[str, Any], json.loads(rec))


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass
class _Cached:
    """One tenant's hot vectors as of generation ``gen`` (row i is the vector of ``ids[i]``)."""

    gen: tuple[bytes | None, bytes | None]
    ids: list[str]
    matrix: np.ndarray


def _best_first(sims: np.ndarray, n: int) -> np.ndarray:
    """Indexes of at least the ``n`` highest ``sims`` (ties at the cut included), highest
    first and equal ones by position: what a stable full sort starts with, without sorting
    every hot vector's similarity."""
    if n >= len(sims):
        return np.argsort(-sims, kind="stable")
    cut = np.partition(sims, len(sims) - n)[len(sims) - n]  # the n-th highest
    chosen = np.flatnonzero(sims >= cut)
    return chosen[np.argsort(-sims[chosen], kind="stable")]


class _VectorCache(OrderedDict[str, _Cached]):
    """The hot vectors of the most recently searched tenants (at most ``_CACHED_TENANTS``)."""

    def keep(self, tenant_id: str, entry: _Cached) -> None:
        self[tenant_id] = entry
        self.move_to_end(tenant_id)
        while len(self) > _CACHED_TENANTS:
            self.popitem(last=False)


class HotTier:
    """The Redis side of a memory store."""

    def __init__(self, client: RedisClient, cipher: MemoryCipher | None = None) -> None:
        self.client = client
        self.cipher = cipher or MemoryCipher()
        self._rebuild = client.register_script(_REBUILD)
        self._vectors = client.register_script(_VECTORS)
        self._put = client.register_script(_PUT)
        self._set_if_exists = client.register_script(_SET_IF_EXISTS)
        self._cache = _VectorCache()
        # Reads on the search and get paths: one connection held, replies unparsed
        self._trip = HeldConnection(client)
        with contextlib.suppress(redis.ConnectionError):  # a server down: renamed on next use
            names.rename_untagged(client)

    def close(self) -> None:
        """Disconnect the connection :meth:`get` holds (the client itself stays open)."""
        self._trip.close()

    def _queue(self, pipe: Any, script: Script, keys: list[str], args: list[Any]) -> None:
        """Add a script's run to a pipeline.

        A cluster pipeline would send ``EVALSHA`` without loading the script on the node (a
        node restarted without it would refuse part of a batch): there it is sent whole.
        """
        if isinstance(self.client, redis.RedisCluster):
            pipe.execute_command("EVAL", script.script, len(keys), *keys, *args)
        else:
            script(keys=keys, args=args, client=pipe)

    @staticmethod
    def key(tenant_id: str, memory_id: str) -> str:
        return names.memory(tenant_id, memory_id)

    @staticmethod
    def generation(tenant_id: str) -> str:
        return names.generation(tenant_id)

    @staticmethod
    def index(tenant_id: str) -> str:
        return names.index(tenant_id)

    @staticmethod
    def access(tenant_id: str) -> str:
        return names.access(tenant_id)

    def put(self, memory: Memory, vector: np.ndarray, event: dict[str, Any]) -> None:
        """Store a memory and publish its event atomically."""
        self.put_many([(memory, vector, event)])

    def put_many(self, items: Sequence[tuple[Memory, np.ndarray, dict[str, Any]]]) -> None:
        """Store memories with their events, :meth:`put` for each, in pipelined batches.

        Each memory is one script that appends its event first and writes the memory only
        once the stream took it: a memory is never in Redis without its event.

        Raises:
            StreamRefusedError: the stream refused an event (those memories were not written;
                the others of the batch were).
            redis.ConnectionError: Redis does not answer.
        """
        for start in range(0, len(items), _SCAN_BATCH):
            pipe = self.client.pipeline(transaction=True)
            for memory, vector, event in items[start : start + _SCAN_BATCH]:
                rec = json.dumps(self.cipher.seal_record(memory.record()), separators=(",", ":"))
                keys = [STREAM, self.key(memory.tenant_id, memory.id)]
                keys += [self.index(memory.tenant_id), TENANTS, self.generation(memory.tenant_id)]
                expires = "" if memory.expires_ms is None else str(memory.expires_ms)
                args: list[str | bytes | int] = [encode_event(event), rec, vector.tobytes()]
                args += [expires, memory.id, memory.created_ms, memory.tenant_id]
                self._queue(pipe, self._put, keys, args)
            try:
                pipe.execute()
            except redis.ResponseError as exc:
                raise StreamRefusedError(_refused(exc)) from None

    def publish(self, event: dict[str, Any]) -> None:
        try:
            publish_event(self.client, event)
        except redis.ResponseError as exc:
            raise StreamRefusedError(_refused(exc)) from None

    def get(self, tenant_id: str, memory_id: str, now_ms: int) -> Memory | None:
        """The memory, or None; Redis itself enforces the TTL.

        One round trip reads the record and writes the access refresh (``HMGET`` and ``HSET``
        in one write). The refresh is written on a miss too, as the memory may be in a colder
        tier: a caller that finds it in no tier removes it with :meth:`untouch`.
        """
        key, access = self.key(tenant_id, memory_id), self.access(tenant_id)
        (rec, vec), _ = self._trip(
            [("HMGET", key, "rec", "vec"), ("HSET", access, memory_id, now_ms)]
        )
        if rec is None or vec is None:
            return None
        memory = read_record(memory_id, "hot", partial(self._decode, rec, vec))
        if memory.tenant_id != tenant_id or memory.expired(now_ms):
            return None
        return memory

    def _decode(self, rec: bytes, vec: bytes) -> Memory:
        opened = self.cipher.open_record(_loads(rec))
        return Memory.from_record(opened, np.frombuffer(vec, dtype=np.float32), "hot")

    def load(self, tenant_id: str, ids: Sequence[str]) -> list[Memory]:
        """The memories of ``ids`` still present (an id whose key expired is skipped, and so is
        a record that cannot be read, with a logged reason: see :func:`.model.read_records`)."""
        found: list[tuple[str, Any]] = []
        for start in range(0, len(ids), _SCAN_BATCH):
            chunk = ids[start : start + _SCAN_BATCH]
            replies = self._trip([("HMGET", self.key(tenant_id, i), "rec", "vec") for i in chunk])
            for memory_id, (rec, vec) in zip(chunk, replies, strict=True):
                if rec is not None and vec is not None:
                    found.append((memory_id, partial(self._decode, rec, vec)))
        return [m for m in read_records(found, "hot") if m.tenant_id == tenant_id]

    def search(
        self,
        tenant_id: str,
        vector: np.ndarray,
        k: int,
        filters: Mapping[str, object],
        now_ms: int,
    ) -> list[tuple[Memory, float]]:
        """The ``k`` live memories of the tenant most similar to ``vector`` (with ``filters``).

        Candidates come from this process's cache of the tenant's hot vectors (one round trip
        checks it is current; see the module docstring); their records are then loaded and
        opened in similarity order, in growing batches, until ``k`` of them are live and match
        the filters, each scored on the vector its record holds.
        """
        present, matrix = self._vectors_of(tenant_id)
        if not present:
            return []
        sims = matrix @ vector
        step, at = max(k, 32), 0
        order = _best_first(sims, 4 * step)
        hits: list[tuple[Memory, float]] = []
        while at < len(order) and len(hits) < k:
            if at + step > len(order) and len(order) < len(sims):  # more than the best few
                order = _best_first(sims, len(sims))
            chosen = [present[i] for i in order[at : at + step]]
            for memory in self.load(tenant_id, chosen):
                if not memory.expired(now_ms) and matches(memory.metadata, filters):
                    hits.append((memory, float(memory.vector @ vector)))
            at += len(chosen)
            step = min(step * 4, _VECTOR_BATCH)
        hits.sort(key=lambda hit: -hit[1])
        return hits[:k]

    def _vectors_of(self, tenant_id: str) -> tuple[list[str], np.ndarray]:
        """The tenant's hot ids and vectors, from the cache brought up to date.

        Reads the generation (one round trip); when it moved, the index's ids, and the vectors
        of the ids the cache lacks (all of them after a ``reset``).
        """
        [raw] = self._trip([("HMGET", self.generation(tenant_id), "n", "reset")])
        gen = (raw[0], raw[1])
        cached = self._cache.get(tenant_id)
        if cached is not None and cached.gen == gen and gen[0] is not None:
            self._cache.move_to_end(tenant_id)
            return cached.ids, cached.matrix
        ids = self.ids(tenant_id)
        known: dict[str, int] = {}
        if cached is not None and cached.gen[1] == gen[1] and gen[0] is not None:
            known = {memory_id: row for row, memory_id in enumerate(cached.ids)}
        wanted = [i for i in ids if i not in known]
        fetched: dict[str, np.ndarray] = {}
        for start in range(0, len(wanted), _VECTOR_BATCH):
            chunk = wanted[start : start + _VECTOR_BATCH]
            blob, gone = self._vectors(keys=[self.key(tenant_id, i) for i in chunk])
            missing = {int(i) - 1 for i in gone}
            alive = [memory_id for at, memory_id in enumerate(chunk) if at not in missing]
            if alive:
                block = np.frombuffer(blob, dtype=np.float32).reshape(len(alive), -1)
                fetched.update(zip(alive, block, strict=True))
        present = [i for i in ids if i in known or i in fetched]
        rows = [cached.matrix[known[i]] if i in known else fetched[i] for i in present]  # type: ignore[union-attr]
        matrix = np.vstack(rows) if rows else np.zeros((0, 0), dtype=np.float32)
        self._cache.keep(tenant_id, _Cached(gen, present, matrix))
        return present, matrix

    def ids(self, tenant_id: str, max_created_ms: float = float("inf")) -> list[str]:
        upper = "+inf" if max_created_ms == float("inf") else int(max_created_ms)
        raw = cast(list[bytes], self.client.zrangebyscore(self.index(tenant_id), "-inf", upper))
        return [_text(x) for x in raw]

    def count(self, tenant_id: str) -> int:
        return int(cast(int, self.client.zcard(self.index(tenant_id))))

    def oldest_created_ms(self, tenant_id: str) -> int | None:
        """Creation time of the tenant's oldest hot memory."""
        first = cast(list[Any], self.client.zrange(self.index(tenant_id), 0, 0, withscores=True))
        return int(first[0][1]) if first else None

    def tenants(self) -> list[str]:
        return sorted(_text(t) for t in cast(set[bytes], self.client.smembers(TENANTS)))

    def access_times(self, tenant_id: str, ids: Sequence[str]) -> dict[str, int]:
        if not ids:
            return {}
        [values] = self._trip([("HMGET", self.access(tenant_id), *ids)])
        return {i: int(v) for i, v in zip(ids, values, strict=True) if v is not None}

    def touch(self, tenant_id: str, ids: Iterable[str], now_ms: int) -> None:
        pairs = [x for memory_id in dict.fromkeys(ids) for x in (memory_id, now_ms)]
        if pairs:
            self._trip([("HSET", self.access(tenant_id), *pairs)])

    def untouch(self, tenant_id: str, memory_id: str) -> None:
        """Drop the access time :meth:`get` wrote for a memory no tier holds."""
        self.client.hdel(self.access(tenant_id), memory_id)

    def trim(self, tenant_id: str, ids: Sequence[str], *, keep_access: bool = True) -> int:
        """Remove memories from the hot tier (their access times stay unless told)."""
        if not ids:
            return 0
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(*[self.key(tenant_id, i) for i in ids])
        pipe.zrem(self.index(tenant_id), *ids)
        pipe.hincrby(self.generation(tenant_id), "n", 1)
        if not keep_access:
            pipe.hdel(self.access(tenant_id), *ids)
        return int(pipe.execute()[0])

    def drop_stale_index(self, tenant_id: str) -> int:
        """Index entries whose key Redis expired (TTL); returns how many were dropped."""
        ids = self.ids(tenant_id)
        pipe = self.client.pipeline(transaction=False)
        for memory_id in ids:
            pipe.exists(self.key(tenant_id, memory_id))
        gone = [i for i, e in zip(ids, pipe.execute(), strict=True) if not e]
        if gone:
            self.client.zrem(self.index(tenant_id), *gone)
            self.client.hdel(self.access(tenant_id), *gone)
            self.client.hincrby(self.generation(tenant_id), "n", 1)
        return len(gone)

    def delete_tenant_keys(self, tenant_id: str) -> int:
        """Delete every key of the tenant (validated ids cannot contain glob characters)."""
        deleted = 0
        batch: list[bytes] = []
        for key in self.client.scan_iter(match=names.tenant_pattern(tenant_id), count=_SCAN_BATCH):
            batch.append(key)
            if len(batch) >= _SCAN_BATCH:
                deleted += int(cast(int, self.client.delete(*batch)))
                batch = []
        if batch:
            deleted += int(cast(int, self.client.delete(*batch)))
        self.client.srem(TENANTS, tenant_id)
        return deleted

    def erase_stream(self, tenant_id: str, memory_ids: set[str] | None) -> int:
        """Remove the stream entries about the tenant's ``memory_ids`` (all when None)."""
        doomed = [
            _text(sid)
            for sid, fields in self._entries()
            if self._holds(fields, tenant_id, memory_ids)
        ]
        if not doomed:
            return 0
        changes: dict[str, bytes | None] = dict.fromkeys(doomed)
        return self._rewrite_stream(changes)

    def _rewrite_stream(self, changes: dict[str, bytes | None]) -> int:
        """Rebuild the stream with entries dropped (None) or their ``data`` replaced."""
        args: list[bytes | str] = []
        for sid, data in changes.items():
            args += [sid, data or b""]
        return int(self._rebuild(keys=[STREAM, names.REBUILD], args=args))

    def reseal(self, tenant_id: str) -> int:
        """Seal the tenant's hot records with the current key (key rotation); returns how many
        changed.

        Only ``rec`` is rewritten, only while the key exists (its TTL stays).
        """
        done = 0
        ids = self.ids(tenant_id)
        for start in range(0, len(ids), _SCAN_BATCH):
            keys = [self.key(tenant_id, i) for i in ids[start : start + _SCAN_BATCH]]
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.hget(key, "rec")
            recs = pipe.execute()
            pipe = self.client.pipeline(transaction=False)
            for key, rec in zip(keys, recs, strict=True):
                old = None if rec is None else json.loads(rec)
                new = None if old is None else self.cipher.reseal_record(old)
                if new is not None and new != old:
                    rec = json.dumps(new, separators=(",", ":"))
                    self._queue(pipe, self._set_if_exists, [key], ["rec", rec])
                    done += 1
            pipe.execute()
        return done

    def revector(self, tenant_id: str, revector: Callable[[str, np.ndarray], Any]) -> int:
        """Replace the vectors ``revector`` remakes (key rotation of the keyed embedder), only
        while the key exists; returns how many changed."""
        done = 0
        ids = self.ids(tenant_id)
        for start in range(0, len(ids), _SCAN_BATCH):
            pipe = self.client.pipeline(transaction=False)
            for memory in self.load(tenant_id, ids[start : start + _SCAN_BATCH]):
                new = revector(memory.content, memory.vector)
                if new is not None:
                    key = self.key(tenant_id, memory.id)
                    vec = np.asarray(new, dtype=np.float32).tobytes()
                    self._queue(pipe, self._set_if_exists, [key], ["vec", vec])
                    done += 1
            pipe.hincrby(self.generation(tenant_id), "reset", 1)  # caches reload every vector
            pipe.execute()
        return done

    def reseal_stream(self) -> int:
        """Seal every stream event's content and metadata with the current key; returns how
        many entries changed (entries keep their ids, group positions and pending state)."""
        changes: dict[str, bytes | None] = {}
        for sid, fields in self._entries():
            raw = (fields or {}).get(b"data")
            try:
                event = json.loads(raw) if raw is not None else None
            except ValueError:
                continue  # malformed: ingestion dead-letters it as it is
            if not isinstance(event, dict) or event.get("op") != "store":
                continue
            try:
                new = self.cipher.reseal_record(event)
            except (KeyError, TypeError, ValueError):
                continue  # breaks the contract: ingestion dead-letters it
            if new != event:
                changes[_text(sid)] = json.dumps(new, separators=(",", ":")).encode()
        return self._rewrite_stream(changes) if changes else 0

    def _entries(self) -> Iterable[tuple[Any, dict[bytes, bytes] | None]]:
        """Every entry of the stream, in batches."""
        last = "-"
        while True:
            entries = cast(
                list[Any], self.client.xrange(STREAM, min=last, max="+", count=_SCAN_BATCH)
            )
            if last != "-":
                entries = entries[1:]
            if not entries:
                return
            yield from entries
            last = _text(entries[-1][0])

    @staticmethod
    def _holds(fields: dict[bytes, bytes] | None, tenant_id: str, ids: set[str] | None) -> bool:
        """Whether an entry holds content of the tenant (of ``ids`` when given).

        A well-formed event says so by its fields (a memory id in any spelling of its UUID);
        a malformed entry, or one without ``data``, when its raw text names the tenant (and an
        id). ``forget`` events hold no content: they stay, the record of the erase.
        """
        raw = field_of(fields)
        try:
            event = json.loads(raw) if raw is not None else None
        except (ValueError, RecursionError):
            event = None
        if isinstance(event, dict) and isinstance(event.get("tenant_id"), str):
            if event.get("op") in ("forget", "forget_tenant"):
                return False
            if event["tenant_id"] != tenant_id:
                return False
            return ids is None or parse_id(event.get("memory_id")) in ids
        text = raw_text(raw if raw is not None else fields) or ""
        if ids is None:
            return mentions(text, tenant_id, None)
        return tenant_id in text and any(mentions(text, tenant_id, i) for i in ids)

    def rewrite_persistence(self, timeout: float = 60.0) -> bool:
        """Rewrite the AOF and the RDB so erased values leave the files; False if no persistence.

        Only a server with persistence configured is asked (a shared server with
        ``appendonly no`` and ``save ""`` keeps nothing on disk); waits for both to finish. On
        a Redis Cluster that is the master of the memory slot (its replicas rewrite their
        files on their own schedule).
        """
        server = self._server()
        try:
            config = cast(dict[str, str], server.config_get("appendonly"))
            config |= cast(dict[str, str], server.config_get("save"))
        except redis.ResponseError:  # managed servers may forbid CONFIG
            return False
        aof = _text(config.get("appendonly", "no")) == "yes"
        rdb = bool(_text(config.get("save", "")).strip())
        if not aof and not rdb:
            return False
        self._wait_idle(server, timeout)
        if aof:
            server.bgrewriteaof()
            self._wait_idle(server, timeout)
        server.bgsave(schedule=True)
        self._wait_idle(server, timeout)
        return True

    def _server(self) -> redis.Redis:
        """The server holding the memory keys (on a cluster, the master of their slot)."""
        if not isinstance(self.client, redis.RedisCluster):
            return self.client
        node = self.client.get_node_from_key(STREAM)
        if node is None or node.redis_connection is None:
            raise redis.ConnectionError(f"no Redis Cluster node serves the slot of {STREAM}")
        return node.redis_connection

    @staticmethod
    def _wait_idle(server: redis.Redis, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = cast(dict[str, Any], server.info("persistence"))
            busy = (
                info.get("aof_rewrite_in_progress")
                or info.get("aof_rewrite_scheduled")
                or info.get("rdb_bgsave_in_progress")
            )
            if not busy:
                return
            time.sleep(0.02)
        raise TimeoutError(f"Redis persistence rewrite still running after {timeout} s")
