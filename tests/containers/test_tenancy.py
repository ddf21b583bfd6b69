"""Lists and inspects show only the caller's tenant; another tenant's id is not_found."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest

from nube.catalog import container_models as m
from nube.errors import NotFound
from tests.containers.conftest import IMAGE, TENANT_B, MakeCtx
from workers.drivers.docker import DockerDriver

Name = Callable[[str], str]


def test_another_tenants_container_is_not_found(
    driver: DockerDriver, make_ctx: MakeCtx, name: Name
) -> None:
    mine = driver.run(
        m.ContainerRun(image=IMAGE, name=name("a"), command=["sleep", "60"], detach=True),
        make_ctx(),
    )
    other = make_ctx(tenant=TENANT_B)
    assert mine["id"] not in {c["id"] for c in driver.list(m.ContainerList(), other)["containers"]}
    for key in (mine["id"], mine["id"][:12], mine["name"]):
        for call, params in [
            (driver.inspect, m.ContainerRef(id=key)),
            (driver.stop, m.ContainerStop(id=key, timeout=0)),
            (driver.logs, m.ContainerLogs(id=key)),
            (driver.exec, m.ContainerExec(id=key, command=["true"])),
            (driver.remove, m.ContainerRemove(id=key, force=True)),
        ]:
            with pytest.raises(NotFound):
                call(params, other)  # type: ignore[operator]
    assert driver.inspect(m.ContainerRef(id=mine["id"]), make_ctx(admin=True, tenant="ops"))
    assert driver.inspect(m.ContainerRef(id=mine["id"]), make_ctx())["state"] == "running"


def test_another_tenants_network_and_volume_are_not_found(
    driver: DockerDriver, make_ctx: MakeCtx, name: Name
) -> None:
    net = driver.network_create(m.ContainerNetworkCreate(name=name("net")), make_ctx())
    vol = driver.volume_create(m.ContainerVolumeCreate(name=name("vol")), make_ctx())
    other = make_ctx(tenant=TENANT_B)
    assert driver.network_list(m.LabelFilter(), other)["networks"] == []
    assert driver.volume_list(m.LabelFilter(), other)["volumes"] == []
    with pytest.raises(NotFound):
        driver.network_inspect(m.ContainerNetworkRef(id=net["name"]), other)
    with pytest.raises(NotFound):
        driver.volume_inspect(m.ContainerVolumeRef(name=vol["name"]), other)
    with pytest.raises(NotFound):
        driver.volume_backup(m.ContainerVolumeRef(name=vol["name"]), other)
    with pytest.raises(NotFound):  # cannot mount it, nor join the network
        driver.create(m.ContainerCreate(image=IMAGE, volumes=[f"{vol['name']}:/data"]), other)
    with pytest.raises(NotFound):
        driver.create(m.ContainerCreate(image=IMAGE, network=net["name"]), other)
    with pytest.raises(NotFound):
        archive = base64.b64encode(bytes(1024)).decode()  # an empty tar: two zero blocks
        driver.volume_restore(m.ContainerVolumeRestore(name=vol["name"], archive=archive), other)
    theirs = driver.create(m.ContainerCreate(image=IMAGE), other)
    with pytest.raises(NotFound):  # cannot attach its container to my network either
        driver.network_connect(
            m.ContainerNetworkConnect(id=net["id"], container=theirs["id"]), make_ctx()
        )
    assert driver.network_prune(m.LabelFilter(), other)["deleted"] == []
    assert driver.volume_prune(m.LabelFilter(), other)["deleted"] == []
    assert (
        driver.network_inspect(m.ContainerNetworkRef(id=net["id"]), make_ctx())["name"]
        == net["name"]
    )


def test_tenant_images_are_private_shared_images_visible(
    driver: DockerDriver, make_ctx: MakeCtx, name: Name
) -> None:
    tag = f"{name('private')}:v1"
    driver.image_build(
        m.ImageBuild(dockerfile="FROM busybox:latest\nRUN touch /p\n", tag=tag), make_ctx()
    )
    other = make_ctx(tenant=TENANT_B)
    with pytest.raises(NotFound):
        driver.image_inspect(m.ImageRefParams(id=tag), other)
    with pytest.raises(NotFound):
        driver.run(m.ContainerRun(image=tag), other)
    tags = [t for i in driver.image_list(m.ImageList(), other)["images"] for t in i["tags"]]
    assert IMAGE in tags and tag not in tags
