"""An in-memory :class:`~workers.drivers.containers.ContainerDriver`, like Nova's ``virt/fake.py``.

Containers, images, networks and volumes live in dicts; a container's program is a tiny shell
(:mod:`.programs`) over an in-memory file system, so ``run`` returns real output, volumes keep
what containers write, and commit, build, save and load carry files. Contracts are the Docker
driver's: creates keyed by the ``nube.job`` label, tenancy by ``nube.tenant``, the engine's
``NotFound`` and ``Conflict`` cases (names taken, ports allocated, resources in use).
"""

from __future__ import annotations

from collections.abc import Iterable

from workers.drivers.containers import ContainerDriver
from workers.drivers.fake.common import serialized
from workers.drivers.fake.container_io import FakeContainerIOMixin
from workers.drivers.fake.container_resources import FakeResourcesMixin
from workers.drivers.fake.images import FakeImagesMixin, seed_image


@serialized(frozenset(ContainerDriver.__abstractmethods__))
class FakeContainerDriver(
    FakeContainerIOMixin, FakeResourcesMixin, FakeImagesMixin, ContainerDriver
):
    """Container operations on an in-memory engine (for tests, and workers without Docker).

    ``images`` are the shared images it starts with (in its fake registry too, so they can be
    pulled again after a removal).
    """

    name = "fake"

    def __init__(self, images: Iterable[str] = ("busybox:latest",)) -> None:
        super().__init__()
        for reference in images:
            image = self.store_image(seed_image(reference))
            self.registry[image.tags[0]] = image

    def version(self) -> str:
        """``fake 1.0``."""
        return "fake 1.0"
