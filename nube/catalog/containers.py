"""Container operations (Docker Engine), served by the ``containers`` queue."""

from __future__ import annotations

from pydantic import Field

from nube.catalog import Operation, Params
from nube.catalog.validators import EnvName, ImageRef


class ContainerRun(Params):
    """Create and start a container from an image; wait for it to exit."""

    image: ImageRef = Field(description="Image reference, e.g. `busybox:latest`")
    command: list[str] | None = Field(
        default=None, max_length=256, description="Command and arguments (exec form)"
    )
    env: dict[EnvName, str] = Field(
        default_factory=dict, description="Environment variables (values are never logged)"
    )


class ContainerList(Params):
    """List the caller's containers."""

    all: bool = Field(default=True, description="Include stopped containers")


OPERATIONS = [
    Operation(
        name="containers.run",
        params=ContainerRun,
        method="POST",
        path="/v1/containers",
        summary="Run a container to completion; the result holds its exit code and output",
        handler="run",
        time_limit=300,
        creates=True,
        target="image",
    ),
    Operation(
        name="containers.list",
        params=ContainerList,
        method="GET",
        path="/v1/containers",
        summary="List the caller's containers",
        handler="list",
        scope="read",
        time_limit=30,
    ),
]
