"""The pieces of Sentinel support, each on real processes: the settings, Celery's sentinel
configuration, and writes that wait for a replica (``NUBE_REDIS_WAIT_REPLICAS``) on a private
primary and replica (two ``redis-server`` processes on loopback, stopped afterwards)."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from nube.broker import make_celery, sentinel_urls
from nube.redis_client import REDIS_ERRORS, connect
from nube.redis_replicated import ReplicatedRedis, ReplicaWaitTimeout
from nube.redis_transport import SentinelQoS
from nube.settings import SettingsError, load_settings
from nube.tools.devstack import free_port
from tests.conftest import need


def test_sentinel_settings_are_parsed_and_checked() -> None:
    s = load_settings(
        {
            "NUBE_REDIS_SENTINELS": "10.0.0.5:26379, 10.0.0.6:26380",
            "NUBE_REDIS_URL": "redis://ignored:6379/3",
            "NUBE_REDIS_PASSWORD": "pw",
        }
    )
    assert s.sentinel_addresses == [("10.0.0.5", 26379), ("10.0.0.6", 26380)]
    assert s.redis_db == 3 and s.redis_sentinel_master == "nube"
    assert sentinel_urls(s) == "sentinel://:pw@10.0.0.5:26379/3;sentinel://:pw@10.0.0.6:26380/3"
    assert load_settings({}).sentinel_addresses == []
    for bad in ("10.0.0.5", "10.0.0.5:x", ":26379", "a:1,b"):
        with pytest.raises(SettingsError, match="NUBE_REDIS_SENTINELS"):
            load_settings({"NUBE_REDIS_SENTINELS": bad})


def test_celery_on_sentinel_uses_the_sentinel_transport_and_backend() -> None:
    s = load_settings(
        {
            "NUBE_REDIS_SENTINELS": "127.0.0.1:1,127.0.0.2:1",
            "NUBE_REDIS_SENTINEL_PASSWORD": "spw",
            "NUBE_REDIS_SENTINEL_MASTER": "main",
        }
    )
    app = make_celery(s, "t")
    assert app.conf.broker_url.startswith("sentinel://127.0.0.1:1/0;sentinel://127.0.0.2:1/0")
    assert app.conf.broker_transport == "nube.redis_transport:SentinelTransport"
    options = app.conf.broker_transport_options
    assert options["master_name"] == "main" and options["sentinel_kwargs"]["password"] == "spw"
    assert type(app.backend).__name__ == "SentinelBackend"
    channel_cls = app.connection_for_write().transport.Channel
    assert channel_cls.QoS is SentinelQoS
    plain = make_celery(load_settings({}), "t")
    assert plain.conf.broker_transport == "nube.redis_transport:Transport"


def _redis(port: int, workdir: Path, *extra: str) -> subprocess.Popen[bytes]:
    """A redis-server whose files (a replica's synced RDB) stay in ``workdir``."""
    workdir.mkdir()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    return subprocess.Popen([*argv, "--dir", str(workdir), *extra], stdout=subprocess.DEVNULL)


@pytest.fixture
def primary_and_replica(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """A primary and one replica in sync; yields the primary's port and the replica process."""
    need(shutil.which("redis-server") is not None, "redis-server")
    primary_port, replica_port = free_port(), free_port()
    procs = [_redis(primary_port, tmp_path / "primary")]
    replica_of = ("--replicaof", "127.0.0.1", str(primary_port))
    procs.append(_redis(replica_port, tmp_path / "replica", *replica_of))
    try:
        replica = redis.Redis(port=replica_port, decode_responses=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if replica.info("replication").get("master_link_status") == "up":
                    break
            except redis.ConnectionError:
                pass
            time.sleep(0.1)
        else:
            pytest.fail("the replica did not sync")
        yield primary_port, procs[1]
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(10)


def test_writes_wait_for_a_replica_and_fail_without_one(
    primary_and_replica: tuple[int, subprocess.Popen[bytes]],
) -> None:
    port, replica = primary_and_replica
    env = {"NUBE_REDIS_URL": f"redis://127.0.0.1:{port}/0", "NUBE_REDIS_WAIT_TIMEOUT_MS": "300"}
    assert type(connect(load_settings(env))) is redis.Redis  # no wait: the plain client
    client = connect(load_settings({**env, "NUBE_REDIS_WAIT_REPLICAS": "1"}))
    assert isinstance(client, ReplicatedRedis) and client.wait_replicas == 1
    primary = redis.Redis(port=port, decode_responses=True)
    waits = _waits(primary)
    client.set("k", "v")
    pipe = client.pipeline()
    pipe.set("a", 1)
    pipe.incr("b")
    assert pipe.execute() == [True, 1]
    assert client.register_script("return redis.call('INCR', KEYS[1])")(keys=["c"]) == 1
    reads = client.pipeline()
    reads.get("a")
    assert client.get("k") == "v" and reads.execute() == ["1"]
    assert _waits(primary) - waits == 3, "one WAIT per write (set, pipeline, script), none on reads"

    replica.kill()
    replica.wait(10)
    started = time.monotonic()
    with pytest.raises(ReplicaWaitTimeout):
        client.set("k", "lost?")
    assert 0.25 < time.monotonic() - started < 5
    pipe.set("a", 2)
    with pytest.raises(ReplicaWaitTimeout):
        pipe.execute()
    assert issubclass(ReplicaWaitTimeout, REDIS_ERRORS)  # callers answer 503, as Redis down
    assert client.get("k") == "lost?", "on the primary alone, as after a lost reply"


def _waits(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return int(stats.get("cmdstat_wait", {}).get("calls", 0))
