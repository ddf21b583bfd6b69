"""Images made from requests: build (Dockerfile + context files) and push to a registry."""

from __future__ import annotations

import base64
import io
import tarfile
import time
from typing import Any

from nube.catalog.container_models import ImageBuild, ImagePush
from nube.errors import BackendFailed
from workers.drivers.base import JobContext
from workers.drivers.docker import views
from workers.drivers.docker.base import DockerBase
from workers.drivers.docker.errors import translated
from workers.drivers.docker.images import guard_reference
from workers.drivers.docker.progress import Reporter, build_stream, layer_stream

_LOG_LIMIT = 64 * 1024


def context_tar(params: ImageBuild) -> io.BytesIO:
    """The build context as an in-memory tar: the context files plus the ``Dockerfile``."""
    buf = io.BytesIO()
    files = {path: base64.b64decode(data) for path, data in params.files.items()}
    files["Dockerfile"] = params.dockerfile.encode()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path, data in sorted(files.items()):
            info = tarfile.TarInfo(path)
            info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


class BuildsMixin(DockerBase):
    """``image_build`` and ``image_push``."""

    def image_build(self, params: ImageBuild, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`ContainerDriver.image_build`."""
        earlier = self.client.images.list(filters=self.job_filter(ctx))
        if earlier:
            return views.image_view(earlier[0]) | {"log": ""}
        if params.tag:
            guard_reference(self, params.tag, ctx)
        image_id, log = self._build(params, ctx)
        return views.image_view(self.client.images.get(image_id)) | {"log": log}

    def _build(self, params: ImageBuild, ctx: JobContext) -> tuple[str, str]:
        image_id, log = "", ""
        with translated("image"):
            events = self.client.api.build(
                fileobj=context_tar(params),
                custom_context=True,
                tag=params.tag,
                labels=self.new_labels(ctx, params.labels),
                buildargs=dict(params.build_args),
                rm=True,
                forcerm=True,
                pull=params.pull,
                nocache=params.nocache,
                decode=True,
            )
            for event in build_stream(events, Reporter(ctx, "build")):
                log = (log + str(event.get("stream", "")))[-_LOG_LIMIT:]
                image_id = (event.get("aux") or {}).get("ID", image_id)
        if not image_id:
            raise BackendFailed(reason="the build ended without an image id")
        return image_id, log

    def image_push(self, params: ImagePush, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`ContainerDriver.image_push`."""
        image = self.image(params.id, ctx)
        repository = f"{params.registry}/{params.repository}"
        reference = f"{repository}:{params.tag}"
        guard_reference(self, reference, ctx, image.id)
        image.tag(repository, params.tag)
        digest = ""
        with translated("image", reference):
            events = self.client.api.push(repository, tag=params.tag, stream=True, decode=True)
            for event in layer_stream(events, Reporter(ctx, "push"), "image", reference):
                digest = (event.get("aux") or {}).get("Digest", digest)
        return {"id": image.id, "reference": reference, "digest": digest}
