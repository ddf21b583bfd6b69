"""Fake images: pull, list, inspect, history, tag, remove, build, save, load, push.

The fake registry is a dict of references (``registry/repo:tag`` → image) that ``image_push``
fills and ``image_pull`` reads; the driver's seed images (``busybox:latest``) are in it too, as
if on Docker Hub. A build runs its ``RUN`` steps with :mod:`.programs` on the image's files.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import io
import json
import tarfile
from typing import Any

from nube.catalog.container_models import (
    ARCHIVE_LIMIT,
    ImageBuild,
    ImageList,
    ImageLoad,
    ImagePull,
    ImagePush,
    ImageRefParams,
    ImageRemove,
    ImageSave,
    ImageTagParams,
)
from nube.errors import Conflict, Forbidden, InvalidRequest, NotFound, PayloadTooLarge
from workers.drivers.base import JobContext, Result
from workers.drivers.fake import container_views as views
from workers.drivers.fake.common import now_iso
from workers.drivers.fake.container_resources import decode_archive
from workers.drivers.fake.container_store import (
    TENANT,
    FakeEngineBase,
    FakeImage,
    normalize,
)
from workers.drivers.fake.dockerfile import build

SHELL_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def seed_image(reference: str) -> FakeImage:
    """A shared base image like ``busybox:latest``: ``sh`` as its command, nothing else."""
    digest = hashlib.sha256(reference.encode()).hexdigest()
    return FakeImage(
        id=f"sha256:{digest}",
        tags=[normalize(reference)],
        labels={},
        config={"Cmd": ["sh"], "Env": [SHELL_PATH]},
        history=[{"created": now_iso(), "created_by": '/bin/sh -c #(nop)  CMD ["sh"]'}],
    )


class FakeImagesMixin(FakeEngineBase):
    """The image operations of the fake container driver."""

    def image_pull(self, params: ImagePull, ctx: JobContext) -> Result:
        """See :meth:`ContainerDriver.image_pull`."""
        reference = normalize(params.image)
        remote = self.registry.get(reference)
        if remote is None:
            raise NotFound(kind="image", id=params.image)
        local = self.images.get(remote.id)
        if local is None:
            local = copy.deepcopy(remote)
            local.tags = []
            self.images[local.id] = local
        if reference not in local.tags:
            self.add_tag(local, reference)
        _report(ctx, "pull", local)
        return views.image_view(self.image(reference, ctx))

    def image_list(self, params: ImageList, ctx: JobContext) -> Result:
        """See :meth:`ContainerDriver.image_list`."""
        found = [
            i
            for i in self.images.values()
            if self.image_visible(i, ctx)
            and (params.name is None or any(t.rsplit(":", 1)[0] == params.name for t in i.tags))
        ]
        return {"images": [views.image_summary(i) for i in found]}

    def image_inspect(self, params: ImageRefParams, ctx: JobContext) -> Result:
        """See :meth:`ContainerDriver.image_inspect`."""
        return views.image_view(self.image(params.id, ctx))

    def image_history(self, params: ImageRefParams, ctx: JobContext) -> Result:
        """See :meth:`ContainerDriver.image_history`."""
        return {"id": params.id} | views.history(self.image(params.id, ctx))

    def image_tag(self, params: ImageTagParams, ctx: JobContext) -> Result:
        """See :meth:`ContainerDriver.image_tag`."""
        image = self.image(params.id, ctx)
        reference = f"{params.repository}:{params.tag}"
        self.guard_reference(reference, ctx, image.id)
        self.add_tag(image, reference)
        return {"id": image.id, "reference": reference}

    def image_remove(self, params: ImageRemove, ctx: JobContext) -> Result:
        """See :meth:`ContainerDriver.image_remove`."""
        image = self.image(params.id, ctx)
        if TENANT not in image.labels and not ctx.admin:
            raise Forbidden("only an admin may remove a shared image", scope="admin")
        reference = normalize(params.id)
        if reference in image.tags and len(image.tags) > 1:
            image.tags.remove(reference)
            return {"id": image.id, "untagged": [reference], "deleted": []}
        self._check_removable(image, params)
        untagged, image.tags = image.tags, []
        if any(c.image_id == image.id for c in self.containers.values()):
            return {"id": image.id, "untagged": untagged, "deleted": []}
        del self.images[image.id]
        return {"id": image.id, "untagged": untagged, "deleted": [image.id]}

    def _check_removable(self, image: FakeImage, params: ImageRemove) -> None:
        short = image.id.removeprefix("sha256:")[:12]
        users = [c for c in self.containers.values() if c.image_id == image.id]
        if users and (users[0].live or not params.force):
            raise Conflict(
                f"conflict: unable to delete {short} - image is being used by container "
                f"{users[0].id[:12]}"
            )
        if len(image.tags) > 1 and not params.force:
            raise Conflict(
                f"conflict: unable to delete {short} (must be forced) - image is referenced in "
                "multiple repositories"
            )

    def image_build(self, params: ImageBuild, ctx: JobContext) -> Result:
        """See :meth:`ContainerDriver.image_build`."""
        earlier = [i for i in self.images.values() if self.made_by_job(i.labels, ctx)]
        if earlier:
            return views.image_view(earlier[0]) | {"log": ""}
        if params.tag:
            self.guard_reference(params.tag, ctx)
        built = build(params, lambda ref: self._base_image(ref, ctx), ctx)
        built.image.labels |= self.new_labels(ctx, params.labels)
        image = self.store_image(built.image)
        return views.image_view(image) | {"log": built.log}

    def _base_image(self, reference: str, ctx: JobContext) -> FakeImage:
        try:
            return self.image(reference, ctx)
        except NotFound:
            raise InvalidRequest(
                f"the build failed: pull access denied for {reference}, repository does not "
                "exist or may require 'docker login'"
            ) from None

    def image_save(self, params: ImageSave, ctx: JobContext) -> Result:
        """See :meth:`ContainerDriver.image_save`."""
        image = self.image(params.id, ctx)
        reference = normalize(params.id)
        raw = _save(image, [reference] if reference in image.tags else [])
        if len(raw) > ARCHIVE_LIMIT:
            raise PayloadTooLarge(f"the archive is larger than {ARCHIVE_LIMIT} bytes")
        return {"id": image.id, "size": len(raw), "archive": base64.b64encode(raw).decode()}

    def image_load(self, params: ImageLoad, ctx: JobContext) -> Result:
        """See :meth:`ContainerDriver.image_load`."""
        images = _load(decode_archive(params.archive))
        for image in images:
            for reference in image.tags:
                self.guard_reference(reference, ctx, image.id)
        loaded = [self.store_image(i) for i in images]
        return {"images": [{"id": i.id, "tags": list(i.tags)} for i in loaded]}

    def image_push(self, params: ImagePush, ctx: JobContext) -> Result:
        """See :meth:`ContainerDriver.image_push`."""
        image = self.image(params.id, ctx)
        repository = f"{params.registry}/{params.repository}"
        reference = f"{repository}:{params.tag}"
        self.guard_reference(reference, ctx, image.id)
        self.add_tag(image, reference)
        digest = "sha256:" + hashlib.sha256(f"{image.id} {reference}".encode()).hexdigest()
        if f"{repository}@{digest}" not in image.digests:
            image.digests.append(f"{repository}@{digest}")
        self.registry[reference] = copy.deepcopy(image)
        _report(ctx, "push", image)
        return {"id": image.id, "reference": reference, "digest": digest}


def _report(ctx: JobContext, phase: str, image: FakeImage) -> None:
    size = image.size
    progress = {"current": size, "total": size, "layers": 1, "layers_done": 1, "done": True}
    ctx.report_progress({"phase": phase, **progress})


def _save(image: FakeImage, tags: list[str]) -> bytes:
    """``docker save``'s layout: ``manifest.json`` and the image's config ``<hex>.json`` (which
    here also carries the fake's files)."""
    name = image.id.removeprefix("sha256:") + ".json"
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": image.created,
        "author": image.author,
        "comment": image.comment,
        "config": {**image.config, "Labels": image.labels},
        "history": image.history,
        "nube_fake_files": {p: base64.b64encode(d).decode() for p, d in image.files.items()},
    }
    manifest = [{"Config": name, "RepoTags": tags or None, "Layers": []}]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for member, data in (("manifest.json", manifest), (name, config)):
            raw = json.dumps(data).encode()
            info = tarfile.TarInfo(member)
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return buf.getvalue()


def _load(raw: bytes) -> list[FakeImage]:
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        try:
            manifest = json.load(tar.extractfile("manifest.json") or io.BytesIO(b"[]"))
            configs = [json.load(_member(tar, e["Config"])) for e in manifest]
        except (KeyError, ValueError, TypeError) as err:
            raise InvalidRequest("the archive has no valid manifest.json") from err
    return [_image_of(e, c) for e, c in zip(manifest, configs, strict=True)]


def _member(tar: tarfile.TarFile, name: str) -> Any:
    member = tar.extractfile(name)
    if member is None:
        raise KeyError(name)
    return member


def _image_of(entry: dict[str, Any], config: dict[str, Any]) -> FakeImage:
    settings = dict(config.get("config") or {})
    labels = settings.pop("Labels", None) or {}
    files = config.get("nube_fake_files") or {}
    return FakeImage(
        id="sha256:" + str(entry["Config"]).removesuffix(".json"),
        tags=list(entry.get("RepoTags") or []),
        labels=labels,
        config=settings,
        files={p: base64.b64decode(d) for p, d in files.items()},
        history=list(config.get("history") or []),
        author=config.get("author"),
        comment=config.get("comment"),
        created=config.get("created") or now_iso(),
    )
