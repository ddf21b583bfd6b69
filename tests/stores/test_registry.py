"""The service registry on a real Redis: live services without walking the key space."""

from __future__ import annotations

import time

import redis

from nube.registry import NAMES, PREFIX, Registry, ServiceInstance
from nube.tools.devstack import Stack


def instance(name: str) -> ServiceInstance:
    return ServiceInstance(
        name=name, kind="vms", node="n1", queues=["vms", "vms.n1"], started_at=time.time()
    )


def test_live_services_come_and_go(redis_only: Stack) -> None:
    client = redis_only.redis()
    client.flushdb()
    registry = Registry(client)
    for name in ("w1", "w2", "w3"):
        registry.announce(instance(name))
    registry.withdraw("w2")
    client.pexpire(PREFIX + "w3", 1)  # w3 stopped heartbeating: its key expires
    time.sleep(0.05)
    assert [i.name for i in registry.live()] == ["w1"]
    assert client.smembers(NAMES) == {"w1"}  # expired and withdrawn names are forgotten
    assert registry.served_queues() == {"vms", "vms.n1"}
    registry.announce(instance("w3"))  # heartbeating again
    assert sorted(i.name for i in registry.live()) == ["w1", "w3"]


def test_reading_live_services_does_not_scan_the_key_space(redis_only: Stack) -> None:
    client = redis_only.redis()
    client.flushdb()
    pipe = client.pipeline(transaction=False)
    for i in range(5000):  # job records and the like
        pipe.set(f"nube:job:{i}", "x")
    pipe.execute()
    registry = Registry(client)
    registry.announce(instance("w1"))
    before = _calls(client)
    assert [i.name for i in registry.live()] == ["w1"]
    after = _calls(client)
    used = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    assert used == {"smembers": 1, "mget": 1, "info": 1}  # (info: the first _calls)


def _calls(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}


def test_served_queues_may_be_a_second_old_when_asked(redis_only: Stack) -> None:
    client = redis_only.redis()
    client.flushdb()
    registry = Registry(client)
    registry.announce(instance("w1"))
    assert registry.served_queues(max_age=1.0) == {"vms", "vms.n1"}
    registry.withdraw("w1")
    assert registry.served_queues(max_age=1.0) == {"vms", "vms.n1"}  # the cached answer
    assert registry.served_queues() == set()  # without max_age: read now
    time.sleep(1.1)
    registry.announce(instance("w1"))
    registry.withdraw("w1")
    assert registry.served_queues(max_age=1.0) == set()  # older than a second: read again
