"""Every policy rule denies with its own name; loading validates; defaults harden."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agents.policy import Policy, load_policy
from nube.errors import PolicyDenied, PolicyInvalid
from nube.wire import Hardening

POLICY_YAML = """
version: 1
admin_bypass: true
default:
  containers:
    images: ["busybox*", "docker.io/library/alpine:*"]
    max_memory: 512m
    max_cpus: 2
    max_pids: 512
    max_containers: 3
  vms:
    max_vcpus: 4
    max_memory_mib: 4096
    max_disk_mib: 20480
    max_vms: 2
tenants:
  trusted:
    containers:
      images: ["*"]
      allow_cap_add: [NET_ADMIN]
      max_containers: 100
"""

OK = {"image": "busybox:latest", "env": {"A": "b"}}


@pytest.fixture
def policy(tmp_path: Path) -> Policy:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY_YAML)
    return load_policy(path)


def counts_of(n: int) -> Any:
    return lambda tenant, kind: n


@pytest.mark.parametrize(
    "params, rule",
    [
        ({"privileged": True}, "privileged"),
        ({"network_mode": "host"}, "host_network"),
        ({"network": "host"}, "host_network"),
        ({"network_mode": "container:abc"}, "host_network"),
        ({"pid_mode": "host"}, "host_pid"),
        ({"ipc_mode": "host"}, "host_ipc"),
        ({"uts_mode": "host"}, "host_uts"),
        ({"userns_mode": "host"}, "host_userns"),
        ({"cap_add": ["SYS_ADMIN"]}, "cap_add"),
        ({"devices": ["/dev/kvm:/dev/kvm:rwm"]}, "devices"),
        ({"device_requests": [{"Driver": "nvidia"}]}, "devices"),
        ({"security_opt": ["seccomp=unconfined"]}, "security_opt"),
        ({"volumes": ["/var/run/docker.sock:/var/run/docker.sock"]}, "docker_socket"),
        ({"volumes": {"/run/docker.sock": {"bind": "/s", "mode": "rw"}}}, "docker_socket"),
        ({"mounts": [{"Type": "bind", "Source": "/var/run", "Target": "/x"}]}, "docker_socket"),
        ({"volumes": ["/:/host"]}, "host_mounts"),
        ({"binds": ["/etc:/etc:ro"]}, "host_mounts"),
        ({"volumes": [{"source": "./data", "target": "/d"}]}, "host_mounts"),
        ({"image": "evil/miner:latest"}, "images"),
        ({"image": "alpine"}, "images"),
        ({"memory": "1g"}, "max_memory"),
        ({"mem_limit": 10 * 1024**3}, "max_memory"),
        ({"cpus": 4}, "max_cpus"),
        ({"nano_cpus": 3_000_000_000}, "max_cpus"),
        ({"pids_limit": 100000}, "max_pids"),
        ({"pids_limit": -1}, "max_pids"),
    ],
)
def test_each_container_rule_denies_by_name(
    policy: Policy, params: dict[str, Any], rule: str
) -> None:
    decision = policy.check("containers.run", {**OK, **params}, "acme", counts=counts_of(0))
    assert (decision.allowed, decision.rule) == (False, rule)
    with pytest.raises(PolicyDenied) as e:
        decision.raise_if_denied()
    assert e.value.code == "policy_denied" and rule in e.value.message


def test_container_count_cap(policy: Policy) -> None:
    assert policy.check("containers.create", OK, "acme", counts=counts_of(2)).allowed
    denied = policy.check("containers.create", OK, "acme", counts=counts_of(3))
    assert denied.rule == "max_containers"
    assert policy.check("containers.create", OK, "acme").rule == "max_containers"  # unknown
    assert policy.check("containers.list", {}, "acme").allowed  # not a create


@pytest.mark.parametrize(
    "op, params, rule",
    [
        ("vms.define", {"vcpus": 8, "memory_mib": 512}, "max_vcpus"),
        ("vms.define", {"vcpus": 1, "memory_mib": 8192}, "max_vm_memory"),
        (
            "vms.define",
            {
                "vcpus": 1,
                "memory_mib": 512,
                "disks": [{"capacity_mib": 16384}, {"capacity_mib": 8192}],
            },
            "max_disk",
        ),
        ("vms.volume_create", {"pool": "default", "name": "v", "capacity_mib": 30000}, "max_disk"),
    ],
)
def test_each_vm_rule_denies_by_name(
    policy: Policy, op: str, params: dict[str, Any], rule: str
) -> None:
    assert policy.check(op, params, "acme", counts=counts_of(0)).rule == rule


def test_vm_count_cap(policy: Policy) -> None:
    params = {"vcpus": 2, "memory_mib": 1024, "disks": [{"capacity_mib": 1024}]}
    assert policy.check("vms.define", params, "acme", counts=counts_of(1)).allowed
    assert policy.check("vms.define", params, "acme", counts=counts_of(2)).rule == "max_vms"


def test_allowed_container_gets_hardening_and_limits(policy: Policy) -> None:
    decision = policy.check("containers.run", OK, "acme", counts=counts_of(0))
    assert decision.allowed
    assert decision.hardening == Hardening(
        drop_all_capabilities=True,
        no_new_privileges=True,
        memory=512 * 1024**2,
        cpus=2,
        pids_limit=256,
    )
    within = policy.check(
        "containers.run",
        {**OK, "memory": "64m", "cpus": 1, "pids_limit": 50},
        "acme",
        counts=counts_of(0),
    )
    assert within.hardening == Hardening(drop_all_capabilities=True, no_new_privileges=True)


def test_tenant_overrides_merge_over_default(policy: Policy) -> None:
    params = {"image": "anything/at-all:1", "cap_add": ["NET_ADMIN"]}
    assert policy.check("containers.run", params, "trusted", counts=counts_of(50)).allowed
    too_big = policy.check(
        "containers.run", {**params, "memory": "2g"}, "trusted", counts=counts_of(0)
    )
    assert too_big.rule == "max_memory"  # inherited from default
    assert (
        policy.check(
            "containers.run", {**params, "cap_add": ["SYS_ADMIN"]}, "trusted", counts=counts_of(0)
        ).rule
        == "cap_add"
    )


def test_admin_bypass(policy: Policy) -> None:
    decision = policy.check("containers.run", {**OK, "privileged": True}, "acme", admin=True)
    assert decision.allowed and decision.rule == "admin_bypass"
    strict = Policy.from_dict({"admin_bypass": False})
    assert not strict.check("containers.run", {**OK, "privileged": True}, "x", admin=True).allowed


def test_catalog_shapes_are_allowed(policy: Policy) -> None:
    from nube.catalog import load_catalog

    op = load_catalog().get("containers.run")
    model = op.params.model_validate(
        {
            "image": "busybox:1.36",
            "volumes": ["data:/data"],
            "ports": ["8080:80"],
            "memory": "64m",
            "cpus": 0.5,
        }
    )
    decision = policy.check(op.name, model.model_dump(mode="json"), "acme", counts=counts_of(0))
    assert decision.allowed, decision


@pytest.mark.parametrize(
    "text, where",
    [
        ("default: {containers: {max_memory: lots}}", "default.containers.max_memory"),
        ("default: {containers: {privileged: true}}", "default.containers.privileged"),
        ("tenants: {a: {vms: {max_vcpus: 0}}}", "tenants.a.vms.max_vcpus"),
        ("version: 2", "version"),
        ("bogus: 1", "bogus"),
        ("[unclosed", "not valid YAML"),
    ],
)
def test_invalid_policy_files_name_the_key(tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(PolicyInvalid) as e:
        load_policy(path)
    assert where in e.value.message


def test_json_policy(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text('{"default": {"containers": {"images": ["busybox*"]}}}')
    assert load_policy(path).check("containers.run", {"image": "nginx"}, "t").rule == "images"
