"""The Redis connection every service shares (one pool per process)."""

from __future__ import annotations

from typing import Any

import redis
from redis.connection import parse_url
from redis.sentinel import Sentinel

from nube import tls
from nube.redis_replicated import ReplicatedRedis, ReplicaWaitTimeout
from nube.settings import Settings

#: What a lost or refused Redis connection raises; callers map these to ``BrokerUnavailable``.
REDIS_ERRORS: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.ReadOnlyError,  # a primary demoted by a failover, until we notice
    ReplicaWaitTimeout,
)


def connect(settings: Settings) -> redis.Redis:
    """A client on the settings' Redis with short timeouts, so a dead Redis fails fast.

    On Sentinel (``NUBE_REDIS_SENTINELS``) it is the primary's client (:func:`sentinel_client`).
    ``NUBE_REDIS_WAIT_REPLICAS``: its writes wait for replicas (:mod:`nube.redis_replicated`).

    With a ``rediss://`` URL the server is verified (:mod:`nube.tls`), once here at start-up:
    a wrong CA or a server without TLS is a ``SettingsError``."""
    if tls.redis_tls(settings):
        for url in tls.redis_servers(settings):
            tls.check_server(settings, url, settings.publish_timeout)
    if settings.sentinel_addresses:
        return _with_wait(sentinel_client(settings), settings)
    client = _client_class(settings).from_url(
        settings.redis_dsn,
        decode_responses=True,
        socket_connect_timeout=settings.publish_timeout,
        socket_timeout=settings.publish_timeout + settings.max_wait_seconds,
        health_check_interval=30,
        **tls.redis_options(settings),
    )
    return _with_wait(client, settings)


def _client_class(settings: Settings) -> type[redis.Redis]:
    return ReplicatedRedis if settings.redis_wait_replicas else redis.Redis


def _with_wait(client: redis.Redis, settings: Settings) -> redis.Redis:
    if isinstance(client, ReplicatedRedis):
        client.wait_replicas = settings.redis_wait_replicas
        client.wait_timeout_ms = settings.redis_wait_timeout_ms
    return client


def sentinel_kwargs(settings: Settings) -> dict[str, Any]:
    """How to talk to the sentinels themselves (their password, short timeouts)."""
    options: dict[str, Any] = {
        "socket_connect_timeout": settings.publish_timeout,
        "socket_timeout": settings.publish_timeout,
    }
    if settings.redis_sentinel_password:
        options["password"] = settings.redis_sentinel_password
    if tls.redis_tls(settings):  # rediss://: the sentinels speak TLS too
        options |= {"ssl": True, **tls.redis_options(settings)}
    return options


def sentinel_client(settings: Settings) -> redis.Redis:
    """The client of the primary the sentinels name ``NUBE_REDIS_SENTINEL_MASTER``: each new
    connection asks them where the primary is, so after a failover the next command reaches
    the promoted replica (one that answers ``READONLY``, a demoted primary, is dropped)."""
    target = parse_url(settings.redis_dsn)  # the password, user and database number
    for key in ("host", "port", "connection_class", "path"):
        target.pop(key, None)
    sentinel = Sentinel(settings.sentinel_addresses, sentinel_kwargs=sentinel_kwargs(settings))
    return sentinel.master_for(
        settings.redis_sentinel_master,
        redis_class=_client_class(settings),
        decode_responses=True,
        socket_connect_timeout=settings.publish_timeout,
        socket_timeout=settings.publish_timeout + settings.max_wait_seconds,
        health_check_interval=30,
        **target,
        **({"ssl": True, **tls.redis_options(settings)} if tls.redis_tls(settings) else {}),
    )
