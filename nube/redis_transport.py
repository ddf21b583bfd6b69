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

import logging
import time
from typing import Any

import redis
from kombu.transport import redis as kombu_redis
from kombu.utils.objects import cached_property

log = logging.getLogger(__name__)


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


#: How long a sentinel channel that closed on a lost connection keeps trying to put its
#: unacknowledged deliveries back (the time a failover takes, with margin).
RESTORE_SECONDS = 20.0


class SentinelQoS(kombu_redis.QoS):
    """kombu's QoS, whose restore of a closing channel's unacknowledged deliveries outlasts a
    failover.

    When the primary dies, Celery closes the channel, and kombu puts what the channel was
    delivered but had not acknowledged back on its queues, once, at once: the primary is gone
    and the sentinels do not name a new one yet, so the restore failed and the deliveries stayed
    in the ``unacked`` hash that the replica promoted had copied, for the visibility timeout,
    held (as Celery's state still says) by a thread-pool task Celery could not cancel. Retrying
    until the sentinels name the new primary puts them back on their queues there (a delivery
    whose task still ends is then delivered twice: the job record makes the second a no-op)."""

    def restore_unacked(self, client: Any = None) -> Any:
        deadline = time.monotonic() + RESTORE_SECONDS
        while True:
            try:
                return super().restore_unacked(client)
            except redis.RedisError as e:
                if time.monotonic() > deadline:
                    raise
                log.warning("restoring unacknowledged deliveries: %s; again in 0.5 s", e)
                time.sleep(0.5)


class SentinelChannel(Channel, kombu_redis.SentinelChannel):
    """The same on Redis Sentinel: kombu's sentinel channel (its pool asks the sentinels for
    the primary on each new connection) with one synchronous client, and :class:`SentinelQoS`."""

    QoS = SentinelQoS


class SentinelTransport(kombu_redis.SentinelTransport):
    Channel = SentinelChannel


SENTINEL_TRANSPORT = f"{__name__}:SentinelTransport"
