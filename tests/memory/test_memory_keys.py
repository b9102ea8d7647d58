"""Memory keys: one hash slot for the whole memory domain (Redis Cluster), the names written
before the hash tag renamed when a store opens on one Redis server, and a cluster outage."""

from __future__ import annotations

import os
import random
import socket
import subprocess
from pathlib import Path

import pytest
import redis
from helpers import REDIS_CLUSTER, ROOT, needs_redis_cluster

from lakehouse import Settings
from lakehouse.memory import MemoryStore, keys, tombstones
from lakehouse.memory.events import STREAM
from lakehouse.routing.events import STREAM as ROUTING_STREAM
from lakehouse.topology.events import STREAM as WORKFLOW_STREAM

TAGGED = "aura:mem:{aura:events:memory}:"


def _text(key: bytes) -> str:
    return key.decode()


@pytest.mark.skipif(
    bool(REDIS_CLUSTER),
    reason="a Redis Cluster never held the untagged names: their script is cross-slot there",
)
def test_keys_written_before_the_hash_tag_are_renamed_when_a_store_opens(
    settings: Settings, redis_client: redis.Redis
) -> None:
    with MemoryStore(settings, redis_client=redis_client) as mem:
        kept = mem.store("acme", "kept across the rename")
        erased = mem.store("acme", "erased before the rename")
        mem.forget("acme", erased)
        other = mem.store("beta", "a memory of beta")
    # Back to the names an older AURA wrote: no hash tag.
    for key in list(redis_client.scan_iter(match=f"{TAGGED}*")):
        redis_client.rename(key, "aura:mem:" + _text(key).removeprefix(TAGGED))
    assert redis_client.exists("aura:mem:tenants", "aura:mem:tombstones") == 2
    # A process already on the new names wrote a tombstone meanwhile: the two hashes merge.
    tombstones.bury(redis_client, "beta", "0b7f6a4e-5f38-4d3c-9d3a-2f1f1f1f1f1f", 1)

    with MemoryStore(settings, redis_client=redis_client) as mem:
        found = mem.get("acme", kept)
        assert found is not None and found.content == "kept across the rename"
        assert mem.get("beta", other) is not None
        assert mem.get("acme", erased) is None
        assert mem.hot.tenants() == ["acme", "beta"]
        assert tombstones.recorded(redis_client, "acme", erased)
        assert tombstones.recorded(redis_client, "beta", "0b7f6a4e-5f38-4d3c-9d3a-2f1f1f1f1f1f")
    left = [
        k for k in redis_client.scan_iter(match="aura:mem:*") if not _text(k).startswith(TAGGED)
    ]
    assert left == []
    assert keys.rename_untagged(redis_client) == 0


@needs_redis_cluster
def test_every_memory_key_is_in_the_stream_slot_where_untagged_names_are_refused(
    mem: MemoryStore,
) -> None:
    client = mem.redis
    ids = {t: mem.store(t, f"a note of {t}") for t in ("acme", "beta", "gamma", "delta")}
    mem.forget("beta", ids["beta"])  # the stream rebuild: a script on the stream and a scratch key
    slot = client.keyslot(STREAM)
    names = [_text(k) for k in client.scan_iter(match="aura:*")]
    assert {n for n in names if n.startswith(TAGGED + "acme:")}  # the scan reached the keys
    assert {client.keyslot(n) for n in names if n.startswith("aura:mem:")} == {slot}
    assert client.keyslot(tombstones.TOMBSTONES) == slot
    # The same script on the names before the tag spans slots: the cluster refuses it.
    node = client.get_node_from_key(STREAM).redis_connection
    script = "redis.call('XADD', KEYS[1], '*', 'data', 'x'); redis.call('SADD', KEYS[2], 'acme')"
    with pytest.raises(redis.ResponseError, match="hash to the same slot"):  # CROSSSLOT
        node.eval(script, 2, STREAM, "aura:mem:tenants")
    assert mem.get("acme", ids["acme"]) is not None and mem.get("beta", ids["beta"]) is None


@needs_redis_cluster
def test_the_three_domain_streams_are_served_by_three_masters(
    mem: MemoryStore, redis_client: redis.RedisCluster
) -> None:
    masters = redis_client.get_primaries()
    if len(masters) != 3:
        pytest.skip(
            f"the spread is that of .ci/redis-cluster.sh's 3 masters; this has {len(masters)}"
        )
    mem.store("acme", "a memory")
    for stream in (ROUTING_STREAM, WORKFLOW_STREAM):
        redis_client.xadd(stream, {"data": "{}"})
    holders = {
        s: redis_client.get_node_from_key(s).name for s in (STREAM, ROUTING_STREAM, WORKFLOW_STREAM)
    }
    assert len(set(holders.values())) == 3
    sizes = {n.name: n.redis_connection.dbsize() for n in masters}
    memory_keys = len(list(redis_client.scan_iter(match="aura:mem:*")))
    assert memory_keys >= 3  # the memory, its index, the tenants set
    assert sizes[holders[STREAM]] == memory_keys + 1  # and the stream, all on one master
    assert sizes[holders[ROUTING_STREAM]] == sizes[holders[WORKFLOW_STREAM]] == 1


def _free_base_port() -> int:
    """A port P with P, P+1, P+2 and their cluster bus ports (+10000) all free."""
    for _ in range(50):
        base = random.randrange(21000, 29000)
        try:
            for port in (base, base + 1, base + 2, base + 10000, base + 10001, base + 10002):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no free range of ports for a second Redis Cluster")


@needs_redis_cluster
def test_a_cluster_that_goes_down_sends_stores_to_the_spool_and_they_replay(
    settings: Settings, tmp_path: Path
) -> None:
    env = {**os.environ, "AURA_RCLUSTER_PORT": str(_free_base_port())}
    env["AURA_RCLUSTER_DIR"] = str(tmp_path / "cluster")
    script = [str(ROOT / ".ci" / "redis-cluster.sh")]
    url = subprocess.run([*script, "start"], env=env, check=True, capture_output=True, text=True)
    try:
        with MemoryStore(settings.with_overrides(redis_url=url.stdout.strip())) as mem:
            subprocess.run([*script, "stop"], env=env, check=True)
            during = mem.store("acme", "stored while every node is down")
            assert mem.spool.count() == 1
            assert mem.get("acme", during) is not None  # read from the spool
            subprocess.run([*script, "start"], env=env, check=True, capture_output=True)
            after = mem.store("acme", "stored once the cluster is back")
            assert mem.spool.count() == 0
            assert set(mem.hot.ids("acme")) == {during, after}
    finally:
        subprocess.run([*script, "stop"], env=env, check=True)
