"""The fake engine's state and the lookups every fake container operation shares.

Containers, images, networks and volumes are dataclasses in dicts. Lookups apply the
:class:`~workers.drivers.containers.ContainerDriver` tenancy rules exactly as the Docker driver
does: a resource labelled with another tenant is ``NotFound``; images without a tenant label
are shared.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from nube.catalog.container_models import ContainerSpec
from nube.errors import Conflict, NotFound
from workers.drivers.base import JobContext
from workers.drivers.fake.common import FakeBase, hex_id, now_iso
from workers.drivers.names import backend_name

TENANT = "nube.tenant"
JOB = "nube.job"
PREDEFINED_NETWORKS = ("bridge", "none")
BRIDGE_SUBNET = IPv4Network("172.17.0.0/16")


@dataclass
class FakeImage:
    id: str
    tags: list[str]
    labels: dict[str, str]
    config: dict[str, Any]
    """``Cmd``, ``Entrypoint``, ``WorkingDir``, ``User``, ``Env``, ``ExposedPorts``."""
    files: dict[str, bytes] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    """Layers, oldest first: ``created_by``, ``created``, ``comment``, ``size``."""
    author: str | None = None
    comment: str | None = None
    created: str = field(default_factory=now_iso)
    digests: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(len(data) for data in self.files.values())


@dataclass
class Endpoint:
    """A container's attachment to a network; it has an address while the container runs."""

    network_id: str
    aliases: list[str] = field(default_factory=list)
    ipv4: str = ""


@dataclass
class FakeContainer:
    id: str
    name: str
    spec: ContainerSpec
    image_id: str
    labels: dict[str, str]
    argv: list[str]
    env: dict[str, str]
    host_config: dict[str, Any]
    endpoints: dict[str, Endpoint]
    """By network name (``bridge``, ``none`` or a user network)."""
    status: str = "created"
    exit_code: int = 0
    created: str = field(default_factory=now_iso)
    created_unix: int = field(default_factory=lambda: int(time.time()))
    started_at: str = "0001-01-01T00:00:00Z"
    finished_at: str = "0001-01-01T00:00:00Z"
    layer: dict[str, bytes] = field(default_factory=dict)
    log: list[tuple[str, float, str, str]] = field(default_factory=list)
    """Output lines as ``(RFC 3339 time, Unix time, "stdout" | "stderr", line)``."""
    ports: list[dict[str, Any]] = field(default_factory=list)
    """Published ports while running."""

    @property
    def live(self) -> bool:
        return self.status in ("running", "paused")


@dataclass
class FakeNetwork:
    id: str
    name: str
    subnet: IPv4Network
    gateway: IPv4Address
    internal: bool
    labels: dict[str, str]
    created: str = field(default_factory=now_iso)


@dataclass
class FakeVolume:
    name: str
    labels: dict[str, str]
    created: str = field(default_factory=now_iso)
    files: dict[str, bytes] = field(default_factory=dict)
    """Content, by path relative to the volume (``a``, ``d/b``)."""


class FakeEngineBase(FakeBase):
    """The engine's state plus the tenancy checks every operation shares."""

    def __init__(self) -> None:
        super().__init__()
        self.containers: dict[str, FakeContainer] = {}
        self.images: dict[str, FakeImage] = {}
        self.networks: dict[str, FakeNetwork] = {}
        self.volumes: dict[str, FakeVolume] = {}
        self.registry: dict[str, FakeImage] = {}
        """What ``image_push`` stored and ``image_pull`` finds, by full reference."""

    # --- tenancy ---------------------------------------------------------------------------------

    @staticmethod
    def owned(labels: dict[str, str] | None, ctx: JobContext) -> bool:
        """True when the labels name the caller's tenant (or the caller is an admin)."""
        return ctx.admin or (labels or {}).get(TENANT) == ctx.tenant

    @staticmethod
    def mine(labels: dict[str, str], ctx: JobContext, filters: list[str] | None = None) -> bool:
        """What a list shows: the tenant's own resources matching ``key`` / ``key=value``."""
        wanted = [f"{TENANT}={ctx.tenant}", *(filters or [])]
        return all(_label_matches(labels, f) for f in wanted)

    @staticmethod
    def made_by_job(labels: dict[str, str], ctx: JobContext) -> bool:
        return labels.get(TENANT) == ctx.tenant and labels.get(JOB) == ctx.job_id

    @staticmethod
    def new_labels(ctx: JobContext, user: dict[str, str] | None = None) -> dict[str, str]:
        return {**(user or {}), **ctx.labels}

    # --- lookups ---------------------------------------------------------------------------------

    def container(self, key: str, ctx: JobContext) -> FakeContainer:
        """The tenant's container by id, unique id prefix or name, else ``NotFound``."""
        found = self.find_container(backend_name(ctx.tenant, key)) or self.find_container(key)
        if found is None or not self.owned(found.labels, ctx):
            raise NotFound(kind="container", id=key)
        return found

    def find_container(self, key: str) -> FakeContainer | None:
        for found in self.containers.values():
            if key in (found.id, found.name):
                return found
        prefixed = [c for c in self.containers.values() if c.id.startswith(key)]
        return prefixed[0] if len(prefixed) == 1 else None

    def network(self, key: str, ctx: JobContext) -> FakeNetwork:
        """The tenant's network by id, unique id prefix or name, else ``NotFound``."""
        scoped = backend_name(ctx.tenant, key)
        found = [n for n in self.networks.values() if n.name == scoped]
        found = found or [n for n in self.networks.values() if key in (n.id, n.name)]
        found = found or [n for n in self.networks.values() if n.id.startswith(key)]
        if len(found) != 1 or not self.owned(found[0].labels, ctx):
            raise NotFound(kind="network", id=key)
        return found[0]

    def volume(self, name: str, ctx: JobContext) -> FakeVolume:
        """The tenant's volume, else ``NotFound``."""
        found = self.volumes.get(backend_name(ctx.tenant, name)) or self.volumes.get(name)
        if found is None or not self.owned(found.labels, ctx):
            raise NotFound(kind="volume", id=name)
        return found

    def image(self, key: str, ctx: JobContext) -> FakeImage:
        """A shared image or the tenant's, by id, id prefix or reference, else ``NotFound``."""
        found = self.find_image(key)
        if found is None or not self.image_visible(found, ctx):
            raise NotFound(kind="image", id=key)
        return found

    def find_image(self, key: str) -> FakeImage | None:
        if key in self.images:
            return self.images[key]
        reference = normalize(key)
        for image in self.images.values():
            if reference in image.tags:
                return image
        hexed = key.removeprefix("sha256:")
        by_id = [i for i in self.images.values() if i.id.removeprefix("sha256:").startswith(hexed)]
        return by_id[0] if len(by_id) == 1 and len(hexed) >= 4 else None

    def image_visible(self, image: FakeImage, ctx: JobContext) -> bool:
        """Shared (untenanted) images are visible to all; tenant images to their tenant."""
        return TENANT not in image.labels or self.owned(image.labels, ctx)

    def guard_reference(self, reference: str, ctx: JobContext, image_id: str | None = None) -> None:
        """Refuse to move a tag held by an image the caller does not own (``Conflict``)."""
        held = self.find_image(reference)
        if held is not None and held.id != image_id and not self.owned(held.labels, ctx):
            raise Conflict(f"the reference {reference} is held by another image")

    def add_tag(self, image: FakeImage, reference: str) -> None:
        """Point ``reference`` at ``image`` (taking it from any image that held it)."""
        reference = normalize(reference)
        for other in self.images.values():
            if reference in other.tags:
                other.tags.remove(reference)
        image.tags.append(reference)

    def store_image(self, image: FakeImage) -> FakeImage:
        """Keep ``image`` (or the one already stored under its id) with ``image``'s tags."""
        tags = list(image.tags)
        stored = self.images.setdefault(image.id, image)
        if stored is image:
            image.tags = []
        for tag in tags:
            if normalize(tag) not in stored.tags:
                self.add_tag(stored, tag)
        return stored

    def make_volume(self, name: str | None, labels: dict[str, str]) -> FakeVolume:
        volume = FakeVolume(name or hex_id(), labels)
        self.volumes[volume.name] = volume
        return volume

    def address_for(self, network: str, container: FakeContainer) -> str:
        """A free address for ``container`` on ``network`` (none on ``none``)."""
        if network == "none":
            return ""
        found = [n for n in self.networks.values() if n.name == network]
        subnet = found[0].subnet if found else BRIDGE_SUBNET
        gateway = found[0].gateway if found else next(BRIDGE_SUBNET.hosts())
        used = {
            c.endpoints[network].ipv4
            for c in self.containers.values()
            if c is not container and c.live and network in c.endpoints
        }
        return next(str(a) for a in subnet.hosts() if a != gateway and str(a) not in used)

    def users_of_volume(self, name: str) -> list[FakeContainer]:
        return [c for c in self.containers.values() if name in {v.volume for v in c.spec.volumes}]


def normalize(reference: str) -> str:
    """``busybox`` → ``busybox:latest``; a reference with a tag or digest stays as it is."""
    last = reference.rsplit("/", 1)[-1]
    return reference if (":" in last or "@" in reference) else f"{reference}:latest"


def _label_matches(labels: dict[str, str], wanted: str) -> bool:
    key, eq, value = wanted.partition("=")
    return key in labels and (not eq or labels[key] == value)


def image_id() -> str:
    return f"sha256:{hex_id()}"
