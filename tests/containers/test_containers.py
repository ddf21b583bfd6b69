"""ContainerDriver contract, containers: lifecycle, run, exec, logs, diff, commit, ports."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import docker
import pytest
import requests

from nube.catalog import container_models as m
from nube.errors import Conflict, NotFound
from tests.conftest import wait_http
from tests.containers.conftest import IMAGE, MakeCtx
from workers.drivers import JobContext
from workers.drivers.docker import DockerDriver

Name = Callable[[str], str]


def _sleeper(driver: DockerDriver, ctx: JobContext, **extra: Any) -> dict[str, Any]:
    spec = {"image": IMAGE, "command": ["sleep", "60"], "detach": True} | extra
    return driver.run(m.ContainerRun.model_validate(spec), ctx)


def _status(engine: docker.DockerClient, id: str) -> str:
    return str(engine.api.inspect_container(id)["State"]["Status"])


def test_run_to_completion_returns_exit_code_and_output(
    driver: DockerDriver, ctx: JobContext, engine: docker.DockerClient
) -> None:
    params = m.ContainerRun(image=IMAGE, command=["sh", "-c", "echo out; echo err >&2; exit 3"])
    result = driver.run(params, ctx)
    assert (result["exit_code"], result["stdout"], result["stderr"]) == (3, "out\n", "err\n")
    assert not engine.api.containers(all=True, filters={"id": result["id"]})


def test_lifecycle_with_docker_inspect_confirming_each_state(
    driver: DockerDriver,
    ctx: JobContext,
    make_ctx: MakeCtx,
    engine: docker.DockerClient,
    name: Name,
) -> None:
    spec = m.ContainerCreate(
        image=IMAGE,
        command=["sleep", "60"],
        name=name("life"),
        labels={"app": "web"},
        env={"SECRET": "x"},
        memory="32m",
        pids_limit=64,
        cpus=0.5,
        restart_policy="on-failure",
        restart_max_retries=2,
    )
    made = driver.create(spec, ctx)
    cid, ref = made["id"], m.ContainerRef(id=made["id"])
    attrs = engine.api.inspect_container(cid)
    assert attrs["State"]["Status"] == "created"
    assert attrs["Config"]["Labels"]["nube.tenant"] == ctx.tenant
    assert attrs["Config"]["Labels"]["nube.job"] == ctx.job_id
    assert attrs["HostConfig"]["Memory"] == 32 * 1024 * 1024
    assert attrs["HostConfig"]["PidsLimit"] == 64
    assert attrs["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert "SECRET" in made["config"]["env_names"]
    assert "SECRET=x" not in str(made)
    for step, expected in [
        (lambda: driver.start(ref, make_ctx()), "running"),
        (lambda: driver.pause(ref, make_ctx()), "paused"),
        (lambda: driver.unpause(ref, make_ctx()), "running"),
        (lambda: driver.restart(m.ContainerStop(id=cid, timeout=1), make_ctx()), "running"),
        (lambda: driver.stop(m.ContainerStop(id=cid, timeout=1), make_ctx()), "exited"),
        (lambda: driver.start(ref, make_ctx()), "running"),
        (lambda: driver.kill(m.ContainerKill(id=cid, signal="KILL"), make_ctx()), "exited"),
    ]:
        assert step()["state"] == expected
        assert _status(engine, cid) == expected
    assert engine.api.inspect_container(cid)["State"]["ExitCode"] == 137
    new_name = name("renamed")
    driver.rename(m.ContainerRename(id=cid, name=new_name), make_ctx())
    assert engine.api.inspect_container(cid)["Name"] == f"/{new_name}"
    assert driver.remove(m.ContainerRemove(id=new_name), make_ctx())["removed"] is True
    assert not engine.api.containers(all=True, filters={"id": cid})
    with pytest.raises(NotFound):
        driver.inspect(ref, make_ctx())


def test_state_conflicts(
    driver: DockerDriver, ctx: JobContext, make_ctx: MakeCtx, name: Name
) -> None:
    created = driver.create(m.ContainerCreate(image=IMAGE, command=["sleep", "60"]), ctx)
    ref = m.ContainerRef(id=created["id"])
    with pytest.raises(Conflict):
        driver.kill(m.ContainerKill(id=ref.id), make_ctx())
    with pytest.raises(Conflict):
        driver.pause(ref, make_ctx())
    with pytest.raises(Conflict):
        driver.exec(m.ContainerExec(id=ref.id, command=["true"]), make_ctx())
    driver.start(ref, make_ctx())
    with pytest.raises(Conflict):
        driver.remove(m.ContainerRemove(id=ref.id), make_ctx())
    with pytest.raises(Conflict):
        driver.unpause(ref, make_ctx())
    taken = name("taken")
    _sleeper(driver, make_ctx(), name=taken)
    with pytest.raises(Conflict):
        driver.create(m.ContainerCreate(image=IMAGE, name=taken), make_ctx())
    with pytest.raises(Conflict):
        driver.rename(m.ContainerRename(id=ref.id, name=taken), make_ctx())
    assert driver.remove(m.ContainerRemove(id=ref.id, force=True), make_ctx())["removed"]


def test_missing_things_are_not_found(driver: DockerDriver, ctx: JobContext) -> None:
    with pytest.raises(NotFound) as info:
        driver.run(m.ContainerRun(image="nube-no-such-image:1"), ctx)
    assert info.value.details["kind"] == "image"
    for call in (driver.inspect, driver.start, driver.logs, driver.diff, driver.port):
        with pytest.raises(NotFound):
            call(m.ContainerLogs(id="nube-no-such-container"), ctx)


def test_redelivered_create_and_run_make_one_container(
    driver: DockerDriver, make_ctx: MakeCtx, engine: docker.DockerClient, name: Name
) -> None:
    ctx = make_ctx()
    spec = m.ContainerCreate(image=IMAGE, name=name("once"), command=["sleep", "60"])
    first, second = driver.create(spec, ctx), driver.create(spec, ctx)
    assert first["id"] == second["id"]
    run_ctx = make_ctx()
    one = _sleeper(driver, run_ctx, name=name("once-run"))
    two = _sleeper(driver, run_ctx, name=name("once-run"))
    assert one["id"] == two["id"] and two["state"] == "running"
    for job in (ctx.job_id, run_ctx.job_id):
        assert len(engine.api.containers(all=True, filters={"label": f"nube.job={job}"})) == 1


def test_redelivered_run_to_completion_reuses_the_first_container(
    driver: DockerDriver, make_ctx: MakeCtx, engine: docker.DockerClient
) -> None:
    ctx = make_ctx()
    # The first attempt created the container and died before starting it.
    first = driver.create(m.ContainerCreate(image=IMAGE, command=["echo", "once"]), ctx)
    result = driver.run(m.ContainerRun(image=IMAGE, command=["echo", "twice"]), ctx)
    assert result["id"] == first["id"] and result["stdout"] == "once\n"


def test_list_filters_by_status_name_and_label(
    driver: DockerDriver, ctx: JobContext, make_ctx: MakeCtx, name: Name
) -> None:
    web = name("web")
    running = _sleeper(driver, ctx, name=web, labels={"tier": "front"})
    stopped = driver.create(m.ContainerCreate(image=IMAGE, labels={"tier": "back"}), make_ctx())

    def ids(**filters: Any) -> set[str]:
        found = driver.list(m.ContainerList(**filters), make_ctx())["containers"]
        return {c["id"] for c in found}

    assert {running["id"], stopped["id"]} <= ids()
    assert ids(all=False) == {running["id"]}
    assert ids(status="created") == {stopped["id"]}
    assert ids(name=web) == {running["id"]}
    assert ids(label=["tier=back"]) == {stopped["id"]}
    assert ids(label=["tier"]) == {running["id"], stopped["id"]}


def test_port_mapping_serves_http_on_the_mapped_host_port(
    driver: DockerDriver, ctx: JobContext, make_ctx: MakeCtx
) -> None:
    script = "mkdir -p /www && echo hello-nube > /www/index.html && httpd -f -p 8080 -h /www"
    started = _sleeper(driver, ctx, command=["sh", "-c", script], ports=["127.0.0.1::8080"])
    ports = driver.port(m.ContainerRef(id=started["id"]), make_ctx())["ports"]
    assert len(ports) == 1 and ports[0]["host_ip"] == "127.0.0.1"
    assert ports[0]["container_port"] == 8080 and ports[0]["host_port"] > 0
    url = f"http://127.0.0.1:{ports[0]['host_port']}/index.html"
    deadline = time.monotonic() + 10
    while (response := wait_http(url)).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert response.text == "hello-nube\n"
    taken = f"127.0.0.1:{ports[0]['host_port']}:8080"
    with pytest.raises(Conflict):
        _sleeper(driver, make_ctx(), ports=[taken])
    with pytest.raises(requests.ConnectionError):
        requests.get(url.replace("127.0.0.1", "127.0.0.2"), timeout=1)


def test_exec_and_logs_return_real_output(
    driver: DockerDriver, ctx: JobContext, make_ctx: MakeCtx
) -> None:
    # stdout and stderr are separate pipes: only their order within a stream is guaranteed.
    script = "echo oops >&2; sleep 0.3; for i in 1 2 3; do echo line$i; done; sleep 60"
    started = _sleeper(driver, ctx, command=["sh", "-c", script])
    cid = started["id"]
    deadline = time.monotonic() + 5
    while "line3" not in (logs := driver.logs(m.ContainerLogs(id=cid), make_ctx()))["logs"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert logs["logs"].splitlines() == ["oops", "line1", "line2", "line3"]
    tail = driver.logs(m.ContainerLogs(id=cid, tail=1, timestamps=True), make_ctx())["logs"]
    assert tail.strip().endswith("line3") and tail.startswith("20")
    result = driver.exec(
        m.ContainerExec(
            id=cid,
            command=["sh", "-c", "echo $GREETING; pwd; exit 4"],
            env={"GREETING": "hi"},
            workdir="/tmp",
        ),
        make_ctx(),
    )
    assert (result["exit_code"], result["stdout"]) == (4, "hi\n/tmp\n")
    missing = driver.exec(m.ContainerExec(id=cid, command=["no-such-binary"]), make_ctx())
    assert missing["exit_code"] in (126, 127)


def test_diff_shows_added_file_and_commit_makes_an_image_with_it(
    driver: DockerDriver,
    ctx: JobContext,
    make_ctx: MakeCtx,
    engine: docker.DockerClient,
    name: Name,
) -> None:
    made = driver.run(
        m.ContainerRun(
            image=IMAGE, detach=True, command=["sh", "-c", "echo committed > /added.txt; sleep 60"]
        ),
        ctx,
    )
    cid = made["id"]
    deadline = time.monotonic() + 5
    while {"path": "/added.txt", "kind": "added"} not in driver.diff(
        m.ContainerRef(id=cid), make_ctx()
    )["changes"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    repo = name("commit")
    commit_ctx = make_ctx()
    params = m.ContainerCommit(
        id=cid, repository=repo, tag="v1", author="Ada <ada@example.org>", message="add a file"
    )
    image = driver.commit(params, commit_ctx)
    assert driver.commit(params, commit_ctx)["id"] == image["id"]  # redelivered: same image
    assert image["tags"] == [f"{repo}:v1"]
    assert (image["author"], image["comment"]) == ("Ada <ada@example.org>", "add a file")
    assert image["labels"]["nube.job"] == commit_ctx.job_id
    assert image["labels"]["nube.tenant"] == ctx.tenant
    out = driver.run(m.ContainerRun(image=f"{repo}:v1", command=["cat", "/added.txt"]), make_ctx())
    assert out["stdout"] == "committed\n"


def test_stats_one_shot(driver: DockerDriver, ctx: JobContext, make_ctx: MakeCtx) -> None:
    started = _sleeper(driver, ctx, memory="64m")
    stats = driver.stats(m.ContainerRef(id=started["id"]), make_ctx())
    assert stats["memory"]["limit"] == 64 * 1024 * 1024
    assert stats["pids"] >= 1 and stats["cpu_percent"] >= 0


def test_auto_remove_container_disappears_after_stop(
    driver: DockerDriver, ctx: JobContext, make_ctx: MakeCtx, engine: docker.DockerClient
) -> None:
    started = _sleeper(driver, ctx, auto_remove=True)
    driver.stop(m.ContainerStop(id=started["id"], timeout=0), make_ctx())
    deadline = time.monotonic() + 5
    while engine.api.containers(all=True, filters={"id": started["id"]}):
        assert time.monotonic() < deadline
        time.sleep(0.05)
