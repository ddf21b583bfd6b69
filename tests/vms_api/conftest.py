"""Fixtures for the VM service end to end: through the API, the broker, the agent and the VM
worker of the session stack (``stack``), on ``qemu:///system``, checked with libvirt-python.

Everything these tests make is named ``nubetest-api-...``; an autouse fixture destroys and
undefines every domain, network and pool (with its volumes) of that prefix after each test.
Without libvirtd the tests skip locally and fail when ``CI`` is set (``need``).
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import libvirt
import pytest

from nube.tokens import Scope, TokenStore
from nube.tools.client import ApiError, NubeClient
from nube.tools.devstack import Stack
from tests.conftest import libvirt_available, need
from tests.drivers.backends import remove_console_log

QEMU = "qemu:///system"
PREFIX = "nubetest-api-"
_SCOPED = re.compile(rf"^(?:n[0-9a-f]{{8}}-)?{re.escape(PREFIX)}")
"""A domain of the tests, behind any tenant's prefix."""
WAIT = 30

libvirt.registerErrorHandler(lambda _ctx, _err: None, None)

#: What the VM worker of the stack reported (filled by the ``hypervisor`` session fixture).
SEEN: dict[str, Any] = {}


def unique(kind: str) -> str:
    return f"{PREFIX}{kind}-{uuid.uuid4().hex[:6]}"


# --- which hypervisor ran ------------------------------------------------------------------------


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [_kvm_line()]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if SEEN:
        terminalreporter.write_line(
            f"vms_api: the stack's VM worker ran domain type '{SEEN['domain_type']}' on "
            f"{SEEN['uri']} (node {SEEN['node']}, QEMU {SEEN['hypervisor_version']})"
        )


def _kvm_line() -> str:
    try:
        conn = libvirt.open(QEMU)
    except libvirt.libvirtError:
        return f"vms_api: {QEMU} unreachable; the VM API tests skip"
    try:
        caps = conn.getCapabilities()
    finally:
        conn.close()
    kvm = "<domain type='kvm'" in caps
    return f"vms_api: {QEMU} offers {'kvm' if kvm else 'qemu only (no usable /dev/kvm)'}"


@pytest.fixture(scope="session")
def hypervisor(stack: Stack) -> dict[str, Any]:
    """``GET /v1/hypervisors`` through the stack; requires the worker to be on qemu:///system."""
    need(libvirt_available(), f"libvirtd ({QEMU})")
    assert stack.libvirt_uri == QEMU, stack.libvirt_uri
    secret, _ = TokenStore(stack.redis()).create(f"hv{uuid.uuid4().hex[:6]}", [Scope.READ])
    job = NubeClient(stack.api_url, secret).submit("GET", "/v1/hypervisors", wait=WAIT)
    assert job["status"] == "succeeded", job
    info = dict(job["result"])
    SEEN.update(info, uri=QEMU)
    print(f"\nvms_api: VMs run as domain type '{info['domain_type']}' on {QEMU}")
    return info


# --- cleanup by prefix ---------------------------------------------------------------------------


def _quiet(fn: Callable[[], object]) -> None:
    with contextlib.suppress(libvirt.libvirtError):
        fn()


def _listed(fn: Callable[[int], list[Any]]) -> list[Any]:
    try:
        return fn(0)
    except libvirt.libvirtError:
        return []


def _clean_domain(dom: libvirt.virDomain) -> None:
    _quiet(dom.destroy)
    for snap in _listed(dom.listAllSnapshots):
        _quiet(partial(snap.delete, libvirt.VIR_DOMAIN_SNAPSHOT_DELETE_METADATA_ONLY))
    flags = (
        libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
    )
    _quiet(lambda: dom.undefineFlags(flags))
    remove_console_log(dom.name())


def clean_prefix() -> None:
    """Destroy and undefine every ``nubetest-api-`` domain, network and pool (with volumes)."""
    try:
        conn = libvirt.open(QEMU)
    except libvirt.libvirtError:
        return
    try:
        doms = [d for d in _listed(conn.listAllDomains) if _SCOPED.match(d.name())]
        with ThreadPoolExecutor(max(1, len(doms))) as threads:  # a KVM guest takes ~2 s to die
            list(threads.map(_clean_domain, doms))
        for net in _listed(conn.listAllNetworks):
            if net.name().startswith(PREFIX):
                _quiet(net.destroy)
                _quiet(net.undefine)
        for pool in _listed(conn.listAllStoragePools):
            if pool.name().startswith(PREFIX):
                _quiet(partial(pool.create, 0))
                for vol in _listed(pool.listAllVolumes):
                    _quiet(partial(vol.delete, 0))
                _quiet(pool.destroy)
                _quiet(partial(pool.delete, 0))
                _quiet(pool.undefine)
    finally:
        conn.close()


@pytest.fixture(autouse=True)
def _clean_api_objects() -> Iterator[None]:
    yield
    clean_prefix()


# --- clients and helpers -------------------------------------------------------------------------


@pytest.fixture
def raw(hypervisor: dict[str, Any]) -> Iterator[libvirt.virConnect]:
    """libvirt-python on qemu:///system, to confirm what the API did."""
    conn = libvirt.open(QEMU)
    yield conn
    with contextlib.suppress(libvirt.libvirtError):
        conn.close()


@pytest.fixture
def vm_api(hypervisor: dict[str, Any], make_client: Any) -> NubeClient:
    """A read/write client of a fresh tenant (the stack runs qemu:///system)."""
    return make_client()


@pytest.fixture
def admin(vm_api: NubeClient, make_client: Any) -> NubeClient:
    """An admin client of the same tenant as ``vm_api``."""
    return make_client(tenant=vm_api.tenant, scopes=("admin",))  # type: ignore[attr-defined]


def ok(job: dict[str, Any]) -> Any:
    """The result of a job that must have succeeded."""
    assert job["status"] == "succeeded", job
    return job["result"]


def failed(job: dict[str, Any], code: str) -> dict[str, Any]:
    """The error of a job that must have failed with ``code``."""
    assert job["status"] == "failed", job
    assert job["error"]["code"] == code, job["error"]
    return dict(job["error"])


def call(
    client: NubeClient, method: str, path: str, body: dict[str, Any] | None = None, **params: Any
) -> dict[str, Any]:
    """Submit and wait for the finished job (``Prefer: wait``)."""
    return client.submit(method, path, body, params=params or None, wait=WAIT)


def vm_state(conn: libvirt.virConnect, name: str) -> int:
    return int(lookup(conn, name).state(0)[0])


def lookup(conn: libvirt.virConnect, name: str) -> libvirt.virDomain:
    """The domain a tenant calls ``name``: libvirt holds it behind the tenant's prefix
    (``n<tag>-name``, :mod:`workers.drivers.names`); the tests' names are unique, so whichever
    tenant's. ``libvirtError`` when there is none, as ``lookupByName`` raises."""
    for dom in conn.listAllDomains(0):
        if re.fullmatch(rf"n[0-9a-f]{{8}}-{re.escape(name)}", dom.name()):
            return dom
    return conn.lookupByName(name)


def exists(lookup: Callable[[str], object], name: str) -> bool:
    try:
        lookup(name)
        return True
    except libvirt.libvirtError:
        return False


def api_error(fn: Callable[[], object]) -> ApiError:
    with pytest.raises(ApiError) as err:
        fn()
    return err.value


def define_vm(client: NubeClient, name: str, **spec: Any) -> dict[str, Any]:
    """Define a diskless 64 MiB VM (``start`` etc. in ``spec``); returns the finished job."""
    job = call(client, "POST", "/v1/vms", {"name": name, "memory_mib": 64, **spec})
    ok(job)
    return job
