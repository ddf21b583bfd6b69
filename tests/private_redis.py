"""Fixtures of the sealing and audit tests: a private redis-server on a free port, a keyring.

Their ``conftest.py`` files import these, so each folder's tests find them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import NoReturn

import pytest
import redis

from nube.sealing.keyring import Keyring, generate_key


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _need(what: str) -> NoReturn:
    """Skip locally, fail loudly on CI (dramatiq's tests/conftest.py)."""
    if os.environ.get("CI"):
        raise RuntimeError(f"{what} is required on CI")
    pytest.skip(f"{what} not available")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """A private redis-server for the session; yields its URL."""
    exe = shutil.which("redis-server")
    if not exe:
        _need("redis-server")
    port = _free_port()
    proc = subprocess.Popen(
        [
            exe,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    else:
        proc.kill()
        raise RuntimeError("redis-server did not start")
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def redis_url(redis_server: str) -> Iterator[str]:
    """The session Redis, flushed after each test."""
    yield redis_server
    redis.Redis.from_url(redis_server).flushall()


@pytest.fixture
def r(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


@pytest.fixture
def ring() -> Keyring:
    return Keyring([generate_key("k2"), generate_key("k1")])
