"""Bad input is rejected by the param models, with the field path (422 at the API)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from nube.catalog import CATALOG
from nube.catalog import container_models as m

BASE = {"image": "busybox:latest"}


def _loc(model: type[BaseModel], data: dict[str, Any]) -> tuple[Any, ...]:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return info.value.errors()[0]["loc"]


@pytest.mark.parametrize(
    ("extra", "loc"),
    [
        ({"image": "BusyBox"}, ("image",)),
        ({"image": "busybox:lat est"}, ("image",)),
        ({"image": "-busybox"}, ("image",)),
        ({"ports": ["0:80"]}, ("ports", 0, "host_port")),
        ({"ports": ["70000"]}, ("ports", 0, "container_port")),
        ({"ports": ["80/sctp"]}, ("ports", 0)),
        ({"ports": ["999.1.1.1:80:80"]}, ("ports", 0, "host_ip")),
        ({"ports": [{"container_port": 65536}]}, ("ports", 0, "container_port")),
        ({"env": {"1BAD": "x"}}, ("env", "1BAD", "[key]")),
        ({"env": {"A-B": "x"}}, ("env", "A-B", "[key]")),
        ({"name": "-web"}, ("name",)),
        ({"name": "web/1"}, ("name",)),
        ({"memory": -1}, ("memory",)),
        ({"memory": "lots"}, ("memory",)),
        ({"cpus": -0.5}, ("cpus",)),
        ({"cpus": 0}, ("cpus",)),
        ({"pids_limit": -1}, ("pids_limit",)),
        ({"restart_max_retries": -1}, ("restart_max_retries",)),
        ({"network": "host"}, ("network",)),
        ({"volumes": ["/etc:/etc"]}, ("volumes", 0, "volume")),
        ({"volumes": ["data:relative"]}, ("volumes", 0)),
        ({"volumes": ["data:/a/../etc"]}, ("volumes", 0, "target")),
        ({"labels": {"nube.tenant": "other"}}, ("labels", "nube.tenant", "[key]")),
        ({"working_dir": "tmp"}, ("working_dir",)),
        ({"user": "root; rm"}, ("user",)),
        ({"restart_policy": "sometimes"}, ("restart_policy",)),
        ({"privileged": True}, ("privileged",)),
        ({"cap_add": ["SYS_ADMIN"]}, ("cap_add",)),
        ({"devices": ["/dev/sda"]}, ("devices",)),
        ({"network_mode": "host"}, ("network_mode",)),
        ({"binds": ["/:/host"]}, ("binds",)),
    ],
)
def test_run_rejects(extra: dict[str, Any], loc: tuple[Any, ...]) -> None:
    assert _loc(m.ContainerRun, BASE | extra) == loc


@pytest.mark.parametrize("signal", ["SIGFOO", "0", "65", "", "KILL; ls"])
def test_kill_rejects_bad_signal(signal: str) -> None:
    assert _loc(m.ContainerKill, {"id": "x", "signal": signal}) == ("signal",)


@pytest.mark.parametrize(
    ("given", "normal"),
    [("kill", "SIGKILL"), ("SIGTERM", "SIGTERM"), ("9", "9"), ("hup", "SIGHUP")],
)
def test_kill_normalises_signal(given: str, normal: str) -> None:
    assert m.ContainerKill.model_validate({"id": "x", "signal": given}).signal == normal


def test_short_forms_parse() -> None:
    run = m.ContainerRun.model_validate(
        BASE
        | {"ports": ["127.0.0.1::80", "8080:80/udp"], "volumes": ["data:/data:ro"], "memory": "64m"}
    )
    assert [(p.host_ip, p.host_port, p.container_port, p.protocol) for p in run.ports] == [
        ("127.0.0.1", None, 80, "tcp"),
        ("0.0.0.0", 8080, 80, "udp"),
    ]
    assert run.volumes[0].read_only and run.memory == 64 * 1024 * 1024
    assert run.detach is False


@pytest.mark.parametrize(
    ("model", "data", "loc"),
    [
        (m.ContainerExec, {"id": "x", "command": []}, ("command",)),
        (m.ContainerExec, {"id": "x", "command": ["ls"], "env": {"9": "x"}}, ("env", "9", "[key]")),
        (m.ContainerList, {"status": "sleeping"}, ("status",)),
        (m.ContainerList, {"label": ["=x"]}, ("label",)),
        (m.ContainerNetworkCreate, {"name": "host"}, ("name",)),
        (m.ContainerNetworkCreate, {"name": "n", "subnet": "10.0.0.0/33"}, ("subnet",)),
        (m.ContainerNetworkCreate, {"name": "n", "subnet": "10.0.0.1/24"}, ("subnet",)),
        (
            m.ContainerNetworkCreate,
            {"name": "n", "subnet": "10.0.0.0/24", "gateway": "10.0.1.1"},
            (),
        ),
        (m.ImageTagParams, {"id": "busybox", "repository": "x:tag"}, ("repository",)),
        (m.ImagePush, {"id": "busybox", "registry": "bad host", "repository": "x"}, ("registry",)),
        (m.ImageBuild, {"dockerfile": "F", "files": {"../x": "AA=="}}, ("files", "../x", "[key]")),
        (m.ImageBuild, {"dockerfile": "F", "files": {"/x": "AA=="}}, ("files", "/x", "[key]")),
        (m.ImageBuild, {"dockerfile": "FROM x", "files": {"x": "not base64!"}}, ("files",)),
        (m.ImageBuild, {"dockerfile": "FROM x", "tag": "UPPER"}, ("tag",)),
        (m.ContainerVolumeRestore, {"name": "v", "archive": "***"}, ("archive",)),
    ],
)
def test_other_models_reject(model: type, data: dict[str, Any], loc: tuple[Any, ...]) -> None:
    assert _loc(model, data) == loc


def test_every_operation_binds_path_fields_and_handler() -> None:
    from workers.drivers.containers import ContainerDriver

    for op in (op for op in CATALOG if op.service == "containers"):
        assert hasattr(ContainerDriver, op.handler), op.name
        for segment in op.path.split("/"):
            if segment.startswith("<"):
                assert segment.strip("<>") in op.params.model_fields, op.name


def test_rest_scheme_is_one_resource_per_action() -> None:
    paths = {(op.method, op.path) for op in CATALOG if op.service == "containers"}
    assert len(paths) == len([op for op in CATALOG if op.service == "containers"])
    assert ("POST", "/v1/containers/<id>/stop") in paths
    assert ("POST", "/v1/container-networks/<id>/connect") in paths


def test_query_string_values_coerce() -> None:
    """GET parameters arrive as strings; one ``label=`` arrives as a single string."""
    params = m.ContainerList.model_validate({"all": "false", "label": "tier=front"})
    assert params.all is False and params.label == ["tier=front"]
