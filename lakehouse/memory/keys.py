"""Every Redis key of the memory domain: one function per kind of key, all in one hash slot.

The memory event stream keeps its name, ``aura:events:memory`` (producers outside AURA append
to it). Every other key of the domain carries that name as its hash tag, so Redis Cluster
puts it in the stream's slot: a memory and its event are written by one script, and an erase
rebuilds the stream beside it, which a cluster allows only within one slot. ``T`` is a
validated tenant id (no ``:``, braces or glob characters)::

    aura:events:memory                          the stream (slot of its own name)
    aura:mem:{aura:events:memory}:T:m:<id>      hash {rec, vec} of one memory
    aura:mem:{aura:events:memory}:T:idx         sorted set id -> created_ms
    aura:mem:{aura:events:memory}:T:acc         hash id -> last access ms
    aura:mem:{aura:events:memory}:T:gen         hash of the tenant's cache generations
    aura:mem:{aura:events:memory}:tenants       set of tenants with memories
    aura:mem:{aura:events:memory}:tombstones    hash of erased ids and tenants
    aura:mem:{aura:events:memory}:rebuild       scratch copy while the stream is rebuilt

On one Redis server a slot means nothing and the tag only lengthens the names. Keys written
before the tag (``aura:mem:T:...``, ``aura:mem:tenants``, ``aura:mem:tombstones``) are renamed
once, when a hot tier opens on that server (:func:`rename_untagged`).
"""

from __future__ import annotations

from typing import Any, cast

from redis.cluster import RedisCluster

from lakehouse.memory.events import STREAM

_SLOT = "{" + STREAM + "}"
_PREFIX = f"aura:mem:{_SLOT}:"
# Names before the hash tag (read only by :func:`rename_untagged`).
_OLD_PREFIX = "aura:mem:"
_OLD_TENANTS = "aura:mem:tenants"
_OLD_TOMBSTONES = "aura:mem:tombstones"
_BATCH = 500

TENANTS = f"{_PREFIX}tenants"
TOMBSTONES = f"{_PREFIX}tombstones"
REBUILD = f"{_PREFIX}rebuild"


def memory(tenant_id: str, memory_id: str) -> str:
    """The hash of one memory."""
    return f"{_PREFIX}{tenant_id}:m:{memory_id}"


def index(tenant_id: str) -> str:
    """The tenant's sorted set of memory ids by creation time."""
    return f"{_PREFIX}{tenant_id}:idx"


def access(tenant_id: str) -> str:
    """The tenant's hash of last access times."""
    return f"{_PREFIX}{tenant_id}:acc"


def generation(tenant_id: str) -> str:
    """The tenant's hash of cache generations (what a process's hot-vector cache checks)."""
    return f"{_PREFIX}{tenant_id}:gen"


def tenant_pattern(tenant_id: str) -> str:
    """A SCAN pattern matching every key of the tenant (tenant ids hold no glob character)."""
    return f"{_PREFIX}{tenant_id}:*"


# Moves each (old, new) pair of KEYS: a rename when the new key is absent, else a merge into it
# (what the new key already holds wins); a missing old key is skipped (another process moved it).
_RENAME = """
local moved = 0
for i = 1, #KEYS, 2 do
  local old, new = KEYS[i], KEYS[i + 1]
  local kind = redis.call('TYPE', old)['ok']
  if kind ~= 'none' then
    moved = moved + 1
    if redis.call('EXISTS', new) == 0 then
      redis.call('RENAME', old, new)
    else
      if kind == 'hash' then
        local kv = redis.call('HGETALL', old)
        for j = 1, #kv, 2 do redis.call('HSETNX', new, kv[j], kv[j + 1]) end
      elseif kind == 'zset' then
        redis.call('ZUNIONSTORE', new, 2, new, old, 'AGGREGATE', 'MIN')
      elseif kind == 'set' then
        redis.call('SUNIONSTORE', new, new, old)
      end
      redis.call('DEL', old)
    end
  end
end
return moved
"""


def rename_untagged(client: Any) -> int:
    """Rename the memory keys a server holds under their names before the hash tag; returns
    how many were moved (0, after one EXISTS, once done).

    Nothing to do on a Redis Cluster: it never held the old names, whose script and
    transactions it refuses. The tenants set moves last, so a run stopped halfway is finished
    by the next one; each batch is one script (atomic), and concurrent runs do not conflict.
    """
    if isinstance(client, RedisCluster) or not client.exists(_OLD_TENANTS, _OLD_TOMBSTONES):
        return 0
    moved, batch = 0, []
    for raw in client.scan_iter(match=f"{_OLD_PREFIX}*", count=_BATCH):
        old = raw.decode() if isinstance(raw, bytes) else str(raw)
        if old.startswith(_PREFIX) or old in (_OLD_TENANTS, _OLD_TOMBSTONES):
            continue
        batch += [old, _PREFIX + old.removeprefix(_OLD_PREFIX)]
        if len(batch) >= 2 * _BATCH:
            moved += int(cast(int, client.eval(_RENAME, len(batch), *batch)))
            batch = []
    batch += [_OLD_TOMBSTONES, TOMBSTONES, _OLD_TENANTS, TENANTS]
    return moved + int(cast(int, client.eval(_RENAME, len(batch), *batch)))
