"""Tenant isolation over HTTP (issue 3): another tenant's container, network and volume are
``not_found`` like missing ones, untouched on the engine, and absent from the lists."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from nube.tools.client import ApiError
from tests.conftest import ClientFactory
from tests.containers_api.conftest import IMAGE, failed, inspect, ok, state

Name = Callable[[str], str]


def test_tenant_b_cannot_see_or_touch_tenant_a_resources(
    make_client: ClientFactory, name: Name
) -> None:
    a, b = make_client(), make_client()
    vol = ok(a, "POST", "/v1/container-volumes", {"name": name("vol")})["name"]
    net = ok(a, "POST", "/v1/container-networks", {"name": name("net")})["name"]
    box = name("box")
    made = ok(
        a,
        "POST",
        "/v1/containers",
        {
            "image": IMAGE,
            "name": box,
            "detach": True,
            "network": net,
            "volumes": [f"{vol}:/data"],
            "command": ["sleep", "300"],
        },
    )
    mine = ok(b, "POST", "/v1/container-volumes", {"name": name("mine")})["name"]

    attempts = [
        ("GET", f"/v1/containers/{box}", None),
        ("GET", f"/v1/containers/{made['id']}", None),
        ("GET", f"/v1/containers/{made['id'][:12]}/logs", None),
        ("POST", f"/v1/containers/{box}/stop", {"timeout": 0}),
        ("POST", f"/v1/containers/{box}/exec", {"command": ["true"]}),
        ("DELETE", f"/v1/containers/{box}", {"force": True}),
        ("GET", f"/v1/container-networks/{net}", None),
        ("POST", f"/v1/container-networks/{net}/connect", {"container": box}),
        ("DELETE", f"/v1/container-networks/{net}", {}),
        ("GET", f"/v1/container-volumes/{vol}", None),
        ("POST", f"/v1/container-volumes/{vol}/backup", {}),
        ("DELETE", f"/v1/container-volumes/{vol}", {"force": True}),
        # B may not join A's network nor mount A's volume with a container of its own
        ("POST", "/v1/containers", {"image": IMAGE, "network": net, "command": ["true"]}),
        ("POST", "/v1/containers", {"image": IMAGE, "volumes": [f"{vol}:/d"], "command": ["true"]}),
    ]
    for method, path, body in attempts:
        job = failed(b, method, path, body)
        assert job["error"]["code"] == "not_found", (method, path, job["error"])
        assert job["attempts"] == 1

    # a missing name and another tenant's name look alike
    missing = failed(b, "GET", f"/v1/containers/{name('nobody')}")["error"]
    foreign = failed(b, "GET", f"/v1/containers/{box}")["error"]
    assert missing["code"] == foreign["code"] == "not_found"
    assert set(missing) == set(foreign)

    # names are per engine: A's name is taken for B too (conflict, not a second container)
    taken = failed(b, "POST", "/v1/containers/create", {"image": IMAGE, "name": box})
    assert taken["error"]["code"] == "conflict"

    # nothing of A changed on the engine
    assert state(made["id"]) == "running"
    assert inspect("network", net) is not None and inspect("volume", vol) is not None

    # lists show only the caller's
    assert ok(b, "GET", "/v1/containers")["containers"] == []
    assert ok(b, "GET", "/v1/container-networks")["networks"] == []
    assert [v["name"] for v in ok(b, "GET", "/v1/container-volumes")["volumes"]] == [mine]
    assert [c["id"] for c in ok(a, "GET", "/v1/containers")["containers"]] == [made["id"]]
    assert [n["name"] for n in ok(a, "GET", "/v1/container-networks")["networks"]] == [net]
    assert [v["name"] for v in ok(a, "GET", "/v1/container-volumes")["volumes"]] == [vol]

    # B's prunes leave A's unused resources alone
    ok(a, "DELETE", f"/v1/containers/{box}", {"force": True})
    assert ok(b, "POST", "/v1/container-networks/prune", {})["deleted"] == []
    assert ok(b, "POST", "/v1/container-volumes/prune", {})["deleted"] == [mine]
    assert inspect("network", net) is not None and inspect("volume", vol) is not None

    # and A's jobs are not B's
    with pytest.raises(ApiError) as info:
        b.job(a.submit("GET", "/v1/containers")["id"])
    assert info.value.status == 404 and info.value.code == "not_found"
