"""Workers on the fake drivers (``NUBE_CONTAINER_DRIVER=fake``, ``NUBE_VM_DRIVER=fake``) serve
jobs end to end, through the API, the agent and the broker, with neither Docker nor libvirt.

A private stack (its own Redis, agent, API and workers), whose workers' Docker socket does not
exist and whose libvirt URI names no daemon: only the fakes can answer. It runs on each broker.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator

import pytest

from nube.tokens import Scope, TokenStore
from nube.tools.client import NubeClient
from nube.tools.devstack import Stack
from tests.brokers import Broker
from tests.conftest import TEST_POLICY, need


@pytest.fixture(scope="module")
def fake_stack(tmp_path_factory: pytest.TempPathFactory, module_broker: Broker) -> Iterator[Stack]:
    need(shutil.which("redis-server") is not None, "redis-server")
    workdir = tmp_path_factory.mktemp("fake-stack")
    (workdir / "policy.yaml").write_text(TEST_POLICY)
    stack = Stack(
        workdir=workdir,
        libvirt_uri="qemu+unix:///system?socket=/nonexistent/libvirt-sock",
        extra_env={
            "NUBE_POLICY_FILE": str(workdir / "policy.yaml"),
            "NUBE_CONTAINER_DRIVER": "fake",
            "NUBE_VM_DRIVER": "fake",
            "NUBE_DOCKER_HOST": "unix:///nonexistent/docker.sock",
            **module_broker.env(),
        },
    )
    try:
        stack.start_redis()
        stack.start_agent()
        stack.start_worker("containers", concurrency=1)  # the fake's state is per process
        stack.start_worker("vms", concurrency=1)
        stack.start_api()
        stack.wait_ready(["nube.ingress", "containers", "vms"], timeout=90)
        yield stack
    finally:
        stack.stop_all()


@pytest.fixture
def client(fake_stack: Stack) -> NubeClient:
    tenant = f"t{secrets.token_hex(4)}"
    secret, _ = TokenStore(fake_stack.redis()).create(tenant, [Scope.READ, Scope.WRITE])
    return NubeClient(fake_stack.api_url, secret)


def test_a_container_runs_on_the_fake_driver(client: NubeClient) -> None:
    body = {"image": "busybox:latest", "command": ["sh", "-c", "echo hello; exit 2"]}
    result = client.run("POST", "/v1/containers", body)
    assert (result["exit_code"], result["stdout"]) == (2, "hello\n")
    started = client.run(
        "POST", "/v1/containers", {**body, "command": ["sleep", "60"], "detach": True}
    )
    listed = client.run("GET", "/v1/containers")["containers"]
    assert [c["id"] for c in listed] == [started["id"]] and listed[0]["state"] == "running"


def test_a_vm_life_cycle_on_the_fake_driver(client: NubeClient) -> None:
    name = f"fake-{secrets.token_hex(3)}"
    vm = client.run("POST", "/v1/vms", {"name": name, "memory_mib": 64, "start": True})
    assert (vm["state"], vm["persistent"]) == ("running", True)
    assert client.run("POST", f"/v1/vms/{name}/suspend")["state"] == "paused"
    assert client.run("POST", f"/v1/vms/{name}/destroy")["state"] == "defined"
    assert client.run("DELETE", f"/v1/vms/{name}")["state"] == "undefined"
