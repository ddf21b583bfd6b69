"""What only a real engine shows of images: a registry that does not answer.

The image contract (build, tag, history, save, load, push, pull, shared images, tenancy) runs on
the fake and on this engine, with a real registry, in ``tests/drivers``.
"""

from __future__ import annotations

import pytest

from nube.catalog import container_models as m
from nube.errors import BackendUnavailable
from tests.drivers.conftest import MakeCtx
from workers.drivers.docker import DockerDriver


def test_pull_from_an_unreachable_registry_is_backend_unavailable(
    driver: DockerDriver, make_ctx: MakeCtx
) -> None:
    with pytest.raises(BackendUnavailable):
        driver.image_pull(m.ImagePull(image="127.0.0.1:1/nube/absent:v1"), make_ctx())
