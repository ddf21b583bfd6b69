"""User networks and volumes through the API and the broker (issue 3), confirmed on the engine."""

from __future__ import annotations

import base64
import io
import random
import tarfile
from collections.abc import Callable
from typing import Any

from nube.tools.client import NubeClient
from tests.containers_api.conftest import IMAGE, failed, inspect, ok
from workers.drivers.names import backend_name

Name = Callable[[str], str]

SERVE = ["sh", "-c", "while true; do echo pong | nc -l -p 1234; done"]


def ask(host: str) -> list[str]:
    """A client that retries until the server listens."""
    return ["sh", "-c", f"for i in $(seq 50); do nc {host} 1234 && exit 0; sleep 0.1; done; exit 1"]


def run(api: NubeClient, **spec: Any) -> dict[str, Any]:
    result: dict[str, Any] = ok(api, "POST", "/v1/containers", {"image": IMAGE} | spec)
    return result


def test_user_network_name_resolution_connect_with_alias_and_removal(
    api: NubeClient, name: Name
) -> None:
    subnet = f"10.{random.randint(216, 239)}.{random.randint(0, 255)}.0/24"
    front = ok(
        api,
        "POST",
        "/v1/container-networks",
        {"name": name("front"), "subnet": subnet, "labels": {"app": "shop"}},
    )
    engine_net = inspect("network", front["id"])
    assert engine_net is not None and engine_net["Driver"] == "bridge"
    assert engine_net["IPAM"]["Config"][0]["Subnet"] == subnet
    assert engine_net["Labels"]["nube.tenant"] == api.tenant  # type: ignore[attr-defined]

    # two containers on one user network: the second reaches the first by name
    server = name("server")
    served = run(api, name=server, network=front["name"], detach=True, command=SERVE)
    out = run(api, network=front["name"], command=ask(server))
    assert (out["exit_code"], out["stdout"]) == (0, "pong\n")

    # connect the server to a second network with an alias; a client there reaches the alias
    back = ok(api, "POST", "/v1/container-networks", {"name": name("back"), "internal": True})
    assert inspect("network", back["id"])["Internal"] is True  # type: ignore[index]
    n = f"/v1/container-networks/{back['name']}"
    ok(api, "POST", f"{n}/connect", {"container": server, "aliases": ["db"]})
    joined = inspect("container", served["id"])["NetworkSettings"]["Networks"]  # type: ignore[index]
    engine_front, engine_back = (backend_name(api.tenant, n) for n in (front["name"], back["name"]))  # type: ignore[attr-defined]
    assert set(joined) == {engine_front, engine_back}
    assert "db" in joined[engine_back]["Aliases"]
    out = run(api, network=back["name"], command=ask("db"))
    assert (out["exit_code"], out["stdout"]) == (0, "pong\n")

    # inspect and list
    seen = ok(api, "GET", n)
    assert seen["internal"] is True
    assert [c["name"] for c in seen["containers"].values()] == [server]
    listed = ok(api, "GET", "/v1/container-networks")["networks"]
    assert {x["name"] for x in listed} == {front["name"], back["name"]}
    by_label = ok(api, "GET", "/v1/container-networks", params={"label": "app=shop"})
    assert [x["id"] for x in by_label["networks"]] == [front["id"]]

    # in use: not removed; disconnected: gone from the container, the alias no longer resolves
    assert failed(api, "DELETE", n, {})["error"]["code"] == "conflict"
    assert inspect("network", back["id"]) is not None
    ok(api, "POST", f"{n}/disconnect", {"container": server})
    joined = inspect("container", served["id"])["NetworkSettings"]["Networks"]  # type: ignore[index]
    assert set(joined) == {engine_front}
    out = run(api, network=back["name"], command=["nc", "-w", "1", "db", "1234"])
    assert out["exit_code"] != 0 and out["stdout"] == ""
    assert ok(api, "DELETE", n, {})["removed"] is True
    assert inspect("network", back["id"]) is None

    # prune removes the tenant's unused networks only
    spare = ok(api, "POST", "/v1/container-networks", {"name": name("spare")})
    pruned = ok(api, "POST", "/v1/container-networks/prune", {})["deleted"]
    assert pruned == [spare["name"]]
    assert inspect("network", spare["id"]) is None
    assert inspect("network", front["id"]) is not None  # the server still uses it


def test_volume_sharing_backup_restore_and_prune(api: NubeClient, name: Name) -> None:
    src = ok(api, "POST", "/v1/container-volumes", {"name": name("src"), "labels": {"app": "db"}})
    engine_vol = inspect("volume", src["name"])
    assert engine_vol is not None
    assert engine_vol["Labels"]["nube.tenant"] == api.tenant  # type: ignore[attr-defined]
    assert engine_vol["Labels"]["app"] == "db"

    # one container writes, another reads
    write = "mkdir /data/d && echo one > /data/a && echo two > /data/d/b"
    assert run(api, volumes=[f"{src['name']}:/data"], command=["sh", "-c", write])["exit_code"] == 0
    out = run(api, volumes=[f"{src['name']}:/data:ro"], command=["cat", "/data/a", "/data/d/b"])
    assert (out["exit_code"], out["stdout"]) == (0, "one\ntwo\n")

    # backup → restore into another volume → read back there
    backup = ok(api, "POST", f"/v1/container-volumes/{src['name']}/backup", {})
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(backup["archive"]))) as tar:
        assert {"./a", "./d/b"} <= set(tar.getnames())
    dst = name("dst")
    restored = ok(
        api, "POST", f"/v1/container-volumes/{dst}/restore", {"archive": backup["archive"]}
    )
    assert restored["size"] == backup["size"]
    assert inspect("volume", dst)["Labels"]["nube.tenant"] == api.tenant  # type: ignore[index,attr-defined]
    out = run(api, volumes=[f"{dst}:/data"], command=["sh", "-c", "cat /data/a /data/d/b"])
    assert out["stdout"] == "one\ntwo\n"

    # inspect, list, prune (an unused anonymous volume goes; one in use stays)
    assert ok(api, "GET", f"/v1/container-volumes/{src['name']}")["labels"]["app"] == "db"
    run(api, volumes=[f"{src['name']}:/data"], detach=True, command=["sleep", "300"])
    spare = ok(api, "POST", "/v1/container-volumes", {})
    listed = {v["name"] for v in ok(api, "GET", "/v1/container-volumes")["volumes"]}
    assert listed == {src["name"], dst, spare["name"]}
    assert failed(api, "DELETE", f"/v1/container-volumes/{src['name']}", {})["error"]["code"] == (
        "conflict"
    )
    pruned = set(ok(api, "POST", "/v1/container-volumes/prune", {})["deleted"])
    assert spare["name"] in pruned and src["name"] not in pruned
    assert inspect("volume", spare["name"]) is None
    assert inspect("volume", src["name"]) is not None
