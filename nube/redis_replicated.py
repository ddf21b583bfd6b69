"""A Redis client whose writes count as done only once replicas hold them (``WAIT``).

Redis replicates asynchronously: a primary killed right after it answered a write may take the
write with it, and a replica promoted by Sentinel will not have it. With
``NUBE_REDIS_WAIT_REPLICAS=N`` every write command (and every pipeline holding one) of the job
store's client is followed, on the same connection, by ``WAIT N <NUBE_REDIS_WAIT_TIMEOUT_MS>``:
the caller gets the reply once N replicas have acknowledged everything that connection wrote,
so a write nube acted on (a job it accepted, a transition, an idempotency key, an audit record)
is on a replica that Sentinel can promote (it promotes the replica with the most data).

Fewer than N replicas in time raises :class:`ReplicaWaitTimeout`, which callers handle as Redis
unavailable (:data:`nube.redis_client.REDIS_ERRORS`): as with a reply lost on a dropped
connection, the write may be on the primary alone.

A read is a command in :data:`READS`; anything else counts as a write (a ``WAIT`` after a
command that wrote nothing returns at once: the replicas already hold that connection's writes).
"""

from __future__ import annotations

from typing import Any

import redis
from redis.client import Pipeline

#: Commands that never write (no ``WAIT`` after them). Scripts (``EVALSHA``) count as writes.
READS = frozenset(
    """GET MGET STRLEN GETRANGE EXISTS TYPE TTL PTTL EXPIRETIME PEXPIRETIME KEYS SCAN RANDOMKEY
    DBSIZE HGET HMGET HGETALL HKEYS HVALS HLEN HEXISTS HSCAN HSTRLEN LRANGE LLEN LINDEX LPOS
    SMEMBERS SISMEMBER SMISMEMBER SCARD SSCAN SRANDMEMBER SINTER SUNION SDIFF ZRANGE
    ZRANGEBYSCORE ZREVRANGE ZREVRANGEBYSCORE ZRANGEBYLEX ZCARD ZCOUNT ZSCORE ZMSCORE ZRANK
    ZREVRANK ZSCAN XRANGE XREVRANGE XLEN XREAD XINFO XPENDING EVALSHA_RO EVAL_RO FCALL_RO PING
    ECHO INFO TIME WAIT CLIENT HELLO AUTH SELECT SCRIPT COMMAND CONFIG MEMORY OBJECT ROLE
    PUBLISH SUBSCRIBE PSUBSCRIBE UNSUBSCRIBE PUNSUBSCRIBE WATCH UNWATCH""".split()  # noqa: SIM905
)


class ReplicaWaitTimeout(redis.exceptions.RedisError):
    """Fewer replicas than ``NUBE_REDIS_WAIT_REPLICAS`` acknowledged a write in time."""


def is_write(command_name: str) -> bool:
    return command_name.split(" ", 1)[0].upper() not in READS


def wait_for_replicas(client: redis.Redis, connection: Any, replicas: int, timeout_ms: int) -> None:
    """``WAIT`` on ``connection`` (where the writes went) for ``replicas`` acknowledgements."""
    connection.send_command("WAIT", replicas, timeout_ms)
    acked = int(client.parse_response(connection, "WAIT"))
    if acked < replicas:
        raise ReplicaWaitTimeout(
            f"{acked} of {replicas} replicas acknowledged a write within {timeout_ms} ms"
        )


class ReplicatedRedis(redis.Redis):
    """``redis.Redis`` that waits for :attr:`wait_replicas` replicas after each write."""

    wait_replicas = 0
    wait_timeout_ms = 1000

    def _send_command_parse_response(
        self, conn: Any, command_name: str, *args: Any, **options: Any
    ) -> Any:
        reply = super()._send_command_parse_response(conn, command_name, *args, **options)
        if self.wait_replicas and is_write(command_name):
            wait_for_replicas(self, conn, self.wait_replicas, self.wait_timeout_ms)
        return reply

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> ReplicatedPipeline:
        pipe = ReplicatedPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )
        pipe.wait_replicas, pipe.wait_timeout_ms = self.wait_replicas, self.wait_timeout_ms
        return pipe


class ReplicatedPipeline(Pipeline):
    """A pipeline (or ``MULTI``/``EXEC``) followed by one ``WAIT`` when it wrote anything."""

    wait_replicas = 0
    wait_timeout_ms = 1000

    def _execute_transaction(self, connection: Any, commands: Any, raise_on_error: Any) -> Any:
        replies = super()._execute_transaction(connection, commands, raise_on_error)
        self._wait_if_wrote(connection, commands)
        return replies

    def _execute_pipeline(self, connection: Any, commands: Any, raise_on_error: Any) -> Any:
        replies = super()._execute_pipeline(connection, commands, raise_on_error)
        self._wait_if_wrote(connection, commands)
        return replies

    def _wait_if_wrote(self, connection: Any, commands: Any) -> None:
        if self.wait_replicas and any(is_write(str(args[0])) for args, _ in commands):
            wait_for_replicas(self, connection, self.wait_replicas, self.wait_timeout_ms)
