"""A second libvirt host (:mod:`nube.tools.libvirt_host`) for the migration tests, and a
directory pool both hosts define at the same path (their shared storage).

The second host, ``nbl-mig`` on 10.219.0.6, lives for the session and is removed afterwards with
everything it made; the test domains and pools are removed from both hosts by the run's prefix.
Without root, ``ip``, ``unshare`` or libvirtd the tests skip locally and fail on CI.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest

from nube.catalog import vm_models as m
from nube.tools.libvirt_host import LibvirtHost
from tests.conftest import libvirt_available, need
from tests.drivers.backends import clean_libvirt
from tests.drivers.conftest import QEMU, RUN, VM_PREFIX
from tests.drivers.conftest import ctx as ctx
from tests.drivers.conftest import make_ctx as make_ctx
from tests.drivers.conftest import name as name
from tests.drivers.conftest import pool_root as pool_root
from workers.drivers import JobContext
from workers.drivers.libvirt import LibvirtDriver

#: The nodes of the tests: the system's libvirtd is ``n1``, the second host ``n2``.
N1, N2 = "mig-n1", "mig-n2"

libvirt.registerErrorHandler(lambda _ctx, _err: None, None)


@pytest.fixture(scope="session")
def second_host() -> Iterator[LibvirtHost]:
    """The second libvirtd, answering on ``qemu+tcp://10.219.0.6/system``."""
    need(libvirt_available(), f"libvirtd ({QEMU})")
    tools = all(shutil.which(t) for t in ("ip", "unshare", "libvirtd"))
    need(tools and os.geteuid() == 0, "root, ip, unshare and libvirtd for a second libvirtd")
    host = LibvirtHost("mig", index=1)
    host.down()
    host.up()
    try:
        yield host
    finally:
        try:
            clean_libvirt(host.uri, prefix=f"{VM_PREFIX}{RUN}-")
        finally:
            host.down()


@pytest.fixture
def drivers(second_host: LibvirtHost, pool_root: Path) -> Iterator[tuple[LibvirtDriver, ...]]:
    """The workers' drivers of ``n1`` (qemu:///system) and ``n2`` (the second host), each the
    other's migration peer; what the test named is removed from both hosts afterwards."""
    one = LibvirtDriver(QEMU, node=N1, pool_root=str(pool_root), peers={N2: second_host.uri})
    two = LibvirtDriver(
        second_host.uri,
        node=N2,
        pool_root=str(pool_root),
        peers={N1: QEMU},
        migration_hosts={N1: second_host.gateway},  # the machine, as the namespace reaches it
    )
    try:
        yield one, two
    finally:
        one.close()
        two.close()
        for uri in (second_host.uri, QEMU):
            clean_libvirt(uri, prefix=f"{VM_PREFIX}{RUN}-")


@pytest.fixture
def shared_pool(drivers: tuple[LibvirtDriver, ...], name: object, ctx: JobContext) -> str:
    """A directory pool defined on both hosts at the same path (``<pool root>/<name>``)."""
    pool = name("pool")  # type: ignore[operator]
    for driver in drivers:
        driver.define_pool(m.PoolDefine(name=pool, persistent=True), ctx)
    return str(pool)
