"""ContainerDriver contract: user networks (reach by name) and volumes (share, backup, restore)."""

from __future__ import annotations

import base64
import io
import tarfile
from collections.abc import Callable
from typing import Any

import docker
import pytest

from nube.catalog import container_models as m
from nube.errors import Conflict, InvalidRequest, NotFound
from tests.containers.conftest import IMAGE, MakeCtx
from workers.drivers import JobContext
from workers.drivers.docker import DockerDriver

Name = Callable[[str], str]


SERVE = ["sh", "-c", "while true; do echo pong | nc -l -p 1234; done"]


def _ask(host: str) -> list[str]:
    """A client that retries until the server listens."""
    return ["sh", "-c", f"for i in $(seq 50); do nc {host} 1234 && exit 0; sleep 0.1; done"]


def _run(driver: DockerDriver, ctx: JobContext, **spec: Any) -> dict[str, Any]:
    return driver.run(m.ContainerRun.model_validate({"image": IMAGE} | spec), ctx)


def test_containers_on_one_user_network_reach_each_other_by_name(
    driver: DockerDriver,
    ctx: JobContext,
    make_ctx: MakeCtx,
    engine: docker.DockerClient,
    name: Name,
) -> None:
    net = driver.network_create(
        m.ContainerNetworkCreate(name=name("net"), subnet="10.213.7.0/24", labels={"app": "demo"}),
        ctx,
    )
    assert engine.networks.get(net["id"]).attrs["Labels"]["nube.job"] == ctx.job_id
    assert net["subnets"][0]["subnet"] == "10.213.7.0/24"
    server = name("server")
    _run(driver, make_ctx(), name=server, network=net["name"], detach=True, command=SERVE)
    out = _run(driver, make_ctx(), network=net["name"], command=_ask(server))
    assert (out["exit_code"], out["stdout"]) == (0, "pong\n")
    inspected = driver.network_inspect(m.ContainerNetworkRef(id=net["name"]), make_ctx())
    assert [c["name"] for c in inspected["containers"].values()] == [server]


def test_connect_with_alias_disconnect_remove_and_prune(
    driver: DockerDriver, ctx: JobContext, make_ctx: MakeCtx, name: Name
) -> None:
    net = driver.network_create(m.ContainerNetworkCreate(name=name("net"), internal=True), ctx)
    assert net["internal"] is True
    server = _run(driver, make_ctx(), detach=True, command=SERVE)
    connect = m.ContainerNetworkConnect(id=net["id"], container=server["id"], aliases=["db"])
    driver.network_connect(connect, make_ctx())
    with pytest.raises(Conflict):
        driver.network_connect(connect, make_ctx())
    out = _run(driver, make_ctx(), network=net["name"], command=_ask("db"))
    assert out["stdout"] == "pong\n"
    with pytest.raises(Conflict):  # in use
        driver.network_remove(m.ContainerNetworkRef(id=net["id"]), make_ctx())
    driver.network_disconnect(
        m.ContainerNetworkDisconnect(id=net["id"], container=server["id"]), make_ctx()
    )
    assert (
        driver.network_inspect(m.ContainerNetworkRef(id=net["id"]), make_ctx())["containers"] == {}
    )
    assert driver.network_remove(m.ContainerNetworkRef(id=net["id"]), make_ctx())["removed"]
    spare = driver.network_create(m.ContainerNetworkCreate(name=name("spare")), make_ctx())
    assert driver.network_prune(m.LabelFilter(), make_ctx())["deleted"] == [spare["name"]]
    assert driver.network_list(m.LabelFilter(), make_ctx())["networks"] == []


def test_network_conflicts_and_redelivery(
    driver: DockerDriver, make_ctx: MakeCtx, engine: docker.DockerClient, name: Name
) -> None:
    ctx = make_ctx()
    params = m.ContainerNetworkCreate(name=name("net"))
    assert driver.network_create(params, ctx)["id"] == driver.network_create(params, ctx)["id"]
    assert len(engine.networks.list(filters={"label": f"nube.job={ctx.job_id}"})) == 1
    with pytest.raises(Conflict):
        driver.network_create(params, make_ctx())
    with pytest.raises(NotFound):
        driver.network_inspect(m.ContainerNetworkRef(id="nube-no-such-net"), make_ctx())
    with pytest.raises(NotFound):  # only the caller's networks can be joined
        _run(driver, make_ctx(), network="nube-no-such-net")


def test_volume_written_by_one_container_is_read_by_another(
    driver: DockerDriver,
    ctx: JobContext,
    make_ctx: MakeCtx,
    engine: docker.DockerClient,
    name: Name,
) -> None:
    vol = driver.volume_create(m.ContainerVolumeCreate(name=name("vol"), labels={"app": "db"}), ctx)
    assert engine.volumes.get(vol["name"]).attrs["Labels"]["nube.tenant"] == ctx.tenant
    _run(
        driver,
        make_ctx(),
        volumes=[f"{vol['name']}:/data"],
        command=["sh", "-c", "echo shared > /data/file"],
    )
    out = _run(
        driver, make_ctx(), volumes=[f"{vol['name']}:/data:ro"], command=["cat", "/data/file"]
    )
    assert out["stdout"] == "shared\n"
    denied = _run(
        driver, make_ctx(), volumes=[f"{vol['name']}:/data:ro"], command=["touch", "/data/x"]
    )
    assert denied["exit_code"] != 0


def test_missing_volume_is_created_with_labels(
    driver: DockerDriver, ctx: JobContext, engine: docker.DockerClient, name: Name
) -> None:
    vol = name("auto")
    _run(driver, ctx, volumes=[f"{vol}:/data"], command=["true"])
    assert engine.volumes.get(vol).attrs["Labels"] == ctx.labels


def test_backup_restore_round_trip(
    driver: DockerDriver,
    ctx: JobContext,
    make_ctx: MakeCtx,
    engine: docker.DockerClient,
    name: Name,
) -> None:
    src, dst = name("src"), name("dst")
    _run(
        driver,
        ctx,
        volumes=[f"{src}:/data"],
        command=["sh", "-c", "mkdir /data/d && echo one > /data/a && echo two > /data/d/b"],
    )
    backup = driver.volume_backup(m.ContainerVolumeRef(name=src), make_ctx())
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(backup["archive"]))) as tar:
        names = tar.getnames()
    assert {"./a", "./d/b"} <= set(names)
    restored = driver.volume_restore(
        m.ContainerVolumeRestore(name=dst, archive=backup["archive"]), make_ctx()
    )
    assert restored["size"] == backup["size"]
    out = _run(
        driver, make_ctx(), volumes=[f"{dst}:/data"], command=["sh", "-c", "cat /data/a /data/d/b"]
    )
    assert out["stdout"] == "one\ntwo\n"
    assert not engine.api.containers(all=True, filters={"label": "nube.helper"})
    with pytest.raises(InvalidRequest):
        driver.volume_restore(
            m.ContainerVolumeRestore(name=dst, archive="bm90IGEgdGFy"), make_ctx()
        )


def test_volume_conflicts_remove_and_prune(
    driver: DockerDriver, make_ctx: MakeCtx, engine: docker.DockerClient, name: Name
) -> None:
    ctx = make_ctx()
    params = m.ContainerVolumeCreate(name=name("vol"))
    assert driver.volume_create(params, ctx) == driver.volume_create(params, ctx)
    with pytest.raises(Conflict):  # the engine alone would hand back the existing volume
        driver.volume_create(params, make_ctx())
    _run(driver, make_ctx(), volumes=[f"{params.name}:/data"], detach=True, command=["sleep", "60"])
    with pytest.raises(Conflict):
        driver.volume_remove(m.ContainerVolumeRemove(name=str(params.name)), make_ctx())
    anon = driver.volume_create(m.ContainerVolumeCreate(), make_ctx())
    listed = {v["name"] for v in driver.volume_list(m.LabelFilter(), make_ctx())["volumes"]}
    assert {params.name, anon["name"]} <= listed
    assert anon["name"] in driver.volume_prune(m.LabelFilter(), make_ctx())["deleted"]
    with pytest.raises(NotFound):
        driver.volume_inspect(m.ContainerVolumeRef(name=anon["name"]), make_ctx())
