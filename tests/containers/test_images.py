"""ContainerDriver contract, images: build, tag, push/pull via a local registry, save/load."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import docker
import pytest

from nube.catalog import container_models as m
from nube.errors import BackendUnavailable, Conflict, Forbidden, InvalidRequest, NotFound
from tests.containers.conftest import IMAGE, MakeCtx, Progress
from workers.drivers.docker import DockerDriver

Name = Callable[[str], str]

DOCKERFILE = "FROM busybox:latest\nCOPY hello.txt /hello.txt\nRUN echo built > /built.txt\n"


def _build(
    driver: DockerDriver, make_ctx: MakeCtx, tag: str, progress: Progress | None = None
) -> dict[str, Any]:
    files = {"hello.txt": base64.b64encode(b"hello from context\n").decode()}
    params = m.ImageBuild(dockerfile=DOCKERFILE, files=files, tag=tag, labels={"app": "demo"})
    return driver.image_build(params, make_ctx(progress=progress))


def test_build_tag_push_remove_pull_back(
    driver: DockerDriver,
    make_ctx: MakeCtx,
    engine: docker.DockerClient,
    registry: str,
    name: Name,
) -> None:
    repo = name("img")
    built_progress = Progress()
    built = _build(driver, make_ctx, f"{repo}:v1", built_progress)
    assert built["tags"] == [f"{repo}:v1"]
    assert "COPY hello.txt" in str(built["log"])
    last = built_progress.reports[-1]
    assert last["phase"] == "build" and last["step"] == last["steps"] >= 3
    labels = engine.images.get(f"{repo}:v1").labels
    assert labels["app"] == "demo" and labels["nube.tenant"] == make_ctx().tenant
    tagged = driver.image_tag(
        m.ImageTagParams(id=f"{repo}:v1", repository=repo, tag="v2"), make_ctx()
    )
    assert engine.images.get(f"{repo}:v2").id == built["id"] == tagged["id"]
    layers = driver.image_history(m.ImageRefParams(id=f"{repo}:v2"), make_ctx())["layers"]
    assert any("built.txt" in str(layer["created_by"]) for layer in layers)
    pushed_progress = Progress()
    pushed = driver.image_push(
        m.ImagePush(id=f"{repo}:v1", registry=registry, repository=f"nube/{repo}", tag="v1"),
        make_ctx(progress=pushed_progress),
    )
    assert pushed["digest"].startswith("sha256:")
    assert pushed_progress.reports[-1]["phase"] == "push"
    gone = driver.image_remove(
        m.ImageRemove(id=built["id"].split(":")[1][:12], force=True), make_ctx()
    )
    assert built["id"] in gone["deleted"]
    with pytest.raises(NotFound):
        driver.image_inspect(m.ImageRefParams(id=f"{repo}:v1"), make_ctx())
    pulled_progress = Progress()
    pulled = driver.image_pull(
        m.ImagePull(image=pushed["reference"]), make_ctx(progress=pulled_progress)
    )
    assert pulled["id"] == built["id"] and pulled["tags"] == [pushed["reference"]]
    assert pulled_progress.reports[-1]["done"] is True
    out = driver.run(
        m.ContainerRun(image=pushed["reference"], command=["cat", "/hello.txt", "/built.txt"]),
        make_ctx(),
    )
    assert out["stdout"] == "hello from context\nbuilt\n"


def test_save_and_load_round_trip(
    driver: DockerDriver, make_ctx: MakeCtx, engine: docker.DockerClient, name: Name
) -> None:
    repo = name("saved")
    built = _build(driver, make_ctx, f"{repo}:v1")
    saved = driver.image_save(m.ImageSave(id=f"{repo}:v1"), make_ctx())
    assert saved["size"] > 1000
    engine.images.remove(built["id"], force=True)
    loaded = driver.image_load(m.ImageLoad(archive=saved["archive"]), make_ctx())
    assert loaded["images"] == [{"id": built["id"], "tags": [f"{repo}:v1"]}]
    with pytest.raises(InvalidRequest):
        driver.image_load(
            m.ImageLoad(archive=base64.b64encode(b"no tar here").decode()), make_ctx()
        )


def test_build_errors_and_redelivery(
    driver: DockerDriver, make_ctx: MakeCtx, engine: docker.DockerClient, name: Name
) -> None:
    with pytest.raises(InvalidRequest, match="the build failed"):
        driver.image_build(m.ImageBuild(dockerfile="FROM busybox:latest\nRUN exit 7\n"), make_ctx())
    ctx = make_ctx()
    params = m.ImageBuild(dockerfile="FROM busybox:latest\nRUN echo x > /x\n", tag=name("re"))
    assert driver.image_build(params, ctx)["id"] == driver.image_build(params, ctx)["id"]
    assert len(engine.images.list(filters={"label": f"nube.job={ctx.job_id}"})) == 1


def test_list_and_inspect_images(driver: DockerDriver, make_ctx: MakeCtx) -> None:
    listed = driver.image_list(m.ImageList(name="busybox"), make_ctx())["images"]
    assert [IMAGE] in [i["tags"] for i in listed]
    inspected = driver.image_inspect(m.ImageRefParams(id=IMAGE), make_ctx())
    assert inspected["os"] == "linux" and inspected["tags"] == [IMAGE]
    with pytest.raises(NotFound):
        driver.image_inspect(m.ImageRefParams(id="nube-no-such-image:1"), make_ctx())


def test_shared_images_are_protected(driver: DockerDriver, make_ctx: MakeCtx, name: Name) -> None:
    mine = _build(driver, make_ctx, f"{name('mine')}:v1")
    with pytest.raises(Conflict):  # would re-point every tenant's busybox:latest
        driver.image_tag(
            m.ImageTagParams(id=str(mine["id"]), repository="busybox", tag="latest"), make_ctx()
        )
    with pytest.raises(Forbidden):
        driver.image_remove(m.ImageRemove(id=IMAGE), make_ctx())


def test_pull_errors(driver: DockerDriver, make_ctx: MakeCtx, registry: str) -> None:
    with pytest.raises(NotFound):
        driver.image_pull(m.ImagePull(image=f"{registry}/nube/absent:v1"), make_ctx())
    with pytest.raises(BackendUnavailable):
        driver.image_pull(m.ImagePull(image="127.0.0.1:1/nube/absent:v1"), make_ctx())
