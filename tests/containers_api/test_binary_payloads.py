"""Binary payloads through the API (issue 8, item 7): image archives, volume archives and build
contexts of several MiB travel base64 in the JSON body, through the sealed message path, to the
engine; a body over its limit is 413 problem+json and queues nothing.

The limits come from ``/v1/openapi.json`` (``x-nube-max-body-bytes``, ``x-nube-max-payload-bytes``),
so the test also checks that the document states the limits the API enforces.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from nube.tools.client import NubeClient
from nube.tools.devstack import PY, Stack, free_port
from tests.conftest import wait_http
from tests.containers_api.conftest import IMAGE, docker, inspect, ok

Name = Callable[[str], str]
MiB = 1024 * 1024
PAYLOAD_LIMIT = 16 * MiB
JSON_LIMIT = MiB  # NUBE_MAX_BODY_BYTES as the test stack runs (the default)


# --- helpers -------------------------------------------------------------------------------------


def openapi(api: NubeClient) -> dict[str, Any]:
    return dict(api.request("GET", "/v1/openapi.json").json())


def body_spec(doc: dict[str, Any], path: str, method: str = "post") -> dict[str, Any]:
    return dict(doc["paths"][path][method]["requestBody"])


def job_ids(api: NubeClient) -> set[str]:
    """The tenant's job list (``GET /v1/jobs``, up to 500)."""
    jobs = api.request("GET", "/v1/jobs", params={"limit": 500}).json()["jobs"]
    return {job["id"] for job in jobs}


def post_raw(api: NubeClient, path: str, data: Any) -> requests.Response:
    """POST ``data`` (bytes, or an iterator of bytes: chunked) as JSON, without the client's
    error handling."""
    return api.session.post(
        api.url + path, data=data, headers={"Content-Type": "application/json"}, timeout=120
    )


def assert_413(response: requests.Response, limit: int) -> dict[str, Any]:
    assert response.status_code == 413, (response.status_code, response.text[:500])
    assert response.headers["Content-Type"].startswith("application/problem+json")
    problem = dict(response.json())
    assert problem["code"] == "invalid_request" and problem["status"] == 413, problem
    assert problem["details"]["limit"] == limit, problem
    return problem


def archive_body(chars: int) -> bytes:
    """``{"archive": "<chars of base64>"}``: valid base64 text of ``chars`` characters."""
    return b'{"archive": "' + b"A" * chars + b'"}'


def padded_json(size: int) -> bytes:
    """A JSON object of exactly ``size`` bytes with one unknown field (422 when read)."""
    body = b'{"padding": "' + b"x" * (size - len(b'{"padding": ""}')) + b'"}'
    assert len(body) == size
    return body


def tar_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def big_image() -> Iterator[str]:
    """A local ~7 MB image made without any registry: ``docker import`` of a tar holding a
    static busybox (``/bin/busybox``, or the one in busybox:latest) and 5 MiB of random bytes;
    removed at the end (with anything it left tagged)."""
    ref = f"nube-binary-{uuid.uuid4().hex[:8]}:v1"
    root = Path(tempfile.mkdtemp(prefix="nube-binary-"))
    try:
        (root / "bin").mkdir()
        busybox = root / "bin" / "busybox"
        if Path("/bin/busybox").is_file():
            shutil.copy("/bin/busybox", busybox)
        else:
            busybox.write_bytes(
                subprocess.run(
                    ["docker", "run", "--rm", IMAGE, "cat", "/bin/busybox"],
                    capture_output=True,
                    check=True,
                    timeout=60,
                ).stdout
            )
        busybox.chmod(0o755)
        (root / "data").mkdir()
        (root / "data" / "blob").write_bytes(os.urandom(5 * MiB))
        tar = subprocess.run(["tar", "-C", str(root), "-cf", "-", "."], capture_output=True)
        imported = subprocess.run(
            ["docker", "import", "-c", 'CMD ["/bin/busybox", "true"]', "-", ref],
            input=tar.stdout,
            capture_output=True,
            timeout=120,
        )
        assert imported.returncode == 0, imported.stderr
        yield ref
    finally:
        shutil.rmtree(root, ignore_errors=True)
        docker("rmi", "-f", ref)


# --- the documented limits -----------------------------------------------------------------------


def test_openapi_states_the_body_limits(api: NubeClient) -> None:
    doc = openapi(api)
    binary_limit = (PAYLOAD_LIMIT + 2) // 3 * 4 + JSON_LIMIT
    for path in ("/v1/images/load", "/v1/container-volumes/{name}/restore", "/v1/images/build"):
        spec = body_spec(doc, path)
        assert spec["x-nube-max-body-bytes"] == binary_limit, (path, spec)
        assert spec["x-nube-max-payload-bytes"] == PAYLOAD_LIMIT, (path, spec)
        assert "16 MiB" in spec["description"], spec["description"]
        responses = doc["paths"][path]["post"]["responses"]
        assert "413" in responses and str(binary_limit) in responses["413"]["description"]
    archive = body_spec(doc, "/v1/images/load")["content"]["application/json"]["schema"]
    assert archive["properties"]["archive"]["maxLength"] == (PAYLOAD_LIMIT + 2) // 3 * 4
    # an ordinary JSON body keeps the small limit
    for path in ("/v1/containers", "/v1/container-volumes", "/v1/images/pull"):
        spec = body_spec(doc, path)
        assert spec["x-nube-max-body-bytes"] == JSON_LIMIT, (path, spec)
        assert "x-nube-max-payload-bytes" not in spec
        assert "413" in doc["paths"][path]["post"]["responses"]
    assert str(JSON_LIMIT) in doc["info"]["description"]


# --- payloads of several MiB go through ----------------------------------------------------------


def test_save_remove_and_load_a_5_mib_image(api: NubeClient, big_image: str) -> None:
    before = inspect("image", big_image)
    assert before is not None

    saved = ok(api, "POST", f"/v1/images/{big_image}/save", {})
    raw = base64.b64decode(saved["archive"])
    assert saved["size"] == len(raw) > 5 * MiB, saved["size"]
    assert saved["id"] == before["Id"]
    body_size = len(f'{{"archive": "{saved["archive"]}"}}')
    assert body_size > 4 * JSON_LIMIT  # far over the old 1 MiB limit for every body
    print(f"\nimage archive {len(raw)} bytes, load body {body_size} bytes")

    assert docker("rmi", big_image).returncode == 0
    assert inspect("image", big_image) is None

    loaded = ok(api, "POST", "/v1/images/load", {"archive": saved["archive"]})
    assert loaded["images"] == [{"id": before["Id"], "tags": [big_image]}], loaded
    after = inspect("image", big_image)
    assert after is not None and after["Id"] == before["Id"]
    assert after["Size"] == before["Size"]


def test_restore_and_back_up_a_5_mib_volume(api: NubeClient, name: Name) -> None:
    blob = os.urandom(5 * MiB)
    archive = tar_of({"blob": blob, "dir/small": b"small\n"})
    volume = name("big")
    try:
        restored = ok(
            api,
            "POST",
            f"/v1/container-volumes/{volume}/restore",
            {"archive": base64.b64encode(archive).decode()},
        )
        assert restored == {"name": volume, "size": len(archive)}
        assert inspect("volume", volume) is not None
        print(f"\nvolume archive {len(archive)} bytes restored")

        backup = ok(api, "POST", f"/v1/container-volumes/{volume}/backup", {})
        with tarfile.open(fileobj=io.BytesIO(base64.b64decode(backup["archive"]))) as tar:
            member = tar.extractfile("./blob")
            assert member is not None
            assert hashlib.sha256(member.read()).digest() == hashlib.sha256(blob).digest()
    finally:
        docker("volume", "rm", "-f", volume)


def test_build_with_a_5_mib_context_file(api: NubeClient, name: Name) -> None:
    blob = os.urandom(5 * MiB)
    tag = f"{name('ctx')}:v1"
    built = ok(
        api,
        "POST",
        "/v1/images/build",
        {
            "dockerfile": f"FROM {IMAGE}\nCOPY blob /blob\n",
            "files": {"blob": base64.b64encode(blob).decode()},
            "tag": tag,
        },
    )
    try:
        image = inspect("image", tag)
        assert image is not None and image["Id"] == built["id"]
        assert image["Size"] > 5 * MiB
    finally:
        docker("rmi", "-f", tag)


# --- over the limit: 413, nothing queued ---------------------------------------------------------


def test_a_body_just_over_its_limit_is_413_and_queues_nothing(api: NubeClient) -> None:
    doc = openapi(api)
    load_limit = body_spec(doc, "/v1/images/load")["x-nube-max-body-bytes"]
    restore_limit = body_spec(doc, "/v1/container-volumes/{name}/restore")["x-nube-max-body-bytes"]
    json_limit = body_spec(doc, "/v1/container-volumes")["x-nube-max-body-bytes"]
    before = job_ids(api)
    wrapper = len(archive_body(0))

    # the whole body one byte over the binary limit (image load, volume restore)
    body = archive_body(load_limit - wrapper + 1)
    assert len(body) == load_limit + 1
    assert_413(post_raw(api, "/v1/images/load", body), load_limit)
    body = archive_body(restore_limit - wrapper + 1)
    assert_413(post_raw(api, "/v1/container-volumes/nope/restore", body), restore_limit)

    # the same without Content-Length (chunked): cut at the limit, still 413
    def chunks() -> Iterator[bytes]:
        yield body[:wrapper]
        for start in range(wrapper, len(body), MiB):
            yield body[start : start + MiB]

    assert_413(post_raw(api, "/v1/images/load", chunks()), load_limit)

    # the payload one byte over 16 MiB decoded, in a body under the limit
    over = base64.b64encode(bytes(PAYLOAD_LIMIT + 1))
    body = b'{"archive": "' + over + b'"}'
    assert len(body) < load_limit
    problem = assert_413(post_raw(api, "/v1/images/load", body), PAYLOAD_LIMIT)
    assert "16777216" in problem["detail"]
    files = {"a": "A" * (PAYLOAD_LIMIT // 3 * 2), "b": "A" * (PAYLOAD_LIMIT // 3 * 2 + 4)}
    response = api.session.post(
        api.url + "/v1/images/build", json={"dockerfile": "FROM scratch\n", "files": files}
    )
    assert_413(response, PAYLOAD_LIMIT)

    # an ordinary JSON body one byte over its limit
    body = padded_json(json_limit + 1)
    assert len(body) == json_limit + 1
    assert_413(post_raw(api, "/v1/container-volumes", body), json_limit)

    assert job_ids(api) == before
    # and the API still serves the tenant afterwards
    assert ok(api, "GET", "/v1/container-volumes")["volumes"] == []


def test_a_body_at_the_json_limit_is_not_refused_for_its_size(api: NubeClient) -> None:
    """1 MiB exactly on a JSON route, and more on a binary one: validation, not size, decides."""
    before = job_ids(api)
    body = padded_json(JSON_LIMIT)
    response = post_raw(api, "/v1/container-volumes", body)
    assert response.status_code == 422, response.text[:300]  # the unknown field, not the size
    response = post_raw(api, "/v1/images/load", archive_body(4 * JSON_LIMIT)[:-2] + b'!"}')
    assert response.status_code == 422, response.text[:300]  # not base64
    assert job_ids(api) == before


# --- NUBE_MAX_BODY_BYTES moves both limits -------------------------------------------------------


@pytest.fixture
def api_2mib(stack: Stack) -> Iterator[str]:
    """A second API process on the shared stack with ``NUBE_MAX_BODY_BYTES`` = 2 MiB."""
    port = free_port()
    name = f"api-2mib-{port}"
    stack.spawn(
        name,
        [PY, "-m", "gunicorn", "-c", "api/gunicorn_conf.py", "api.app:create_app()"],
        NUBE_API_BIND=f"127.0.0.1:{port}",
        NUBE_MAX_BODY_BYTES=str(2 * MiB),
        NUBE_API_WORKERS="1",
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        stack.stop(name)


def test_the_json_limit_is_a_setting(api: NubeClient, api_2mib: str) -> None:
    bearer = api.session.headers["Authorization"]
    assert isinstance(bearer, str)
    other = NubeClient(api_2mib, bearer.split(" ", 1)[1])
    doc = openapi(other)
    assert body_spec(doc, "/v1/container-volumes")["x-nube-max-body-bytes"] == 2 * MiB
    binary_limit = (PAYLOAD_LIMIT + 2) // 3 * 4 + 2 * MiB
    assert body_spec(doc, "/v1/images/load")["x-nube-max-body-bytes"] == binary_limit
    before = job_ids(api)
    assert post_raw(other, "/v1/container-volumes", padded_json(2 * MiB)).status_code == 422
    assert_413(post_raw(other, "/v1/container-volumes", padded_json(2 * MiB + 1)), 2 * MiB)
    body = archive_body(binary_limit - len(archive_body(0)) + 1)
    assert_413(post_raw(other, "/v1/images/load", body), binary_limit)
    assert job_ids(api) == before
