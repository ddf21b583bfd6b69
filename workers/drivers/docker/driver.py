"""The Docker Engine implementation of :class:`ContainerDriver`, composed from mixins."""

from __future__ import annotations

from workers.drivers.containers import ContainerDriver
from workers.drivers.docker.builds import BuildsMixin
from workers.drivers.docker.container_io import ContainerIOMixin
from workers.drivers.docker.containers import ContainersMixin
from workers.drivers.docker.errors import translate_all, translated
from workers.drivers.docker.images import ImagesMixin
from workers.drivers.docker.networks import NetworksMixin
from workers.drivers.docker.volumes import VolumesMixin

_OPERATIONS = frozenset(ContainerDriver.__abstractmethods__)


@translate_all(_OPERATIONS)
class DockerDriver(
    ContainersMixin,
    ContainerIOMixin,
    NetworksMixin,
    VolumesMixin,
    ImagesMixin,
    BuildsMixin,
    ContainerDriver,
):
    """Runs container operations on one Docker Engine through the Docker SDK.

    ``base_url`` is the engine socket (``unix:///var/run/docker.sock``, ``tcp://...``); None
    reads ``DOCKER_HOST`` and friends like the ``docker`` CLI. Every operation method is wrapped
    so that only :mod:`nube.errors` leave it.
    """

    name = "docker"

    def version(self) -> str:
        """The engine version, e.g. ``20.10.24``."""
        return str(self.client.version().get("Version", "unknown"))

    def close(self) -> None:
        """Close the engine connection; the next call opens a new one."""
        if self._client is not None:
            with translated():
                self._client.close()
            self._client = None
