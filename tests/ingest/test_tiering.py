"""Hot → cold tiering on real stores: a Redis hot store tiered into an Iceberg table."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest
import redis
from pyiceberg.expressions import EqualTo
from pyiceberg.schema import Schema
from pyiceberg.types import StringType, TimestamptzType

from lakehouse import Lakehouse
from lakehouse.exceptions import AuraError
from lakehouse.ingest.tiering import HotStore, Key, RestorableHotStore, Tiering, keys_of
from lakehouse.table.registry import TableSpec, column, register

MEMORIES = register(
    TableSpec(
        name="tiering_test_memories",
        schema=Schema(
            column(1, "agent_id", StringType()),
            column(2, "memory_id", StringType()),
            column(3, "ts", TimestamptzType()),
            column(4, "text", StringType()),
        ),
        time_column="ts",
        key=("agent_id", "memory_id"),
        description="Agent memories tiered out of Redis (tiering tests)",
    )
)
DAY1 = date(2026, 11, 20)
DAY2 = date(2026, 11, 21)


class RedisMemories:
    """A hot store of memories in Redis: one hash per memory, a sorted set indexed by time."""

    def __init__(self, client: redis.Redis, prefix: str = "mem") -> None:
        self.r = client
        self.prefix = prefix
        self.index = f"{prefix}:index"

    def _key(self, agent_id: str, memory_id: str) -> str:
        return f"{self.prefix}:{agent_id}:{memory_id}"

    def put(self, agent_id: str, memory_id: str, ts: datetime, text: str) -> None:
        pipe = self.r.pipeline()
        pipe.hset(self._key(agent_id, memory_id), mapping={"ts": ts.isoformat(), "text": text})
        pipe.zadd(self.index, {f"{agent_id}|{memory_id}": ts.timestamp()})
        pipe.execute()

    def candidates(
        self, *, day: date | None = None, older_than: datetime | None = None
    ) -> pa.Table:
        low, high = float("-inf"), float("inf")
        if day is not None:
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            low, high = start.timestamp(), (start + timedelta(days=1)).timestamp()
        if older_than is not None:
            high = min(high, older_than.timestamp())
        members = self.r.zrangebyscore(self.index, low, f"({high}")
        rows = []
        for member in members:
            agent_id, memory_id = member.decode().split("|", 1)
            fields = self.r.hgetall(self._key(agent_id, memory_id))
            rows.append(
                {
                    "agent_id": agent_id,
                    "memory_id": memory_id,
                    "ts": datetime.fromisoformat(fields[b"ts"].decode()),
                    "text": fields[b"text"].decode(),
                }
            )
        return pa.Table.from_pylist(rows, schema=MEMORIES.arrow_schema)

    def delete(self, keys: Sequence[Key]) -> int:
        pipe = self.r.pipeline()
        for agent_id, memory_id in keys:
            pipe.delete(self._key(agent_id, memory_id))
            pipe.zrem(self.index, f"{agent_id}|{memory_id}")
        return sum(pipe.execute()[::2])

    def count(self) -> int:
        return int(self.r.zcard(self.index))

    def insert(self, rows: pa.Table) -> int:
        added = 0
        for row in rows.to_pylist():
            if not self.r.exists(self._key(row["agent_id"], row["memory_id"])):
                self.put(row["agent_id"], row["memory_id"], row["ts"], row["text"])
                added += 1
        return added


class _Crash(BaseException):
    """The process dying between the cold commit and the hot trim."""


class CrashBeforeTrim(RedisMemories):
    """The same Redis store, in a process that dies when it starts trimming."""

    def delete(self, keys: Sequence[Key]) -> int:
        raise _Crash


def _fill(hot: RedisMemories, n: int = 6) -> list[Key]:
    keys = []
    for i in range(n):
        day = DAY1 if i % 2 else DAY2
        ts = datetime(day.year, day.month, day.day, 8 + i, tzinfo=UTC)
        hot.put(f"agent-{i % 2}", f"m{i}", ts, f"memory {i}")
        keys.append((f"agent-{i % 2}", f"m{i}"))
    return keys


@pytest.fixture
def hot(redis_client: redis.Redis) -> RedisMemories:
    return RedisMemories(redis_client)


def _cold_keys(lakehouse: Lakehouse) -> set[Key]:
    return set(keys_of(lakehouse.read(MEMORIES.name), MEMORIES.key))


def test_stores_satisfy_the_protocols(hot: RedisMemories) -> None:
    assert isinstance(hot, HotStore) and isinstance(hot, RestorableHotStore)


def test_tier_copies_verifies_then_trims(hot: RedisMemories, lakehouse: Lakehouse) -> None:
    keys = _fill(hot)
    tiers = Tiering(lakehouse, MEMORIES.name, hot, asset="memory_tiering")
    result = tiers.tier(older_than=datetime(2026, 11, 22, tzinfo=UTC))
    assert result.candidates == 6 and result.added == 6
    assert sorted(m.day for m in result.merges) == [DAY1, DAY2]
    assert result.trim is not None and result.trim.trimmed == 6
    assert hot.count() == 0
    assert _cold_keys(lakehouse) == set(keys)
    # Day partitions hold their own rows, and lineage names the asset.
    assert lakehouse.read(MEMORIES.name, day=DAY1).num_rows == 3
    snap = lakehouse.table(MEMORIES.name).current_snapshot()
    assert snap is not None and snap.summary is not None
    assert "memory_tiering" in str(snap.summary.additional_properties)


def test_only_a_day_or_an_age_is_tiered(hot: RedisMemories, lakehouse: Lakehouse) -> None:
    _fill(hot)
    tiers = Tiering(lakehouse, MEMORIES.name, hot)
    assert tiers.tier(day=DAY1).added == 3
    assert hot.count() == 3
    assert tiers.tier(older_than=datetime(2026, 11, 21, 9, tzinfo=UTC)).added == 1
    assert hot.count() == 2
    with pytest.raises(AuraError, match="say which rows"):
        tiers.tier()


def test_trim_keeps_rows_the_cold_table_lacks(hot: RedisMemories, lakehouse: Lakehouse) -> None:
    keys = _fill(hot)
    tiers = Tiering(lakehouse, MEMORIES.name, hot)
    tiers.tier(day=DAY1, trim=False)  # DAY1 copied, DAY2 only hot
    assert hot.count() == 6
    # A cold row lost after the copy (say, an over-eager delete) is not trimmed either.
    lost = next(k for k in keys if k[1] == "m1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lakehouse.table(MEMORIES.name).delete(EqualTo("memory_id", lost[1]))
    result = tiers.trim(keys)
    assert (result.requested, result.trimmed, result.not_in_cold) == (6, 2, 4)
    remaining = set(_keys(hot.candidates(older_than=datetime(2027, 1, 1, tzinfo=UTC))))
    assert remaining == {k for k in keys if k[1] in ("m0", "m1", "m2", "m4")}


def _keys(rows: pa.Table) -> list[Key]:
    return keys_of(rows, MEMORIES.key)


def test_crash_between_commit_and_trim_loses_nothing(
    redis_client: redis.Redis, lakehouse: Lakehouse
) -> None:
    hot = RedisMemories(redis_client)
    keys = _fill(hot)
    crashing = CrashBeforeTrim(redis_client)
    with pytest.raises(_Crash):
        Tiering(lakehouse, MEMORIES.name, crashing).tier(day=DAY2)
    # Committed cold, nothing trimmed.
    assert hot.count() == 6
    assert _cold_keys(lakehouse) == {k for k in keys if k[1] in ("m0", "m2", "m4")}
    snapshots = len(lakehouse.table(MEMORIES.name).metadata.snapshots)

    # The re-run writes nothing again and finishes the trim.
    result = Tiering(lakehouse, MEMORIES.name, hot).tier(day=DAY2)
    assert result.added == 0 and result.trim is not None and result.trim.trimmed == 3
    assert len(lakehouse.table(MEMORIES.name).metadata.snapshots) == snapshots
    assert hot.count() == 3
    assert lakehouse.read(MEMORIES.name).num_rows == 3


def test_read_through_and_restore(hot: RedisMemories, lakehouse: Lakehouse) -> None:
    keys = _fill(hot)
    before = hot.candidates(older_than=datetime(2027, 1, 1, tzinfo=UTC)).sort_by("memory_id")
    tiers = Tiering(lakehouse, MEMORIES.name, hot)
    tiers.tier(older_than=datetime(2027, 1, 1, tzinfo=UTC))
    assert hot.count() == 0

    found = tiers.lookup([keys[0], keys[3], ("agent-9", "nope")])
    assert sorted(_keys(found)) == sorted([keys[0], keys[3]])
    assert tiers.read(EqualTo("agent_id", "agent-1")).num_rows == 3

    assert tiers.restore(EqualTo("agent_id", "agent-0")) == 3
    assert hot.count() == 3
    assert tiers.restore() == 3  # the rest; agent-0's rows are hot already
    after = hot.candidates(older_than=datetime(2027, 1, 1, tzinfo=UTC)).sort_by("memory_id")
    assert after.to_pylist() == before.to_pylist()


def test_tiering_needs_a_keyed_day_partitioned_table(
    hot: RedisMemories, lakehouse: Lakehouse
) -> None:
    spec: Any = TableSpec(
        name="tiering_test_unkeyed",
        schema=MEMORIES.schema,
        time_column="ts",
        key=(),
        description="no key",
    )
    register(spec)
    with pytest.raises(AuraError, match="has no key"):
        Tiering(lakehouse, spec.name, hot)
