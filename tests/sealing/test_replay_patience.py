"""The replay guard's nonce claim waits a moment for an unreachable Redis (a worker's node cut off
briefly) instead of failing the message's decode at once, which would cost the message: a real
redis-server stopped, then started again on the same port."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from nube.sealing import replay
from nube.sealing.replay import NonceState, RedisNonceStore
from nube.tools.devstack import Stack
from tests.conftest import need


@pytest.fixture
def private_redis(tmp_path: Path) -> Stack:
    need(shutil.which("redis-server") is not None, "redis-server")
    stack = Stack(workdir=tmp_path / "redis")
    stack.start_redis()
    return stack


def test_a_claim_waits_for_redis_to_come_back(private_redis: Stack) -> None:
    store = RedisNonceStore(private_redis.redis())
    private_redis.stop("redis")
    back = threading.Timer(2.0, private_redis.start_redis)
    started = time.monotonic()
    back.start()
    try:
        assert store.claim("n1", 60) is None  # new, once Redis is back
        took = time.monotonic() - started
        assert store.claim("n1", 60) is NonceState.OPEN
        assert 1.5 < took < replay.CLAIM_PATIENCE_S, took
    finally:
        back.join()
        private_redis.stop_all()


def test_a_claim_gives_up_after_its_patience(
    private_redis: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(replay, "CLAIM_PATIENCE_S", 2.0)
    store = RedisNonceStore(private_redis.redis())
    private_redis.stop("redis")
    started = time.monotonic()
    with pytest.raises(Exception, match="onnect"):
        store.claim("n2", 60)
    assert 2.0 <= time.monotonic() - started < 6
