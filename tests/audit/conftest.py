"""Fixtures: a private redis-server (flushed after each test)."""

from tests.private_redis import r, redis_server, redis_url  # noqa: F401 - fixtures
