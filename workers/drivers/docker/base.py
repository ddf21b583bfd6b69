"""Shared plumbing of the Docker driver: the client, tenancy checks and lookups."""

from __future__ import annotations

from typing import Any

import docker
from docker.models.containers import Container
from docker.models.images import Image
from docker.models.networks import Network
from docker.models.volumes import Volume

from nube.errors import NotFound
from workers.drivers.base import JobContext
from workers.drivers.docker.errors import translated
from workers.drivers.names import backend_name

TENANT = "nube.tenant"
JOB = "nube.job"
HELPER = "nube.helper"
"""Label of short-lived helper containers (volume backup/restore); lists hide them."""


class DockerBase:
    """The engine connection plus the checks every operation shares.

    The client is made on first use, so constructing the driver never touches the engine and a
    down engine surfaces as ``BackendUnavailable`` from the first call.
    """

    def __init__(
        self, base_url: str | None = None, helper_image: str = "busybox:latest", timeout: int = 120
    ) -> None:
        self._base_url = base_url
        self._timeout = timeout
        self.helper_image = helper_image
        self._client: docker.DockerClient | None = None

    @property
    def client(self) -> docker.DockerClient:
        """The docker-py client (created lazily)."""
        if self._client is None:
            with translated():
                self._client = self._connect()
        return self._client

    def _connect(self) -> docker.DockerClient:
        if self._base_url is None:
            return docker.from_env(timeout=self._timeout)
        return docker.DockerClient(base_url=self._base_url, timeout=self._timeout)

    # --- tenancy -------------------------------------------------------------------------------

    @staticmethod
    def owned(labels: dict[str, str] | None, ctx: JobContext) -> bool:
        """True when the labels name the caller's tenant (or the caller is an admin)."""
        return ctx.admin or (labels or {}).get(TENANT) == ctx.tenant

    @staticmethod
    def label_filter(ctx: JobContext, extra: list[str] | None = None) -> dict[str, Any]:
        """Engine ``filters`` selecting the tenant's resources (and the extra label filters)."""
        return {"label": [f"{TENANT}={ctx.tenant}", *(extra or [])]}

    @staticmethod
    def job_filter(ctx: JobContext) -> dict[str, Any]:
        """Engine ``filters`` selecting what this job created."""
        return {"label": [f"{TENANT}={ctx.tenant}", f"{JOB}={ctx.job_id}"]}

    @staticmethod
    def new_labels(ctx: JobContext, user: dict[str, str] | None = None) -> dict[str, str]:
        """Labels for a resource this job creates: the caller's plus tenant and job."""
        return {**(user or {}), **ctx.labels}

    # --- lookups that hide other tenants' resources ----------------------------------------------

    def container(self, id: str, ctx: JobContext) -> Container:
        """The tenant's container by id or name, else ``NotFound``."""
        found = self._lookup(self.client.containers, "container", id, ctx)
        if not self.owned(found.labels, ctx):
            raise NotFound(kind="container", id=id)
        return found

    def network(self, id: str, ctx: JobContext) -> Network:
        """The tenant's network by id or name, else ``NotFound``."""
        found = self._lookup(self.client.networks, "network", id, ctx)
        if not self.owned(found.attrs.get("Labels"), ctx):
            raise NotFound(kind="network", id=id)
        return found

    def volume(self, name: str, ctx: JobContext) -> Volume:
        """The tenant's volume, else ``NotFound``."""
        found = self._lookup(self.client.volumes, "volume", name, ctx)
        if not self.owned(found.attrs.get("Labels"), ctx):
            raise NotFound(kind="volume", id=name)
        return found

    def _lookup(self, collection: Any, kind: str, ref: str, ctx: JobContext) -> Any:
        """What ``ref`` names for the caller: the tenant's ``ref`` (its backend name) first,
        else ``ref`` as the engine knows it (an id, or a name nube did not prefix: an unnamed
        container's or an anonymous volume's; the caller's ownership is checked after)."""
        try:
            with translated(kind, ref):
                return collection.get(backend_name(ctx.tenant, ref))
        except NotFound:
            with translated(kind, ref):
                return collection.get(ref)

    def volume_exists(self, name: str) -> bool:
        """Whether a volume of that exact backend name exists, whoever owns it."""
        try:
            with translated("volume", name):
                self.client.volumes.get(name)
        except NotFound:
            return False
        return True

    def image(self, key: str, ctx: JobContext) -> Image:
        """A shared image or the tenant's, by id or reference, else ``NotFound``."""
        with translated("image", key):
            found = self.client.images.get(key)
        if not self.image_visible(found, ctx):
            raise NotFound(kind="image", id=key)
        return found

    def image_visible(self, image: Image, ctx: JobContext) -> bool:
        """Shared (untenanted) images are visible to all; tenant images to their tenant."""
        return TENANT not in image.labels or self.owned(image.labels, ctx)
