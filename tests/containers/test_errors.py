"""Docker errors are translated inside the driver; no docker.errors type escapes."""

from __future__ import annotations

import docker.errors
import pytest
import requests

from nube.catalog.container_models import ContainerList
from nube.errors import (
    BackendFailed,
    BackendUnavailable,
    Conflict,
    InvalidRequest,
    NotFound,
    NubeError,
)
from workers.drivers import JobContext
from workers.drivers.docker import DockerDriver
from workers.drivers.docker.errors import from_message, translated


def _api_error(status: int, explanation: str) -> docker.errors.APIError:
    response = requests.Response()
    response.status_code = status
    return docker.errors.APIError("engine said no", response=response, explanation=explanation)


@pytest.mark.parametrize(
    ("status", "explanation", "expected"),
    [
        (404, "No such container: web", NotFound),
        (409, 'Conflict. The container name "/web" is already in use', Conflict),
        (409, "Container abc is not running", Conflict),
        (403, "error while removing network: network n has active endpoints", Conflict),
        (500, "Bind for 127.0.0.1:80 failed: port is already allocated", Conflict),
        (
            500,
            'Get "http://127.0.0.1:1/v2/": dial tcp: connect: connection refused',
            BackendUnavailable,
        ),
        (500, "manifest for 127.0.0.1:5000/x:v1 not found: manifest unknown", NotFound),
        (400, "invalid reference format", InvalidRequest),
        (503, "daemon is restarting", BackendUnavailable),
        (500, "something odd", BackendFailed),
    ],
)
def test_api_errors_map_to_nube_errors(status: int, explanation: str, expected: type) -> None:
    with pytest.raises(expected) as info, translated():
        raise _api_error(status, explanation)
    assert isinstance(info.value.__cause__, docker.errors.APIError)


def test_not_found_names_kind_and_id() -> None:
    with pytest.raises(NotFound) as info, translated():
        raise _api_error(404, "No such container: web")
    assert info.value.details == {"kind": "container", "id": "web"}


@pytest.mark.parametrize(
    "error",
    [
        requests.exceptions.ConnectionError("refused"),
        requests.exceptions.ReadTimeout("slow"),
        docker.errors.DockerException("Error while fetching server API version: refused"),
    ],
)
def test_transport_errors_are_backend_unavailable(error: Exception) -> None:
    with pytest.raises(BackendUnavailable) as info, translated():
        raise error
    assert info.value.retryable and info.value.details["backend"] == "docker"


def test_stream_messages() -> None:
    assert isinstance(from_message("unauthorized: authentication required"), BackendFailed)
    assert isinstance(from_message("repository does not exist"), NotFound)


def test_unreachable_engine_is_backend_unavailable() -> None:
    driver = DockerDriver(base_url="unix:///nonexistent/docker.sock")
    ctx = JobContext(job_id="j", tenant="t", operation="containers.list")
    with pytest.raises(BackendUnavailable):
        driver.version()
    with pytest.raises(BackendUnavailable):
        driver.list(ContainerList(), ctx)


def test_engine_refusing_tcp_is_backend_unavailable() -> None:
    driver = DockerDriver(base_url="tcp://127.0.0.1:1")
    with pytest.raises(NubeError) as info:
        driver.version()
    assert isinstance(info.value, BackendUnavailable)
