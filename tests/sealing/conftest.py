"""Fixtures: a private redis-server (flushed after each test), a keyring."""

from tests.private_redis import r, redis_server, redis_url, ring  # noqa: F401 - fixtures
