"""Images: pull, list, inspect, history, tag, remove, save, load."""

from __future__ import annotations

import base64
import binascii
import io
import json
import tarfile
from typing import Any

from docker.utils import parse_repository_tag

from nube.catalog import container_models as m
from nube.errors import Conflict, Forbidden, InvalidRequest, NotFound, PayloadTooLarge
from workers.drivers.base import JobContext
from workers.drivers.docker import views
from workers.drivers.docker.base import TENANT, DockerBase
from workers.drivers.docker.errors import translated
from workers.drivers.docker.progress import Reporter, layer_stream


def split_reference(reference: str) -> tuple[str, str]:
    """``repo[:tag]`` → (repo, tag); no tag means ``latest``; a digest stays in the tag slot."""
    repo, tag = parse_repository_tag(reference)
    return repo, tag or "latest"


def guard_reference(
    base: DockerBase, reference: str, ctx: JobContext, image_id: str | None = None
) -> None:
    """Refuse to move a tag held by an image the caller does not own (``Conflict``).

    Without this a tenant could re-point ``busybox:latest`` at an image of its own and every
    other tenant would run it.
    """
    try:
        with translated("image", reference):
            held = base.client.images.get(reference)
    except NotFound:
        return
    if held.id != image_id and not base.owned(held.labels, ctx):
        raise Conflict(f"the reference {reference} is held by another image")


def decode_archive(data: str) -> bytes:
    """Base64 text → a tar archive, or ``InvalidRequest``."""
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as err:
        raise InvalidRequest("the archive is not valid base64") from err
    if len(raw) > m.ARCHIVE_LIMIT:
        raise PayloadTooLarge(limit=m.ARCHIVE_LIMIT)
    if not tarfile.is_tarfile(io.BytesIO(raw)):
        raise InvalidRequest("the archive is not a tar archive")
    return raw


def read_capped(chunks: Any, limit: int = m.ARCHIVE_LIMIT) -> bytes:
    """Join a stream of chunks, failing with ``PayloadTooLarge`` past ``limit`` bytes."""
    buf = bytearray()
    for chunk in chunks:
        buf += chunk
        if len(buf) > limit:
            raise PayloadTooLarge(f"the archive is larger than {limit} bytes", limit=limit)
    return bytes(buf)


def archive_tags(raw: bytes) -> list[tuple[str, str]]:
    """(reference, image id) for each ``RepoTags`` entry of a ``docker save`` archive."""
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        try:
            member = tar.extractfile("manifest.json")
            manifest = json.load(member) if member else []
        except (KeyError, ValueError) as err:
            raise InvalidRequest("the archive has no valid manifest.json") from err
    return [
        (tag, "sha256:" + str(entry.get("Config", "")).removesuffix(".json"))
        for entry in manifest
        for tag in entry.get("RepoTags") or []
    ]


class ImagesMixin(DockerBase):
    """The image operations of :class:`ContainerDriver` (build and push: :mod:`.builds`)."""

    def image_pull(self, params: m.ImagePull, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`ContainerDriver.image_pull`."""
        repo, tag = split_reference(params.image)
        with translated("image", params.image):
            events = self.client.api.pull(repo, tag=tag, stream=True, decode=True)
            for _ in layer_stream(events, Reporter(ctx, "pull"), "image", params.image):
                pass
        sep = "@" if tag.startswith("sha256:") else ":"
        return views.image_view(self.image(f"{repo}{sep}{tag}", ctx))

    def image_list(self, params: m.ImageList, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`ContainerDriver.image_list`."""
        found = self.client.images.list(name=params.name, all=params.all)
        return {"images": [views.image_summary(i) for i in found if self.image_visible(i, ctx)]}

    def image_inspect(self, params: m.ImageRefParams, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`ContainerDriver.image_inspect`."""
        return views.image_view(self.image(params.id, ctx))

    def image_history(self, params: m.ImageRefParams, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`ContainerDriver.image_history`."""
        return {"id": params.id} | views.history(self.image(params.id, ctx).history())

    def image_tag(self, params: m.ImageTagParams, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`ContainerDriver.image_tag`."""
        image = self.image(params.id, ctx)
        reference = f"{params.repository}:{params.tag}"
        guard_reference(self, reference, ctx, image.id)
        image.tag(params.repository, params.tag)
        return {"id": image.id, "reference": reference}

    def image_remove(self, params: m.ImageRemove, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`ContainerDriver.image_remove`."""
        image = self.image(params.id, ctx)
        if TENANT not in image.labels and not ctx.admin:
            raise Forbidden("only an admin may remove a shared image", scope="admin")
        with translated("image", params.id):
            gone = self.client.api.remove_image(
                params.id, force=params.force, noprune=params.noprune
            )
        return {
            "id": image.id,
            "untagged": [g["Untagged"] for g in gone or [] if "Untagged" in g],
            "deleted": [g["Deleted"] for g in gone or [] if "Deleted" in g],
        }

    def image_save(self, params: m.ImageSave, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`ContainerDriver.image_save`."""
        image = self.image(params.id, ctx)
        raw = read_capped(self.client.api.get_image(params.id))
        return {"id": image.id, "size": len(raw), "archive": base64.b64encode(raw).decode()}

    def image_load(self, params: m.ImageLoad, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`ContainerDriver.image_load`."""
        raw = decode_archive(params.archive)
        for reference, image_id in archive_tags(raw):
            guard_reference(self, reference, ctx, image_id)
        with translated("image"):
            loaded = self.client.images.load(raw)
        return {"images": [{"id": i.id, "tags": i.tags} for i in loaded]}
