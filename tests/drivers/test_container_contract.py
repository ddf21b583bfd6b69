"""The ContainerDriver contract, run on the fake driver and on Docker.

Every test drives the steps through the driver interface and checks what the engine itself
holds through ``engine`` (the fake's store, or the Docker SDK). Programs are the few shell
commands the fake understands; what only a real engine shows (HTTP on a published port, names
resolved on a user network, an unreachable registry) is in ``tests/containers``.
"""

from __future__ import annotations

import base64
import concurrent.futures
import dataclasses
import io
import random
import tarfile
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from nube.catalog import container_models as m
from nube.errors import Conflict, Forbidden, InvalidRequest, NotFound
from workers.drivers import ContainerDriver, Driver, JobContext
from workers.drivers.names import backend_name

from .backends import ContainerBackend
from .conftest import IMAGE, TENANT_A, TENANT_B, MakeCtx, Name, Progress

SLEEP = ["sleep", "60"]


def sleeper(driver: ContainerDriver, ctx: JobContext, **spec: Any) -> dict[str, Any]:
    """A detached container that runs until stopped."""
    return driver.run(
        m.ContainerRun.model_validate({"image": IMAGE, "command": SLEEP, "detach": True} | spec),
        ctx,
    )


def run(driver: ContainerDriver, ctx: JobContext, **spec: Any) -> dict[str, Any]:
    return driver.run(m.ContainerRun.model_validate({"image": IMAGE} | spec), ctx)


def eventually(check: Callable[[], Any], seconds: float = 10.0) -> Any:
    """The first truthy ``check()``; a real container needs a moment to write."""
    deadline = time.monotonic() + seconds
    while not (result := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return result


def ids(driver: ContainerDriver, ctx: JobContext, **filters: Any) -> set[str]:
    return {c["id"] for c in driver.list(m.ContainerList(**filters), ctx)["containers"]}


# --- containers ----------------------------------------------------------------------------------


def test_is_a_container_driver(container_driver: ContainerDriver) -> None:
    assert isinstance(container_driver, ContainerDriver) and isinstance(container_driver, Driver)
    assert container_driver.name in ("fake", "docker") and container_driver.version()


def test_run_to_completion_returns_exit_code_and_output_and_removes_it(
    container_driver: ContainerDriver, ctx: JobContext, make_ctx: MakeCtx, engine: ContainerBackend
) -> None:
    script = "echo out; echo err >&2; exit 3"
    result = run(container_driver, ctx, command=["sh", "-c", script])
    assert (result["exit_code"], result["stdout"], result["stderr"]) == (3, "out\n", "err\n")
    assert result["truncated"] is False
    assert result["id"] not in ids(container_driver, make_ctx())
    assert engine.container(result["id"]) is None
    with pytest.raises(NotFound):
        container_driver.inspect(m.ContainerRef(id=result["id"]), make_ctx())


def test_life_cycle(
    container_driver: ContainerDriver, make_ctx: MakeCtx, name: Name, engine: ContainerBackend
) -> None:
    ctx = make_ctx()
    spec = m.ContainerCreate(
        image=IMAGE,
        command=SLEEP,
        name=name("life"),
        labels={"app": "web"},
        env={"SECRET": "x"},
        memory="32m",
        pids_limit=64,
        cpus=0.5,
        restart_policy="on-failure",
        restart_max_retries=2,
    )
    made = container_driver.create(spec, ctx)
    cid, ref = made["id"], m.ContainerRef(id=made["id"])
    assert made["state"] == "created" and made["name"] == spec.name
    assert made["labels"] | ctx.labels == made["labels"] and made["labels"]["app"] == "web"
    assert "SECRET" in made["config"]["env_names"] and "SECRET=x" not in str(made)
    assert made["host_config"]["memory"] == 32 << 20 and made["host_config"]["pids_limit"] == 64
    seen = engine.container(cid)
    assert seen is not None and seen.status == "created"
    assert (seen.labels["nube.tenant"], seen.labels["nube.job"]) == (ctx.tenant, ctx.job_id)
    assert (seen.memory, seen.pids_limit, seen.restart) == (32 << 20, 64, ("on-failure", 2))
    stop = m.ContainerStop(id=cid, timeout=1)
    for step, expected in [
        (lambda: container_driver.start(ref, make_ctx()), "running"),
        (lambda: container_driver.start(ref, make_ctx()), "running"),  # already running: fine
        (lambda: container_driver.pause(ref, make_ctx()), "paused"),
        (lambda: container_driver.unpause(ref, make_ctx()), "running"),
        (lambda: container_driver.restart(stop, make_ctx()), "running"),
        (lambda: container_driver.stop(stop, make_ctx()), "exited"),
        (lambda: container_driver.start(ref, make_ctx()), "running"),
        (
            lambda: container_driver.kill(m.ContainerKill(id=cid, signal="KILL"), make_ctx()),
            "exited",
        ),
    ]:
        assert step()["state"] == expected
        assert container_driver.inspect(ref, make_ctx())["state"] == expected
        assert (seen := engine.container(cid)) is not None and seen.status == expected
    assert container_driver.inspect(ref, make_ctx())["state_detail"]["exit_code"] == 137
    assert (seen := engine.container(cid)) is not None and seen.exit_code == 137
    renamed = name("renamed")
    assert (
        container_driver.rename(m.ContainerRename(id=cid, name=renamed), make_ctx())["name"]
        == renamed
    )
    assert container_driver.inspect(m.ContainerRef(id=renamed), make_ctx())["id"] == cid
    assert (seen := engine.container(cid)) is not None
    assert seen.name == backend_name(TENANT_A, renamed)
    assert container_driver.remove(m.ContainerRemove(id=renamed), make_ctx()) == {
        "id": cid,
        "removed": True,
    }
    assert engine.container(cid) is None
    with pytest.raises(NotFound):
        container_driver.inspect(ref, make_ctx())
    with pytest.raises(NotFound):  # a redelivered remove reports it; the effect happened once
        container_driver.remove(m.ContainerRemove(id=cid), make_ctx())


def test_state_conflicts(
    container_driver: ContainerDriver, ctx: JobContext, make_ctx: MakeCtx, name: Name
) -> None:
    created = container_driver.create(m.ContainerCreate(image=IMAGE, command=SLEEP), ctx)
    ref = m.ContainerRef(id=created["id"])
    for call, params in [
        (container_driver.stop, m.ContainerStop(id=ref.id)),
        (container_driver.kill, m.ContainerKill(id=ref.id)),
        (container_driver.pause, ref),
        (container_driver.unpause, ref),
        (container_driver.exec, m.ContainerExec(id=ref.id, command=["true"])),
    ]:
        with pytest.raises(Conflict):
            call(params, make_ctx())  # type: ignore[operator]
    container_driver.start(ref, make_ctx())
    with pytest.raises(Conflict):
        container_driver.remove(m.ContainerRemove(id=ref.id), make_ctx())
    with pytest.raises(Conflict):
        container_driver.unpause(ref, make_ctx())
    container_driver.pause(ref, make_ctx())
    with pytest.raises(Conflict):
        container_driver.pause(ref, make_ctx())
    with pytest.raises(Conflict):
        container_driver.exec(m.ContainerExec(id=ref.id, command=["true"]), make_ctx())
    taken = name("taken")
    sleeper(container_driver, make_ctx(), name=taken)
    with pytest.raises(Conflict):
        container_driver.create(m.ContainerCreate(image=IMAGE, name=taken), make_ctx())
    with pytest.raises(Conflict):
        container_driver.rename(m.ContainerRename(id=ref.id, name=taken), make_ctx())
    assert container_driver.remove(m.ContainerRemove(id=ref.id, force=True), make_ctx())["removed"]


def test_missing_things_are_not_found(container_driver: ContainerDriver, ctx: JobContext) -> None:
    with pytest.raises(NotFound) as info:
        container_driver.run(m.ContainerRun(image="nube-no-such-image:1"), ctx)
    assert info.value.details["kind"] == "image"
    missing = "nube-no-such-thing"
    for call in (
        container_driver.inspect,
        container_driver.start,
        container_driver.logs,
        container_driver.diff,
        container_driver.port,
        container_driver.stats,
    ):
        with pytest.raises(NotFound):
            call(m.ContainerLogs(id=missing), ctx)
    with pytest.raises(NotFound):
        container_driver.network_inspect(m.ContainerNetworkRef(id=missing), ctx)
    with pytest.raises(NotFound):
        container_driver.volume_inspect(m.ContainerVolumeRef(name=missing), ctx)
    with pytest.raises(NotFound):
        container_driver.image_inspect(m.ImageRefParams(id=f"{missing}:1"), ctx)
    with pytest.raises(NotFound):  # only the caller's networks can be joined
        run(container_driver, ctx, network=missing)


def test_redelivered_create_and_run_make_one_container(
    container_driver: ContainerDriver, make_ctx: MakeCtx, name: Name, engine: ContainerBackend
) -> None:
    ctx = make_ctx()
    spec = m.ContainerCreate(image=IMAGE, name=name("once"), command=SLEEP)
    first, second = container_driver.create(spec, ctx), container_driver.create(spec, ctx)
    assert first["id"] == second["id"]
    run_ctx = make_ctx()
    one = sleeper(container_driver, run_ctx, name=name("once-run"))
    two = sleeper(container_driver, run_ctx, name=name("once-run"))
    assert one["id"] == two["id"] and two["state"] == "running"
    for job in (ctx.job_id, run_ctx.job_id):
        assert len(ids(container_driver, make_ctx(), label=[f"nube.job={job}"])) == 1
        assert engine.count("container", f"nube.job={job}") == 1


def test_redelivered_run_to_completion_reuses_the_first_container(
    container_driver: ContainerDriver, make_ctx: MakeCtx
) -> None:
    ctx = make_ctx()
    # The first attempt created the container and died before starting it.
    first = container_driver.create(m.ContainerCreate(image=IMAGE, command=["echo", "once"]), ctx)
    result = run(container_driver, ctx, command=["echo", "twice"])
    assert result["id"] == first["id"] and result["stdout"] == "once\n"


def test_two_deliveries_of_a_run_make_one_container_and_return_its_output(
    container_driver: ContainerDriver, make_ctx: MakeCtx, engine: ContainerBackend
) -> None:
    """A job delivered twice (its node cut off from Redis, the job given to another node): the
    second delivery, while the first one's container runs, waits for that container instead of
    making another; both return its output. The container is kept until the job's result is
    recorded (a later delivery still finds it), then removed."""
    job_id = f"job-{uuid.uuid4().hex}"
    label = f"nube.job={job_id}"
    recorded: list[Callable[[], None]] = []
    deliveries = [dataclasses.replace(make_ctx(job_id=job_id), after_recorded=recorded)] * 2
    spec = {"command": ["sh", "-c", "sleep 3; echo x"]}
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        first = pool.submit(run, container_driver, deliveries[0], **spec)
        running = dict(label=[label], status="running")  # on the fake, it has ended at once
        eventually(lambda: first.done() or ids(container_driver, make_ctx(), **running))
        second = pool.submit(run, container_driver, deliveries[1], **spec)
        results = [first.result(timeout=60), second.result(timeout=60)]
    assert results[0] == results[1] and results[0]["stdout"] == "x\n", results
    assert engine.count("container", label) == 1
    assert engine.container(results[0]["id"]) is not None  # kept until the result is recorded
    third = run(container_driver, deliveries[0], **spec)  # the record write failed: again
    assert third == results[0] and engine.count("container", label) == 1
    for action in recorded:  # what the runner does once it has recorded the result
        action()
    assert engine.count("container", label) == 0


def test_list_filters_by_status_name_and_label(
    container_driver: ContainerDriver, ctx: JobContext, make_ctx: MakeCtx, name: Name
) -> None:
    web = name("web")
    running = sleeper(container_driver, ctx, name=web, labels={"tier": "front"})
    stopped = container_driver.create(
        m.ContainerCreate(image=IMAGE, labels={"tier": "back"}), make_ctx()
    )
    assert ids(container_driver, make_ctx()) == {running["id"], stopped["id"]}
    assert ids(container_driver, make_ctx(), all=False) == {running["id"]}
    assert ids(container_driver, make_ctx(), status="created") == {stopped["id"]}
    assert ids(container_driver, make_ctx(), name=web) == {running["id"]}
    assert ids(container_driver, make_ctx(), label=["tier=back"]) == {stopped["id"]}
    assert ids(container_driver, make_ctx(), label=["tier"]) == {running["id"], stopped["id"]}
    entry = container_driver.list(m.ContainerList(name=web), make_ctx())["containers"][0]
    assert {"id", "name", "image", "state", "status", "created", "labels", "ports"} <= set(entry)


def test_exec_and_logs(
    container_driver: ContainerDriver, ctx: JobContext, make_ctx: MakeCtx
) -> None:
    # stdout and stderr are separate pipes: only their order within a stream is guaranteed.
    script = "echo oops >&2; sleep 0.3; echo line1; echo line2; echo line3; sleep 60"
    cid = sleeper(container_driver, ctx, command=["sh", "-c", script])["id"]

    def four_lines() -> dict[str, Any] | None:
        logs = container_driver.logs(m.ContainerLogs(id=cid), make_ctx())
        return logs if logs["logs"].count("\n") == 4 else None

    logs = eventually(four_lines)
    assert logs["logs"].splitlines() == ["oops", "line1", "line2", "line3"]
    assert logs["truncated"] is False
    tail = container_driver.logs(m.ContainerLogs(id=cid, tail=1, timestamps=True), make_ctx())
    assert tail["logs"].strip().endswith("line3") and tail["logs"].startswith("20")
    result = container_driver.exec(
        m.ContainerExec(
            id=cid,
            command=["sh", "-c", "echo $GREETING; pwd; exit 4"],
            env={"GREETING": "hi"},
            workdir="/tmp",
        ),
        make_ctx(),
    )
    assert (result["exit_code"], result["stdout"]) == (4, "hi\n/tmp\n")
    missing = container_driver.exec(m.ContainerExec(id=cid, command=["no-such-binary"]), make_ctx())
    assert missing["exit_code"] in (126, 127)


def test_diff_shows_an_added_file_and_commit_keeps_it(
    container_driver: ContainerDriver, ctx: JobContext, make_ctx: MakeCtx, name: Name
) -> None:
    script = "echo committed > /added.txt; sleep 60"
    cid = sleeper(container_driver, ctx, command=["sh", "-c", script])["id"]
    added = {"path": "/added.txt", "kind": "added"}
    eventually(
        lambda: added in container_driver.diff(m.ContainerRef(id=cid), make_ctx())["changes"]
    )
    repo = name("commit")
    commit_ctx = make_ctx()
    params = m.ContainerCommit(
        id=cid, repository=repo, tag="v1", author="Ada <ada@example.org>", message="add a file"
    )
    image = container_driver.commit(params, commit_ctx)
    assert container_driver.commit(params, commit_ctx)["id"] == image["id"]  # redelivered
    assert image["tags"] == [f"{repo}:v1"]
    assert (image["author"], image["comment"]) == ("Ada <ada@example.org>", "add a file")
    assert image["labels"]["nube.job"] == commit_ctx.job_id
    assert image["labels"]["nube.tenant"] == ctx.tenant
    out = run(container_driver, make_ctx(), image=f"{repo}:v1", command=["cat", "/added.txt"])
    assert out["stdout"] == "committed\n"


def test_ports_and_stats(
    container_driver: ContainerDriver, ctx: JobContext, make_ctx: MakeCtx
) -> None:
    started = sleeper(container_driver, ctx, memory="64m", ports=["127.0.0.1::8080"])
    ref = m.ContainerRef(id=started["id"])
    ports = container_driver.port(ref, make_ctx())["ports"]
    assert len(ports) == 1 and ports[0]["host_ip"] == "127.0.0.1"
    assert ports[0]["container_port"] == 8080 and ports[0]["host_port"] > 0
    taken = f"127.0.0.1:{ports[0]['host_port']}:8080"
    with pytest.raises(Conflict):  # the port is allocated; the failed container is removed
        sleeper(container_driver, make_ctx(), ports=[taken])
    assert ids(container_driver, make_ctx()) == {started["id"]}
    stats = container_driver.stats(ref, make_ctx())
    assert stats["memory"]["limit"] == 64 << 20
    assert stats["pids"] >= 1 and stats["cpu_percent"] >= 0
    assert set(stats["network"]) == {"rx_bytes", "tx_bytes"}
    container_driver.stop(m.ContainerStop(id=ref.id, timeout=0), make_ctx())
    assert container_driver.port(ref, make_ctx())["ports"] == []
    assert container_driver.stats(ref, make_ctx())["pids"] == 0


def test_auto_remove_container_is_gone_after_stop(
    container_driver: ContainerDriver, ctx: JobContext, make_ctx: MakeCtx, engine: ContainerBackend
) -> None:
    started = sleeper(container_driver, ctx, auto_remove=True)
    stopped = container_driver.stop(m.ContainerStop(id=started["id"], timeout=0), make_ctx())
    assert stopped["state"] in ("exited", "removing", "removed")
    eventually(lambda: started["id"] not in ids(container_driver, make_ctx()))
    eventually(lambda: engine.container(started["id"]) is None)


# --- tenancy -------------------------------------------------------------------------------------


def test_another_tenants_container_is_not_found(
    container_driver: ContainerDriver, make_ctx: MakeCtx, name: Name
) -> None:
    mine = sleeper(container_driver, make_ctx(), name=name("a"))
    other = make_ctx(tenant=TENANT_B)
    assert mine["id"] not in ids(container_driver, other)
    for key in (mine["id"], mine["id"][:12], mine["name"]):
        for call, params in [
            (container_driver.inspect, m.ContainerRef(id=key)),
            (container_driver.stop, m.ContainerStop(id=key, timeout=0)),
            (container_driver.logs, m.ContainerLogs(id=key)),
            (container_driver.exec, m.ContainerExec(id=key, command=["true"])),
            (container_driver.remove, m.ContainerRemove(id=key, force=True)),
        ]:
            with pytest.raises(NotFound):
                call(params, other)  # type: ignore[operator]
    admin = make_ctx(tenant="ops", admin=True)
    assert container_driver.inspect(m.ContainerRef(id=mine["id"]), admin)["id"] == mine["id"]
    assert container_driver.inspect(m.ContainerRef(id=mine["id"]), make_ctx())["state"] == "running"


def test_another_tenants_network_and_volume_are_not_found(
    container_driver: ContainerDriver, make_ctx: MakeCtx, name: Name
) -> None:
    net = container_driver.network_create(m.ContainerNetworkCreate(name=name("net")), make_ctx())
    vol = container_driver.volume_create(m.ContainerVolumeCreate(name=name("vol")), make_ctx())
    other = make_ctx(tenant=TENANT_B)
    assert container_driver.network_list(m.LabelFilter(), other)["networks"] == []
    assert container_driver.volume_list(m.LabelFilter(), other)["volumes"] == []
    with pytest.raises(NotFound):
        container_driver.network_inspect(m.ContainerNetworkRef(id=net["name"]), other)
    with pytest.raises(NotFound):
        container_driver.volume_inspect(m.ContainerVolumeRef(name=vol["name"]), other)
    with pytest.raises(NotFound):
        container_driver.volume_backup(m.ContainerVolumeRef(name=vol["name"]), other)
    with pytest.raises(NotFound):  # cannot join the network
        container_driver.create(m.ContainerCreate(image=IMAGE, network=net["name"]), other)
    for ref in (vol["name"], backend_name(TENANT_A, vol["name"])):  # nor reach it by any name
        with pytest.raises(NotFound):
            container_driver.volume_inspect(m.ContainerVolumeRef(name=ref), other)
        with pytest.raises(NotFound):
            container_driver.network_inspect(m.ContainerNetworkRef(id=ref), other)
    # names are the tenant's own: mounting "its" name makes B a volume of its own
    archive = base64.b64encode(bytes(1024)).decode()  # an empty tar: two zero blocks
    restore = m.ContainerVolumeRestore(name=vol["name"], archive=archive)
    assert container_driver.volume_restore(restore, other)["name"] == vol["name"]
    theirs = container_driver.create(
        m.ContainerCreate(image=IMAGE, volumes=[f"{vol['name']}:/data"]), other
    )
    assert theirs["mounts"][0]["volume"] == vol["name"]
    assert [
        v["labels"]["nube.tenant"]
        for v in container_driver.volume_list(m.LabelFilter(), other)["volumes"]
    ] == [TENANT_B]
    with pytest.raises(NotFound):  # cannot attach its container to my network either
        connect = m.ContainerNetworkConnect(id=net["id"], container=theirs["id"])
        container_driver.network_connect(connect, make_ctx())
    assert container_driver.network_prune(m.LabelFilter(), other)["deleted"] == []
    container_driver.remove(m.ContainerRemove(id=theirs["id"]), other)
    # B removing its volume of that name leaves A's alone
    container_driver.volume_remove(m.ContainerVolumeRemove(name=vol["name"]), other)
    assert container_driver.volume_prune(m.LabelFilter(), other)["deleted"] == []
    mine = container_driver.volume_inspect(m.ContainerVolumeRef(name=vol["name"]), make_ctx())
    assert mine["labels"]["nube.tenant"] == TENANT_A
    assert (
        container_driver.network_inspect(m.ContainerNetworkRef(id=net["id"]), make_ctx())["name"]
        == net["name"]
    )


def test_tenant_images_are_private_and_shared_images_visible(
    container_driver: ContainerDriver, make_ctx: MakeCtx, name: Name
) -> None:
    tag = f"{name('private')}:v1"
    build = m.ImageBuild(dockerfile=f"FROM {IMAGE}\nRUN touch /p\n", tag=tag)
    container_driver.image_build(build, make_ctx())
    other = make_ctx(tenant=TENANT_B)
    with pytest.raises(NotFound):
        container_driver.image_inspect(m.ImageRefParams(id=tag), other)
    with pytest.raises(NotFound):
        container_driver.run(m.ContainerRun(image=tag), other)
    listed = container_driver.image_list(m.ImageList(), other)["images"]
    tags = [t for i in listed for t in i["tags"]]
    assert IMAGE in tags and tag not in tags


# --- networks and volumes ------------------------------------------------------------------------


def test_network_connect_disconnect_remove_prune_and_redelivery(
    container_driver: ContainerDriver, make_ctx: MakeCtx, name: Name, engine: ContainerBackend
) -> None:
    ctx = make_ctx()
    subnet = f"10.214.{random.randint(1, 250)}.0/24"
    params = m.ContainerNetworkCreate(name=name("net"), subnet=subnet, labels={"app": "demo"})
    net = container_driver.network_create(params, ctx)
    assert container_driver.network_create(params, ctx)["id"] == net["id"]  # redelivered
    assert engine.count("network", f"nube.job={ctx.job_id}") == 1
    assert net["labels"]["nube.job"] == ctx.job_id and net["labels"]["app"] == "demo"
    assert (seen := engine.seen("network", net["id"])) is not None
    assert seen.labels["nube.job"] == ctx.job_id
    assert net["subnets"][0]["subnet"] == subnet and net["containers"] == {}
    with pytest.raises(Conflict):  # another job, same name
        container_driver.network_create(params, make_ctx())
    server = sleeper(container_driver, make_ctx(), name=name("server"))
    connect = m.ContainerNetworkConnect(id=net["id"], container=server["id"], aliases=["db"])
    joined = container_driver.network_connect(connect, make_ctx())
    assert [c["name"] for c in joined["containers"].values()] == [server["name"]]
    with pytest.raises(Conflict):
        container_driver.network_connect(connect, make_ctx())
    assert container_driver.inspect(m.ContainerRef(id=server["id"]), make_ctx())["networks"][
        net["name"]
    ]["ipv4"]
    with pytest.raises(Conflict):  # in use
        container_driver.network_remove(m.ContainerNetworkRef(id=net["id"]), make_ctx())
    leave = m.ContainerNetworkDisconnect(id=net["id"], container=server["id"])
    assert container_driver.network_disconnect(leave, make_ctx())["containers"] == {}
    net_ref = m.ContainerNetworkRef(id=net["id"])
    assert container_driver.network_inspect(net_ref, make_ctx())["containers"] == {}
    with pytest.raises(Conflict):
        container_driver.network_disconnect(leave, make_ctx())
    assert container_driver.network_remove(m.ContainerNetworkRef(id=net["id"]), make_ctx())[
        "removed"
    ]
    spare = container_driver.network_create(
        m.ContainerNetworkCreate(name=name("spare")), make_ctx()
    )
    assert container_driver.network_prune(m.LabelFilter(), make_ctx())["deleted"] == [spare["name"]]
    assert container_driver.network_list(m.LabelFilter(), make_ctx())["networks"] == []


def test_volume_shared_between_containers(
    container_driver: ContainerDriver, make_ctx: MakeCtx, name: Name, engine: ContainerBackend
) -> None:
    ctx = make_ctx()
    params = m.ContainerVolumeCreate(name=name("vol"), labels={"app": "db"})
    vol = container_driver.volume_create(params, ctx)
    assert container_driver.volume_create(params, ctx) == vol  # redelivered
    assert vol["labels"] == ctx.labels | {"app": "db"}
    assert (seen := engine.seen("volume", backend_name(ctx.tenant, vol["name"]))) is not None
    assert seen.labels["nube.tenant"] == ctx.tenant
    with pytest.raises(Conflict):  # another job, same name (the engine alone would hand it back)
        container_driver.volume_create(params, make_ctx())
    write = run(
        container_driver,
        make_ctx(),
        volumes=[f"{vol['name']}:/data"],
        command=["sh", "-c", "echo shared > /data/file"],
    )
    assert write["exit_code"] == 0
    mount = [f"{vol['name']}:/data:ro"]
    read = run(container_driver, make_ctx(), volumes=mount, command=["cat", "/data/file"])
    assert read["stdout"] == "shared\n"
    denied = run(container_driver, make_ctx(), volumes=mount, command=["touch", "/data/x"])
    assert denied["exit_code"] != 0
    sleeper(container_driver, make_ctx(), volumes=mount)
    with pytest.raises(Conflict):  # in use
        container_driver.volume_remove(m.ContainerVolumeRemove(name=vol["name"]), make_ctx())


def test_missing_volume_is_created_and_prune_removes_unused(
    container_driver: ContainerDriver, make_ctx: MakeCtx, name: Name, engine: ContainerBackend
) -> None:
    ctx = make_ctx()
    auto = name("auto")
    run(container_driver, ctx, volumes=[f"{auto}:/data"], command=["true"])
    assert (
        container_driver.volume_inspect(m.ContainerVolumeRef(name=auto), make_ctx())["labels"]
        == ctx.labels
    )
    seen = engine.seen("volume", backend_name(ctx.tenant, auto))
    assert seen is not None and seen.labels == ctx.labels
    anon = container_driver.volume_create(m.ContainerVolumeCreate(), make_ctx())
    listed = {
        v["name"] for v in container_driver.volume_list(m.LabelFilter(), make_ctx())["volumes"]
    }
    assert {auto, anon["name"]} <= listed
    # Engines from API 1.42 on prune only anonymous volumes, older ones every unused volume.
    assert anon["name"] in container_driver.volume_prune(m.LabelFilter(), make_ctx())["deleted"]
    with pytest.raises(NotFound):
        container_driver.volume_inspect(m.ContainerVolumeRef(name=anon["name"]), make_ctx())
    kept = container_driver.volume_create(m.ContainerVolumeCreate(name=name("kept")), make_ctx())
    removed = container_driver.volume_remove(m.ContainerVolumeRemove(name=kept["name"]), make_ctx())
    assert removed == {"name": kept["name"], "removed": True}


def test_backup_restore_round_trip(
    container_driver: ContainerDriver, make_ctx: MakeCtx, name: Name, engine: ContainerBackend
) -> None:
    ctx = make_ctx()
    src, dst = name("src"), name("dst")
    script = "mkdir /data/d && echo one > /data/a && echo two > /data/d/b"
    run(container_driver, ctx, volumes=[f"{src}:/data"], command=["sh", "-c", script])
    backup = container_driver.volume_backup(m.ContainerVolumeRef(name=src), make_ctx())
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(backup["archive"]))) as tar:
        assert {"./a", "./d/b"} <= set(tar.getnames())
    restore = m.ContainerVolumeRestore(name=dst, archive=backup["archive"])
    assert container_driver.volume_restore(restore, make_ctx())["size"] == backup["size"]
    out = run(
        container_driver,
        make_ctx(),
        volumes=[f"{dst}:/data"],
        command=["cat", "/data/a", "/data/d/b"],
    )
    assert out["stdout"] == "one\ntwo\n"
    with pytest.raises(InvalidRequest):
        bad = m.ContainerVolumeRestore(name=dst, archive="bm90IGEgdGFy")  # "not a tar"
        container_driver.volume_restore(bad, make_ctx())
    assert ids(container_driver, make_ctx()) == set()  # no helper container is left
    assert engine.count("container", "nube.helper") == 0


# --- images --------------------------------------------------------------------------------------

DOCKERFILE = f"FROM {IMAGE}\nCOPY hello.txt /hello.txt\nRUN echo built > /built.txt\n"


def build(driver: ContainerDriver, ctx: JobContext, tag: str) -> dict[str, Any]:
    files = {"hello.txt": base64.b64encode(b"hello from context\n").decode()}
    params = m.ImageBuild(dockerfile=DOCKERFILE, files=files, tag=tag, labels={"app": "demo"})
    return driver.image_build(params, ctx)


def test_build_tag_history_save_remove_load(
    container_driver: ContainerDriver, make_ctx: MakeCtx, name: Name, engine: ContainerBackend
) -> None:
    repo = name("img")
    progress = Progress()
    built = build(container_driver, make_ctx(progress=progress), f"{repo}:v1")
    assert built["tags"] == [f"{repo}:v1"] and "COPY hello.txt" in built["log"]
    assert built["labels"]["app"] == "demo" and built["labels"]["nube.tenant"] == make_ctx().tenant
    assert (seen := engine.seen("image", f"{repo}:v1")) is not None
    assert seen.labels["app"] == "demo" and seen.labels["nube.tenant"] == make_ctx().tenant
    last = progress.reports[-1]
    assert last["phase"] == "build" and last["step"] == last["steps"] >= 3
    tag = m.ImageTagParams(id=f"{repo}:v1", repository=repo, tag="v2")
    assert container_driver.image_tag(tag, make_ctx()) == {
        "id": built["id"],
        "reference": f"{repo}:v2",
    }
    assert (seen := engine.seen("image", f"{repo}:v2")) is not None and seen.id == built["id"]
    layers = container_driver.image_history(m.ImageRefParams(id=f"{repo}:v2"), make_ctx())["layers"]
    assert any("built.txt" in str(layer["created_by"]) for layer in layers)
    saved = container_driver.image_save(m.ImageSave(id=f"{repo}:v1"), make_ctx())
    assert saved["id"] == built["id"] and saved["size"] > 1000
    short = built["id"].removeprefix("sha256:")[:12]
    gone = container_driver.image_remove(m.ImageRemove(id=short, force=True), make_ctx())
    assert built["id"] in gone["deleted"]
    with pytest.raises(NotFound):
        container_driver.image_inspect(m.ImageRefParams(id=f"{repo}:v1"), make_ctx())
    loaded = container_driver.image_load(m.ImageLoad(archive=saved["archive"]), make_ctx())
    assert loaded["images"] == [{"id": built["id"], "tags": [f"{repo}:v1"]}]
    out = run(
        container_driver,
        make_ctx(),
        image=f"{repo}:v1",
        command=["cat", "/hello.txt", "/built.txt"],
    )
    assert out["stdout"] == "hello from context\nbuilt\n"
    with pytest.raises(InvalidRequest):
        garbage = base64.b64encode(b"no tar here").decode()
        container_driver.image_load(m.ImageLoad(archive=garbage), make_ctx())


def test_build_errors_and_redelivery(
    container_driver: ContainerDriver, make_ctx: MakeCtx, name: Name, engine: ContainerBackend
) -> None:
    with pytest.raises(InvalidRequest, match="the build failed"):
        failing = m.ImageBuild(dockerfile=f"FROM {IMAGE}\nRUN exit 7\n")
        container_driver.image_build(failing, make_ctx())
    ctx = make_ctx()
    params = m.ImageBuild(dockerfile=f"FROM {IMAGE}\nRUN echo x > /x\n", tag=name("re"))
    first = container_driver.image_build(params, ctx)
    assert container_driver.image_build(params, ctx)["id"] == first["id"]
    listed = container_driver.image_list(m.ImageList(), make_ctx())["images"]
    assert [i["id"] for i in listed if i["labels"].get("nube.job") == ctx.job_id] == [first["id"]]
    assert engine.count("image", f"nube.job={ctx.job_id}") == 1


def test_list_and_inspect_shared_images(
    container_driver: ContainerDriver, make_ctx: MakeCtx
) -> None:
    listed = container_driver.image_list(m.ImageList(name="busybox"), make_ctx())["images"]
    assert [IMAGE] in [i["tags"] for i in listed]
    inspected = container_driver.image_inspect(m.ImageRefParams(id=IMAGE), make_ctx())
    assert inspected["os"] == "linux" and inspected["tags"] == [IMAGE]
    assert {"id", "digests", "created", "size", "config", "architecture"} <= set(inspected)


def test_shared_images_are_protected(
    container_driver: ContainerDriver, make_ctx: MakeCtx, name: Name
) -> None:
    mine = build(container_driver, make_ctx(), f"{name('mine')}:v1")
    with pytest.raises(Conflict):  # would re-point every tenant's busybox:latest
        retag = m.ImageTagParams(id=str(mine["id"]), repository="busybox", tag="latest")
        container_driver.image_tag(retag, make_ctx())
    with pytest.raises(Forbidden):
        container_driver.image_remove(m.ImageRemove(id=IMAGE), make_ctx())


def test_push_then_pull_back(
    container_driver: ContainerDriver, make_ctx: MakeCtx, push_registry: str, name: Name
) -> None:
    repo = name("pushed")
    built = build(container_driver, make_ctx(), f"{repo}:v1")
    progress = Progress()
    push = m.ImagePush(id=f"{repo}:v1", registry=push_registry, repository=f"nube/{repo}", tag="v1")
    pushed = container_driver.image_push(push, make_ctx(progress=progress))
    assert pushed["digest"].startswith("sha256:") and progress.reports[-1]["phase"] == "push"
    container_driver.image_remove(m.ImageRemove(id=built["id"], force=True), make_ctx())
    progress = Progress()
    pulled = container_driver.image_pull(
        m.ImagePull(image=pushed["reference"]), make_ctx(progress=progress)
    )
    assert pulled["id"] == built["id"] and pulled["tags"] == [pushed["reference"]]
    assert progress.reports[-1]["done"] is True
    out = run(
        container_driver,
        make_ctx(),
        image=pushed["reference"],
        command=["cat", "/hello.txt", "/built.txt"],
    )
    assert out["stdout"] == "hello from context\nbuilt\n"
    with pytest.raises(NotFound):
        container_driver.image_pull(
            m.ImagePull(image=f"{push_registry}/nube/absent:v1"), make_ctx()
        )
