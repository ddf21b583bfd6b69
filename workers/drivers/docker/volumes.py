"""Named volumes: create, list, inspect, remove, prune, backup to and restore from a tar."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from docker.models.containers import Container
from docker.models.volumes import Volume
from docker.types import Mount

from nube.catalog import container_models as m
from nube.errors import BackendFailed, NotFound
from workers.drivers.base import JobContext, name_taken
from workers.drivers.docker import views
from workers.drivers.docker.base import HELPER, DockerBase
from workers.drivers.docker.errors import translated
from workers.drivers.docker.images import decode_archive, read_capped
from workers.drivers.names import backend_name, user_name

_MOUNT = "/volume"


class VolumesMixin(DockerBase):
    """The volume operations of :class:`ContainerDriver`."""

    def volume_create(self, params: m.ContainerVolumeCreate, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`ContainerDriver.volume_create`."""
        earlier = self.client.volumes.list(filters=self.job_filter(ctx))
        if earlier:
            return views.volume_view(earlier[0])
        name = None  # unnamed: the engine picks a (hex) name, shown as it is
        if params.name is not None:
            name = backend_name(ctx.tenant, params.name)
            if self.volume_exists(name):
                raise name_taken("volume", params.name)
        volume = self.client.volumes.create(
            name, driver="local", labels=self.new_labels(ctx, params.labels)
        )
        return views.volume_view(volume)

    def volume_list(self, params: m.LabelFilter, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`ContainerDriver.volume_list`."""
        found = self.client.volumes.list(filters=self.label_filter(ctx, params.label))
        return {"volumes": [views.volume_view(v) for v in found]}

    def volume_inspect(self, params: m.ContainerVolumeRef, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`ContainerDriver.volume_inspect`."""
        return views.volume_view(self.volume(params.name, ctx))

    def volume_remove(self, params: m.ContainerVolumeRemove, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`ContainerDriver.volume_remove`."""
        volume = self.volume(params.name, ctx)
        with translated("volume", params.name):
            volume.remove(force=params.force)
        return {"name": views.shown(volume.name, volume.attrs.get("Labels")), "removed": True}

    def volume_prune(self, params: m.LabelFilter, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`ContainerDriver.volume_prune`."""
        pruned = self.client.volumes.prune(filters=self.label_filter(ctx, params.label))
        return {
            "deleted": [user_name(v, ctx.tenant) for v in pruned.get("VolumesDeleted") or []],
            "space_reclaimed": pruned.get("SpaceReclaimed", 0),
        }

    def volume_backup(self, params: m.ContainerVolumeRef, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`ContainerDriver.volume_backup`."""
        volume = self.volume(params.name, ctx)
        with self._helper(volume, ctx, read_only=True) as helper:
            chunks, _ = helper.get_archive(f"{_MOUNT}/.")
            raw = read_capped(chunks)
        return {"name": params.name, "size": len(raw), "archive": base64.b64encode(raw).decode()}

    def volume_restore(self, params: m.ContainerVolumeRestore, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`ContainerDriver.volume_restore`."""
        raw = decode_archive(params.archive)
        volume = self._volume_for_restore(params.name, ctx)
        with (
            self._helper(volume, ctx, read_only=False) as helper,
            translated("volume", params.name),
        ):
            if not helper.put_archive(_MOUNT, raw):
                raise BackendFailed(reason="the engine refused the archive")
        return {"name": params.name, "size": len(raw)}

    # --- helpers -------------------------------------------------------------------------------

    def _volume_for_restore(self, name: str, ctx: JobContext) -> Volume:
        try:
            return self.volume(name, ctx)
        except NotFound:
            scoped = backend_name(ctx.tenant, name)
            if self.volume_exists(scoped):
                raise
            return self.client.volumes.create(scoped, driver="local", labels=self.new_labels(ctx))

    @contextmanager
    def _helper(self, volume: Volume, ctx: JobContext, read_only: bool) -> Iterator[Container]:
        """A never-started container with the volume at ``/volume``; removed afterwards.

        The engine reads and writes a stopped container's volumes through its archive API, so
        the helper image only has to exist; nothing in it runs.
        """
        mount = Mount(target=_MOUNT, source=volume.name, type="volume", read_only=read_only)
        with translated("image", self.helper_image):
            helper = self.client.containers.create(
                self.helper_image,
                ["true"],
                mounts=[mount],
                network_mode="none",
                labels=self.new_labels(ctx, {HELPER: "volume"}),
            )
        try:
            yield helper
        finally:
            helper.remove(force=True)
