"""The Redis connection every service shares (one pool per process)."""

from __future__ import annotations

import redis

from nube import tls
from nube.settings import Settings

#: What a lost or refused Redis connection raises; callers map these to ``BrokerUnavailable``.
REDIS_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
)


def connect(settings: Settings) -> redis.Redis:
    """A client on the settings' Redis with short timeouts, so a dead Redis fails fast.

    With a ``rediss://`` URL the server is verified (:mod:`nube.tls`), once here at start-up:
    a wrong CA or a server without TLS is a ``SettingsError``."""
    if tls.redis_tls(settings):
        tls.check_server(settings, settings.redis_url, settings.publish_timeout)
    return redis.Redis.from_url(
        settings.redis_dsn,
        decode_responses=True,
        socket_connect_timeout=settings.publish_timeout,
        socket_timeout=settings.publish_timeout + settings.max_wait_seconds,
        health_check_interval=30,
        **tls.redis_options(settings),
    )
