"""A Redis that survives its host, on one machine: a primary, two replicas and three sentinels.

:class:`SentinelStack` is a :class:`~nube.tools.devstack.Stack` whose Redis is a group of three
``redis-server`` nodes and three ``redis-sentinel`` processes, each node and each sentinel on its
own loopback address (``127.0.0.11``-``13``, as three hosts would be, all on the same ports),
with AOF on, passwords on the nodes and on the sentinels, and ``replica-announce-ip`` /
``sentinel announce-ip`` so every address the group hands out is the one a client can reach.
nube's services get ``NUBE_REDIS_SENTINELS`` (and ``NUBE_REDIS_WAIT_REPLICAS=1``): they find the
primary through the sentinels, never by address.

What is simulated: hosts (distinct addresses; a process killed is a host gone). The nodes share
the machine's kernel, disk and clock, and a cut link is not part of it (the mesh harness,
:mod:`nube.tools.mesh`, does links).
"""

from __future__ import annotations

import contextlib
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any, cast

from redis import Redis
from redis.sentinel import Sentinel

from nube.tools.devstack import Stack, _redis_quote, _wait_until, _write_private, free_port

#: One address per simulated host: node ``i`` and sentinel ``i`` listen on ``ADDRESSES[i]``.
ADDRESSES = ("127.0.0.11", "127.0.0.12", "127.0.0.13")
MASTER = "nube"


@dataclass
class SentinelStack(Stack):
    """A stack on a Sentinel-managed Redis group (node ``r1`` starts as the primary)."""

    sentinel_port: int = field(default_factory=free_port)
    sentinel_password: str = field(default_factory=lambda: secrets.token_hex(16))
    down_after_ms: int = 1000
    wait_replicas: int = 1

    # --- what the services are told -----------------------------------------------------------
    @property
    def redis_url(self) -> str:
        return f"redis://{ADDRESSES[0]}:{self.redis_port}/0"  # only its database number is used

    @property
    def sentinels(self) -> list[tuple[str, int]]:
        return [(address, self.sentinel_port) for address in ADDRESSES]

    def env(self, **extra: str) -> dict[str, str]:
        own = {
            "NUBE_REDIS_SENTINELS": ",".join(f"{h}:{p}" for h, p in self.sentinels),
            "NUBE_REDIS_SENTINEL_MASTER": MASTER,
            "NUBE_REDIS_SENTINEL_PASSWORD": self.sentinel_password,
            "NUBE_REDIS_WAIT_REPLICAS": str(self.wait_replicas),
        }
        return super().env(**own, **extra)

    def redis(self) -> Redis:
        """A client of whichever node is the primary now."""
        return self.sentinel().master_for(
            MASTER, password=self.redis_password, decode_responses=True, socket_timeout=5
        )

    def sentinel(self) -> Sentinel:
        return Sentinel(
            self.sentinels,
            sentinel_kwargs={"password": self.sentinel_password, "socket_timeout": 2},
        )

    def node(self, index: int) -> Redis:
        return Redis(
            host=ADDRESSES[index],
            port=self.redis_port,
            password=self.redis_password,
            decode_responses=True,
            socket_timeout=2,
        )

    # --- the group ----------------------------------------------------------------------------
    def node_config(self, index: int) -> str:
        address = ADDRESSES[index]
        options = [
            ("port", str(self.redis_port)),
            ("bind", address),
            ("dir", str(self.workdir / f"r{index + 1}")),
            ("save", ""),
            ("appendonly", "yes"),
            ("appendfsync", "everysec"),
            ("maxmemory-policy", "noeviction"),
            ("requirepass", self.redis_password),
            ("masterauth", self.redis_password),
            ("replica-announce-ip", address),
        ]
        lines = [f"{name} {_redis_quote(value)}" for name, value in options]
        if index:
            lines.append(f"replicaof {ADDRESSES[0]} {self.redis_port}")
        return "\n".join(lines)

    def sentinel_config(self, index: int) -> str:
        address, pw = ADDRESSES[index], self.redis_password
        return "\n".join(
            [
                f"port {self.sentinel_port}",
                f"bind {address}",
                f"dir {_redis_quote(str(self.workdir / f's{index + 1}'))}",
                f"sentinel announce-ip {address}",
                f"requirepass {_redis_quote(self.sentinel_password)}",
                f"sentinel sentinel-pass {_redis_quote(self.sentinel_password)}",
                f"sentinel monitor {MASTER} {ADDRESSES[0]} {self.redis_port} 2",
                f"sentinel auth-pass {MASTER} {_redis_quote(pw)}",
                f"sentinel down-after-milliseconds {MASTER} {self.down_after_ms}",
                f"sentinel failover-timeout {MASTER} 10000",
                f"sentinel parallel-syncs {MASTER} 1",
                "",
            ]
        )

    def start_redis(self) -> None:
        """The three nodes (``redis-r1`` primary), then the three sentinels; until every
        sentinel sees the primary, both replicas and the two other sentinels."""
        for i in range(len(ADDRESSES)):
            (self.workdir / f"r{i + 1}").mkdir(parents=True, exist_ok=True)
            config = self.workdir / f"r{i + 1}" / "redis.conf"
            _write_private(config, self.node_config(i) + "\n")
            self.spawn(f"redis-r{i + 1}", ["redis-server", str(config)])
        for i in range(len(ADDRESSES)):
            _wait_until(self.node(i).ping, 20, f"redis node r{i + 1}")
        _wait_until(lambda: self.in_sync(self.node(0), 2), 30, "both replicas in sync")
        for i in range(len(ADDRESSES)):
            (self.workdir / f"s{i + 1}").mkdir(parents=True, exist_ok=True)
            config = self.workdir / f"s{i + 1}" / "sentinel.conf"
            _write_private(config, self.sentinel_config(i))
            self.spawn(f"sentinel-{i + 1}", ["redis-sentinel", str(config)])
        _wait_until(self.sentinels_agree, 60, "the sentinels to see the whole group")

    @staticmethod
    def in_sync(primary: Redis, replicas: int) -> bool:
        """Whether ``primary`` has ``replicas`` replicas online."""
        info = primary.info("replication")
        return int(info.get("connected_slaves", 0)) >= replicas and all(
            info.get(f"slave{i}", {}).get("state") == "online" for i in range(replicas)
        )

    def sentinels_agree(self) -> bool:
        primary = self.primary()
        for host, port in self.sentinels:
            s = Redis(host=host, port=port, password=self.sentinel_password, socket_timeout=2)
            master = cast(dict[str, Any], s.sentinel_master(MASTER))
            if (master["ip"], int(master["port"])) != primary:
                return False
            if master["num-slaves"] < 2 or master["num-other-sentinels"] < 2:
                return False
        return True

    def primary(self) -> tuple[str, int]:
        """The primary's address, as the sentinels give it."""
        address, port = self.sentinel().discover_master(MASTER)
        return str(address), int(port)

    def primary_name(self) -> str:
        return f"redis-r{ADDRESSES.index(self.primary()[0]) + 1}"

    def kill_primary(self) -> str:
        """SIGKILL the primary's ``redis-server`` (its host gone); returns its address."""
        address, _ = self.primary()
        self.stop(f"redis-r{ADDRESSES.index(address) + 1}", signal.SIGKILL)
        return address

    def wait_promoted(self, old: str, timeout: float = 30) -> tuple[str, float]:
        """Until the sentinels name a primary other than ``old`` and it answers as one;
        returns its address and the seconds waited."""
        start = time.monotonic()

        def promoted() -> bool:
            address, port = self.primary()
            if address == old:
                return False
            node = Redis(host=address, port=port, password=self.redis_password, socket_timeout=1)
            return node.role()[0] in (b"master", "master")

        _wait_until(promoted, timeout, "a replica's promotion")
        return self.primary()[0], time.monotonic() - start

    def services(self) -> dict[str, subprocess.Popen[bytes]]:
        """nube's processes (not the Redis group)."""
        return {n: p for n, p in self.procs.items() if not n.startswith(("redis-", "sentinel-"))}

    def stop_all(self) -> None:
        """The services first (they still reach Redis as they stop), then sentinels, nodes."""
        for name in list(self.services()):
            self.stop(name)
        for prefix in ("sentinel-", "redis-"):
            for name in [n for n in self.procs if n.startswith(prefix)]:
                with contextlib.suppress(subprocess.SubprocessError):
                    self.stop(name)
