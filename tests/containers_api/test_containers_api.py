"""Containers through the API and the broker (issue 3): lifecycle, ports, exec, logs, diff,
commit and the image operations, each effect confirmed with ``docker inspect`` or HTTP."""

from __future__ import annotations

import time
from collections.abc import Callable

import requests

from nube.tools.client import NubeClient
from tests.conftest import wait_http
from tests.containers_api.conftest import IMAGE, docker, inspect, ok, state
from workers.drivers.names import backend_name

Name = Callable[[str], str]


def test_lifecycle_through_the_api(api: NubeClient, name: Name) -> None:
    first = name("life")
    made = ok(
        api,
        "POST",
        "/v1/containers/create",
        {
            "image": IMAGE,
            "name": first,
            "command": ["sleep", "300"],
            "labels": {"app": "life"},
            "env": {"SECRET": "s3cr3t"},
            "memory": "32m",
            "pids_limit": 64,
        },
    )
    cid = made["id"]
    attrs = inspect("container", cid)
    assert attrs is not None and attrs["State"]["Status"] == "created"
    labels = attrs["Config"]["Labels"]
    assert labels["nube.tenant"] == api.tenant and labels["app"] == "life"  # type: ignore[attr-defined]
    assert attrs["HostConfig"]["Memory"] == 32 * 1024 * 1024
    assert "s3cr3t" not in str(made) and "SECRET" in made["config"]["env_names"]

    c = f"/v1/containers/{first}"
    for action, body, expected in [
        ("start", {}, "running"),
        ("pause", {}, "paused"),
        ("unpause", {}, "running"),
        ("restart", {"timeout": 1}, "running"),
        ("stop", {"timeout": 1}, "exited"),
        ("start", {}, "running"),
    ]:
        assert ok(api, "POST", f"{c}/{action}", body)["state"] == expected, action
        assert state(cid) == expected, action

    # the reads, on the running container
    seen = ok(api, "GET", c)
    assert (seen["id"], seen["name"], seen["state"]) == (cid, first, "running")
    assert seen["host_config"]["pids_limit"] == 64
    listed = ok(api, "GET", "/v1/containers", params={"label": "app=life"})["containers"]
    assert [(x["id"], x["state"]) for x in listed] == [(cid, "running")]
    assert ok(api, "GET", "/v1/containers", params={"status": "exited"})["containers"] == []
    assert "logs" in ok(api, "GET", f"{c}/logs", params={"tail": 5})
    stats = ok(api, "GET", f"{c}/stats")
    assert stats["memory"]["limit"] == 32 * 1024 * 1024 and stats["pids"] >= 1
    assert ok(api, "GET", f"{c}/port")["ports"] == []
    assert ok(api, "GET", f"{c}/diff")["changes"] == []
    second = name("renamed")
    assert ok(api, "POST", f"{c}/rename", {"name": second})["name"] == second
    engine_name = backend_name(api.tenant, second)  # type: ignore[attr-defined]
    assert inspect("container", cid)["Name"] == f"/{engine_name}"  # type: ignore[index]

    c = f"/v1/containers/{second}"
    assert ok(api, "POST", f"{c}/kill", {"signal": "SIGKILL"})["state"] == "exited"
    attrs = inspect("container", cid)
    assert attrs is not None and attrs["State"]["Status"] == "exited"
    assert attrs["State"]["ExitCode"] == 137
    assert ok(api, "DELETE", c, {})["removed"] is True
    assert inspect("container", cid) is None
    assert failed_code(api, "GET", c) == "not_found"


def failed_code(api: NubeClient, method: str, path: str) -> str:
    job = api.submit(method, path, wait=30)
    assert job["status"] == "failed", job
    return str(job["error"]["code"])


def test_port_mapping_serves_http_on_a_random_host_port(api: NubeClient) -> None:
    script = "mkdir -p /www && echo hello-api > /www/index.html && httpd -f -p 8080 -h /www"
    run = ok(
        api,
        "POST",
        "/v1/containers",
        {
            "image": IMAGE,
            "detach": True,
            "command": ["sh", "-c", script],
            "ports": ["127.0.0.1::8080"],
        },
    )
    assert run["state"] == "running"
    ports = ok(api, "GET", f"/v1/containers/{run['id']}/port")["ports"]
    assert len(ports) == 1, ports
    mapping = ports[0]
    assert (mapping["container_port"], mapping["protocol"], mapping["host_ip"]) == (
        8080,
        "tcp",
        "127.0.0.1",
    )
    bound = inspect("container", run["id"])["NetworkSettings"]["Ports"]["8080/tcp"]  # type: ignore[index]
    assert bound == [{"HostIp": "127.0.0.1", "HostPort": str(mapping["host_port"])}]
    url = f"http://127.0.0.1:{mapping['host_port']}/index.html"
    deadline = time.monotonic() + 10
    while (response := wait_http(url)).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.1)  # httpd answers 404 until the script wrote the page
    assert response.text == "hello-api\n"
    ok(api, "DELETE", f"/v1/containers/{run['id']}", {"force": True})
    try:
        requests.get(url, timeout=2)
    except requests.ConnectionError:
        pass
    else:
        raise AssertionError(f"{url} still answers after the container was removed")


def test_exec_logs_diff_commit_and_images(api: NubeClient, name: Name) -> None:
    script = "echo line1; echo oops >&2; echo committed > /added.txt; exec sleep 300"
    run = ok(
        api,
        "POST",
        "/v1/containers",
        {"image": IMAGE, "detach": True, "command": ["sh", "-c", script]},
    )
    c = f"/v1/containers/{run['id']}"
    # exec: real output, exit code, env and workdir; it waits until the script wrote its file
    wait_file = "while [ ! -f /added.txt ]; do sleep 0.05; done"
    out = ok(
        api,
        "POST",
        f"{c}/exec",
        {
            "command": ["sh", "-c", f"{wait_file}; echo $GREETING; pwd; cat /added.txt; exit 4"],
            "env": {"GREETING": "hi"},
            "workdir": "/tmp",
        },
    )
    assert (out["exit_code"], out["stdout"]) == (4, "hi\n/tmp\ncommitted\n")
    missing = ok(api, "POST", f"{c}/exec", {"command": ["no-such-binary"]})
    assert missing["exit_code"] in (126, 127)
    logs = ok(api, "GET", f"{c}/logs")["logs"]
    assert sorted(logs.splitlines()) == ["line1", "oops"], logs
    stamped = ok(api, "GET", f"{c}/logs", params={"tail": 1, "timestamps": "true"})["logs"]
    assert stamped.startswith("20") and stamped.strip().endswith(("line1", "oops"))
    # diff shows the added file, as docker diff does
    changes = ok(api, "GET", f"{c}/diff")["changes"]
    assert {"path": "/added.txt", "kind": "added"} in changes
    assert "A /added.txt" in docker("diff", run["id"]).stdout.splitlines()
    # commit: an image of the tenant, whose containers hold the file
    repo = name("commit")
    image = ok(
        api,
        "POST",
        f"{c}/commit",
        {"repository": repo, "tag": "v1", "author": "Ada", "message": "add a file"},
    )
    assert image["tags"] == [f"{repo}:v1"]
    engine_image = inspect("image", f"{repo}:v1")
    assert engine_image is not None and engine_image["Id"] == image["id"]
    assert engine_image["Config"]["Labels"]["nube.tenant"] == api.tenant  # type: ignore[attr-defined]
    assert (engine_image["Author"], engine_image["Comment"]) == ("Ada", "add a file")
    out = ok(
        api, "POST", "/v1/containers", {"image": f"{repo}:v1", "command": ["cat", "/added.txt"]}
    )
    assert (out["exit_code"], out["stdout"]) == (0, "committed\n")
    # images: list, inspect, history, tag, remove
    listed = ok(api, "GET", "/v1/images", params={"name": repo})["images"]
    assert [(i["id"], i["tags"]) for i in listed] == [(image["id"], [f"{repo}:v1"])]
    seen = ok(api, "GET", f"/v1/images/{repo}:v1")
    assert seen["id"] == image["id"] and seen["author"] == "Ada"
    layers = ok(api, "GET", f"/v1/images/{repo}:v1/history")["layers"]
    assert len(layers) >= 2 and layers[0]["comment"] == "add a file", layers[0]
    ok(api, "POST", f"/v1/images/{repo}:v1/tag", {"repository": repo, "tag": "v2"})
    assert inspect("image", f"{repo}:v2")["Id"] == image["id"]  # type: ignore[index]
    ok(api, "DELETE", f"/v1/images/{repo}:v2", {})
    assert inspect("image", f"{repo}:v2") is None
    assert inspect("image", f"{repo}:v1") is not None  # untagged only
    ok(api, "DELETE", f"/v1/images/{image['id'].split(':')[1][:12]}", {"force": True})
    assert inspect("image", image["id"]) is None
