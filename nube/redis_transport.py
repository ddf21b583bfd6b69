"""kombu's Redis transport with one client object per channel instead of one per command.

kombu's Redis ``Channel`` makes a new ``redis.Redis`` for every publish, fanout (each Celery
event), ack and queue-length call (``conn_or_acquire`` → ``_create_client``). redis-py's client
constructor builds its response-callback table each time, which costs a few hundred
microseconds of CPU: more than the command's round trip, several times per job in every
process. The client holds no state of its own between commands (connections come from the
channel's pool, which is fork-safe), so one per channel serves every such call.

Selected for ``redis://`` and ``rediss://`` broker URLs, and :data:`SENTINEL_TRANSPORT` on Redis
Sentinel, by :func:`nube.broker.make_celery`.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.utils.objects import cached_property


class Channel(kombu_redis.Channel):
    """A Redis channel that reuses one synchronous client."""

    @cached_property
    def _shared_client(self) -> Any:
        return super()._create_client(asynchronous=False)

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous=True)
        return self._shared_client


class Transport(kombu_redis.Transport):
    Channel = Channel


TRANSPORT = f"{__name__}:Transport"


class SentinelChannel(Channel, kombu_redis.SentinelChannel):
    """The same on Redis Sentinel: kombu's sentinel channel (its pool asks the sentinels for
    the primary on each new connection) with one synchronous client."""


class SentinelTransport(kombu_redis.SentinelTransport):
    Channel = SentinelChannel


SENTINEL_TRANSPORT = f"{__name__}:SentinelTransport"
