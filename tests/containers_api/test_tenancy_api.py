"""Tenant isolation over HTTP (issue 3): another tenant's container, network and volume are
``not_found`` like missing ones, untouched on the engine, and absent from the lists. Names are
per tenant (issue 12): B creating a name A holds makes B's own, and learns nothing of A's."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
import requests

from nube.tools.client import ApiError, NubeClient
from tests.conftest import ClientFactory
from tests.containers_api.conftest import IMAGE, failed, inspect, ok, state
from workers.drivers.names import backend_name, tenant_prefix

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
        # B may not join A's network (its name means B's network, which B has not made)
        ("POST", "/v1/containers", {"image": IMAGE, "network": net, "command": ["true"]}),
        # nor reach A's by their backend names
        ("GET", f"/v1/containers/{backend_name(a.tenant, box)}", None),  # type: ignore[attr-defined]
        ("GET", f"/v1/container-volumes/{backend_name(a.tenant, vol)}", None),  # type: ignore[attr-defined]
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

    # nothing of A changed on the engine
    assert state(made["id"]) == "running"
    a_net, a_vol = (backend_name(a.tenant, n) for n in (net, vol))  # type: ignore[attr-defined]
    assert inspect("network", a_net) is not None and inspect("volume", a_vol) is not None

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
    assert inspect("network", a_net) is not None and inspect("volume", a_vol) is not None

    # and A's jobs are not B's
    with pytest.raises(ApiError) as info:
        b.job(a.submit("GET", "/v1/containers")["id"])
    assert info.value.status == 404 and info.value.code == "not_found"


def _request(client: NubeClient, method: str, path: str, body: Any) -> requests.Response:
    """One raw request with the client's token, waiting for the job (``Prefer: wait``)."""
    return client.session.request(
        method, client.url + path, json=body, headers={"Prefer": "wait=30"}, timeout=60
    )


def test_a_name_another_tenant_holds_is_free_for_b_and_b_sees_only_its_own(
    make_client: ClientFactory, name: Name
) -> None:
    a, b = make_client(), make_client()
    box, net, vol = name("web"), name("net"), name("vol")
    creates = [
        ("/v1/container-networks", {"name": net}),
        ("/v1/container-volumes", {"name": vol}),
        ("/v1/containers/create", {"image": IMAGE, "name": box, "network": net}),
    ]
    made: dict[str, list[dict[str, Any]]] = {}
    for client, who in ((a, "a"), (b, "b")):
        answers = [_request(client, "POST", path, body) for path, body in creates]
        assert [r.status_code for r in answers] == [201, 201, 201], [r.text for r in answers]
        made[who] = [r.json()["result"] for r in answers]
    a_box, b_box = made["a"][2], made["b"][2]
    assert (a_box["name"], b_box["name"]) == (box, box) and a_box["id"] != b_box["id"]
    # B's answers name nothing of A's, and no engine name (a volume's mountpoint is a host path)
    text = re.sub(r'"mountpoint": "[^"]*"', "", json.dumps(made["b"]))
    assert a_box["id"][:12] not in text and a.tenant not in text  # type: ignore[attr-defined]
    assert tenant_prefix(a.tenant) not in text and tenant_prefix(b.tenant) not in text  # type: ignore[attr-defined]

    # the engine holds both, each as its tenant's
    for client, container in ((a, a_box), (b, b_box)):
        seen = inspect("container", backend_name(client.tenant, box))  # type: ignore[attr-defined]
        assert seen is not None and seen["Id"] == container["id"]
        assert seen["Config"]["Labels"]["nube.tenant"] == client.tenant  # type: ignore[attr-defined]

    # each reads only its own under the name: 200 with its resource
    for client, container in ((a, a_box), (b, b_box)):
        got = client.session.get(f"{client.url}/v1/containers/{box}", timeout=60)
        assert got.status_code == 200 and got.json()["id"] == container["id"], got.text
        listed = client.session.get(f"{client.url}/v1/containers?all=true", timeout=60).json()
        assert [(c["id"], c["name"]) for c in listed["containers"]] == [(container["id"], box)]
        nets = client.session.get(f"{client.url}/v1/container-networks", timeout=60).json()
        assert [n["name"] for n in nets["networks"]] == [net]

    # a name the caller holds itself is still 409
    for client in (a, b):
        again = _request(client, "POST", "/v1/containers/create", {"image": IMAGE, "name": box})
        assert again.status_code == 409, again.text
        problem = again.json()
        assert problem["code"] == "conflict"
        assert problem["detail"] == f"the container name '{box}' is already in use"
        assert a_box["id"][:12] not in again.text and b_box["id"][:12] not in again.text
