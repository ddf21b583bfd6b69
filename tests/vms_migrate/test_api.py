"""``POST /v1/vms/<name>/migrate`` end to end: a private stack with one VM worker per node, node
``mig-n1`` on the system's libvirtd and ``mig-n2`` on the second host, each the other's peer
(``NUBE_LIBVIRT_PEERS``). The VM moves live, its placement follows, and later operations are
served by the destination's worker alone (the source's is stopped by then)."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import libvirt
import pytest

from nube.placement import Placements
from nube.registry import Registry
from nube.tokens import Scope, TokenStore
from nube.tools.client import ApiError, NubeClient
from nube.tools.devstack import Stack
from nube.tools.libvirt_host import LibvirtHost
from tests.conftest import agent_stack
from tests.drivers.conftest import QEMU, RUN, VM_PREFIX
from tests.vms_migrate.conftest import N1, N2
from tests.vms_migrate.test_libvirt_migration import domain
from workers.drivers.names import backend_name

pytestmark = pytest.mark.libvirt


def worker_env(uri: str, node: str, peer: str, peer_uri: str, pool_root: Path) -> dict[str, str]:
    return {
        "NUBE_NODE": node,
        "NUBE_LIBVIRT_URI": uri,
        "NUBE_LIBVIRT_PEERS": f"{peer}={peer_uri}",
        "NUBE_VM_POOL_ROOT": str(pool_root),
    }


def serving(stack: Stack, queue: str, timeout: float = 60) -> None:
    """Until a live worker announces that it consumes ``queue`` (a node's pinned queue)."""
    deadline = time.monotonic() + timeout
    while queue not in Registry(stack.redis()).served_queues():
        assert time.monotonic() < deadline, f"no worker serves {queue}"
        time.sleep(0.2)


def test_a_running_vm_migrates_through_the_api_and_its_placement_follows(
    second_host: LibvirtHost, pool_root: Path, tmp_path: Path
) -> None:
    vm, tenant = f"{VM_PREFIX}{RUN}-api-{secrets.token_hex(3)}", f"mig-{secrets.token_hex(4)}"
    with agent_stack(tmp_path) as stack:
        one = worker_env(QEMU, N1, N2, second_host.uri, pool_root)
        two = worker_env(second_host.uri, N2, N1, QEMU, pool_root)
        stack.start_worker("vms", name="worker-n1", concurrency=1, **one)
        serving(stack, f"vms.{N1}")
        secret, _ = TokenStore(stack.redis()).create(tenant, [Scope.READ, Scope.WRITE])
        api = NubeClient(stack.api_url, secret)
        placements = Placements(stack.redis())

        made = api.run("POST", "/v1/vms", {"name": vm, "memory_mib": 64, "start": True})
        assert (made["node"], made["state"]) == (N1, "running")  # only n1 serves `vms` yet
        assert "migrate" in made["allowed_actions"]
        stack.start_worker("vms", name="worker-n2", concurrency=1, **two)
        serving(stack, f"vms.{N2}")

        for body, status in (({}, 422), ({"node": "a/b"}, 422), ({"node": N2, "x": 1}, 422)):
            with pytest.raises(ApiError) as refused:  # the API's own validation: no job
                api.request("POST", f"/v1/vms/{vm}/migrate", json=body)
            assert refused.value.status == status, body
        with pytest.raises(ApiError) as unknown:
            api.run("POST", f"/v1/vms/{vm}/migrate", {"node": "mig-n9"})
        assert (unknown.value.status, unknown.value.code) == (422, "invalid_request")
        with pytest.raises(ApiError) as here:
            api.run("POST", f"/v1/vms/{vm}/migrate", {"node": N1})
        assert (here.value.status, here.value.code) == (409, "conflict")
        assert placements.node_of("vms", tenant, vm) == N1

        moved = api.run("POST", f"/v1/vms/{vm}/migrate", {"node": N2, "live": True})
        assert (moved["name"], moved["node"], moved["state"]) == (vm, N2, "running")
        assert placements.node_of("vms", tenant, vm) == N2
        backend = backend_name(tenant, vm)
        assert domain(QEMU, backend) is None
        assert domain(second_host.uri, backend) == (libvirt.VIR_DOMAIN_RUNNING, True, N2)

        stack.stop("worker-n1")  # from now on only n2's worker can answer for the VM
        shown = api.run("GET", f"/v1/vms/{vm}")
        assert (shown["node"], shown["state"]) == (N2, "running")
        with pytest.raises(ApiError) as again:  # it is on n2 now: a shut-off VM that moves
            api.run("POST", f"/v1/vms/{vm}/migrate", {"node": N2})
        assert again.value.status == 409
        api.run("POST", f"/v1/vms/{vm}/destroy")
        api.run("DELETE", f"/v1/vms/{vm}")
        assert domain(second_host.uri, backend) is None
        assert placements.node_of("vms", tenant, vm) is None
