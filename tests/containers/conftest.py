"""Fixtures for what only a real Docker engine shows, shared with the contract suite.

``ctx``, ``make_ctx`` and ``name`` are :mod:`tests.drivers.conftest`'s; ``driver`` is its
Docker driver (with ``busybox:latest``): without a reachable engine the tests skip locally and
FAIL when ``CI`` is set. Everything a test makes carries the ``nube.tenant`` label of a tenant
unique to this run; teardown removes by that label.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.drivers.conftest import ctx as ctx
from tests.drivers.conftest import docker_driver
from tests.drivers.conftest import make_ctx as make_ctx
from tests.drivers.conftest import name as name
from workers.drivers.docker import DockerDriver


@pytest.fixture
def driver() -> Iterator[DockerDriver]:
    """The Docker driver under test."""
    with docker_driver() as drv:
        yield drv
