"""Body limits of the VM routes (issue 8, item 7): every VM operation takes an ordinary JSON
body (none carries a binary payload), limited to ``NUBE_MAX_BODY_BYTES`` (1 MiB by default) as
``/v1/openapi.json`` states; one byte more is 413 problem+json and no job is created.

Nothing here reaches libvirt: the API refuses the bodies before anything is queued.
"""

from __future__ import annotations

from typing import Any

import requests

from nube.tools.client import NubeClient
from nube.tools.devstack import Stack

JSON_LIMIT = 1024 * 1024  # NUBE_MAX_BODY_BYTES as the test stack runs (the default)
PAYLOAD_LIMIT = 16 * 1024 * 1024  # nube.catalog.PAYLOAD_LIMIT
ROUTES = (
    "/v1/vms",
    "/v1/vms/{name}/start",
    "/v1/storage-pools",
    "/v1/storage-pools/{pool}/volumes",
    "/v1/vm-networks",
)


def padded_json(size: int) -> bytes:
    """A JSON object of exactly ``size`` bytes with one unknown field (422 when read)."""
    body = b'{"padding": "' + b"x" * (size - len(b'{"padding": ""}')) + b'"}'
    assert len(body) == size
    return body


def post(client: NubeClient, path: str, body: bytes) -> requests.Response:
    return client.session.post(
        client.url + path, data=body, headers={"Content-Type": "application/json"}, timeout=60
    )


def job_ids(client: NubeClient) -> set[str]:
    jobs = client.request("GET", "/v1/jobs", params={"limit": 500}).json()["jobs"]
    return {job["id"] for job in jobs}


def test_openapi_states_the_json_limit_of_vm_routes(stack: Stack, make_client: Any) -> None:
    doc = make_client().request("GET", "/v1/openapi.json").json()
    for path in ROUTES:
        spec = doc["paths"][path]["post"]
        assert spec["requestBody"]["x-nube-max-body-bytes"] == JSON_LIMIT, path
        assert "x-nube-max-payload-bytes" not in spec["requestBody"], path
        assert str(JSON_LIMIT) in spec["responses"]["413"]["description"], path
    vm_ops = {
        (path, method): spec
        for path, methods in doc["paths"].items()
        for method, spec in methods.items()
        if path.startswith(("/v1/vms", "/v1/storage-pools", "/v1/vm-networks"))
        and "requestBody" in spec
    }
    # one VM route carries a binary payload: a volume's content, base64, at most 16 MiB
    content = vm_ops.pop(("/v1/storage-pools/{pool}/volumes/{name}/content", "put"))
    assert content["requestBody"]["x-nube-max-payload-bytes"] == PAYLOAD_LIMIT
    assert content["requestBody"]["x-nube-max-body-bytes"] > PAYLOAD_LIMIT * 4 // 3
    bodies = [s["requestBody"] for s in vm_ops.values()]
    assert bodies and all(b["x-nube-max-body-bytes"] == JSON_LIMIT for b in bodies)


def test_a_vm_body_over_the_limit_is_413_and_queues_nothing(stack: Stack, make_client: Any) -> None:
    client = make_client()
    admin = make_client(tenant=client.tenant, scopes=("admin",))
    before = job_ids(client)
    for who, path in (
        (client, "/v1/vms"),
        (client, "/v1/vms/nubetest-api-big/restore"),
        (client, "/v1/storage-pools/nubetest-api-pool/volumes"),
        (admin, "/v1/storage-pools"),
    ):
        response = post(who, path, padded_json(JSON_LIMIT + 1))
        assert response.status_code == 413, (path, response.status_code, response.text[:300])
        assert response.headers["Content-Type"].startswith("application/problem+json")
        problem = response.json()
        assert problem["code"] == "invalid_request", problem
        assert problem["details"] == {"limit": JSON_LIMIT}, problem
        # at the limit the size is fine: the unknown field is what is refused
        response = post(who, path, padded_json(JSON_LIMIT))
        assert response.status_code == 422, (path, response.status_code, response.text[:300])
    assert job_ids(client) == before
