"""Build, push to a local registry, remove, pull back, through the API (issue 3); the jobs of
the long operations report their progress."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import requests

from nube.tools.client import NubeClient
from tests.containers_api.conftest import IMAGE, events, inspect, ok

Name = Callable[[str], str]

DOCKERFILE = (
    f"FROM {IMAGE}\nCOPY hello.txt /hello.txt\nRUN echo built > /built.txt\n"
    'CMD ["cat", "/hello.txt", "/built.txt"]\n'
)


def finished(api: NubeClient, method: str, path: str, body: Any) -> dict[str, Any]:
    job = api.submit(method, path, body, wait=60)
    assert job["status"] == "succeeded", job
    return job


def assert_progress(job: dict[str, Any], phase: str) -> None:
    """The job reported progress of ``phase``: ``progress`` events and its last ``progress``."""
    assert "progress" in events(job), events(job)
    assert job["progress"]["phase"] == phase, job["progress"]
    assert events(job).index("progress") < events(job).index("succeeded")


def test_build_push_remove_pull_back(api: NubeClient, registry: str, name: Name) -> None:
    repo = name("img")
    files = {"hello.txt": base64.b64encode(b"hello from context\n").decode()}
    built_job = finished(
        api,
        "POST",
        "/v1/images/build",
        {"dockerfile": DOCKERFILE, "files": files, "tag": f"{repo}:v1", "labels": {"app": "demo"}},
    )
    built = built_job["result"]
    assert built["tags"] == [f"{repo}:v1"] and "COPY hello.txt" in built["log"]
    assert_progress(built_job, "build")
    assert built_job["progress"]["step"] == built_job["progress"]["steps"] >= 3
    engine_image = inspect("image", f"{repo}:v1")
    assert engine_image is not None and engine_image["Id"] == built["id"]
    labels = engine_image["Config"]["Labels"]
    assert labels["app"] == "demo" and labels["nube.tenant"] == api.tenant  # type: ignore[attr-defined]
    out = ok(api, "POST", "/v1/containers", {"image": f"{repo}:v1"})
    assert out["stdout"] == "hello from context\nbuilt\n"

    pushed_job = finished(
        api,
        "POST",
        f"/v1/images/{repo}:v1/push",
        {"registry": registry, "repository": f"nube/{repo}", "tag": "v1"},
    )
    pushed = pushed_job["result"]
    assert pushed["reference"] == f"{registry}/nube/{repo}:v1"
    assert pushed["digest"].startswith("sha256:")
    assert_progress(pushed_job, "push")
    tags = requests.get(f"http://{registry}/v2/nube/{repo}/tags/list", timeout=10).json()
    assert tags["tags"] == ["v1"]
    manifest = requests.head(
        f"http://{registry}/v2/nube/{repo}/manifests/v1",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        timeout=10,
    )
    assert manifest.headers["Docker-Content-Digest"] == pushed["digest"]

    short_id = built["id"].split(":")[1][:12]
    gone = ok(api, "DELETE", f"/v1/images/{short_id}", {"force": True})
    assert built["id"] in gone["deleted"]
    assert inspect("image", built["id"]) is None

    pulled_job = finished(api, "POST", "/v1/images/pull", {"image": pushed["reference"]})
    pulled = pulled_job["result"]
    assert pulled["id"] == built["id"] and pulled["tags"] == [pushed["reference"]]
    assert_progress(pulled_job, "pull")
    assert pulled_job["progress"]["done"] is True
    assert inspect("image", pushed["reference"])["Id"] == built["id"]  # type: ignore[index]
    out = ok(api, "POST", "/v1/containers", {"image": pushed["reference"]})
    assert out["stdout"] == "hello from context\nbuilt\n"
