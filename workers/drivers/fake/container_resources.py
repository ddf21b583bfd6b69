"""Fake user networks and named volumes (with backup to and restore from a tar archive)."""

from __future__ import annotations

import base64
import binascii
import io
import tarfile
from ipaddress import IPv4Network

from nube.catalog.container_models import (
    ARCHIVE_LIMIT,
    ContainerNetworkConnect,
    ContainerNetworkCreate,
    ContainerNetworkDisconnect,
    ContainerNetworkRef,
    ContainerVolumeCreate,
    ContainerVolumeRef,
    ContainerVolumeRemove,
    ContainerVolumeRestore,
    LabelFilter,
)
from nube.errors import Conflict, InvalidRequest, NotFound, PayloadTooLarge
from workers.drivers.base import JobContext, Result, name_taken
from workers.drivers.fake import container_views as views
from workers.drivers.fake.common import hex_id
from workers.drivers.fake.container_store import (
    BRIDGE_SUBNET,
    Endpoint,
    FakeContainer,
    FakeEngineBase,
    FakeNetwork,
    FakeVolume,
)
from workers.drivers.names import backend_name


class FakeResourcesMixin(FakeEngineBase):
    """The network and volume operations of the fake container driver."""

    # --- networks --------------------------------------------------------------------------------

    def network_create(self, params: ContainerNetworkCreate, ctx: JobContext) -> Result:
        """See :meth:`ContainerDriver.network_create`."""
        earlier = [n for n in self.networks.values() if self.made_by_job(n.labels, ctx)]
        if earlier:
            return self._network_view(earlier[0])
        name = backend_name(ctx.tenant, params.name)
        if any(n.name == name for n in self.networks.values()):
            raise name_taken("network", params.name)
        subnet = params.subnet or self._free_subnet()
        if any(subnet.overlaps(n.subnet) for n in self.networks.values()):
            raise Conflict("Pool overlaps with other one on this address space")
        gateway = params.gateway or next(subnet.hosts())
        labels = self.new_labels(ctx, params.labels)
        network = FakeNetwork(hex_id(), name, subnet, gateway, params.internal, labels)
        self.networks[network.id] = network
        return self._network_view(network)

    def _free_subnet(self) -> IPv4Network:
        """The next free ``172.<n>.0.0/16`` after the default bridge's, as the engine picks."""
        for second in range(BRIDGE_SUBNET.network_address.packed[1] + 1, 32):
            subnet = IPv4Network(f"172.{second}.0.0/16")
            if not any(subnet.overlaps(n.subnet) for n in self.networks.values()):
                return subnet
        raise Conflict("could not find an available, non-overlapping IPv4 address pool")

    def network_list(self, params: LabelFilter, ctx: JobContext) -> Result:
        """See :meth:`ContainerDriver.network_list`."""
        found = [n for n in self.networks.values() if self.mine(n.labels, ctx, params.label)]
        return {"networks": [self._network_view(n) for n in found]}

    def network_inspect(self, params: ContainerNetworkRef, ctx: JobContext) -> Result:
        """See :meth:`ContainerDriver.network_inspect`."""
        return self._network_view(self.network(params.id, ctx))

    def network_connect(self, params: ContainerNetworkConnect, ctx: JobContext) -> Result:
        """See :meth:`ContainerDriver.network_connect`."""
        network = self.network(params.id, ctx)
        container = self.container(params.container, ctx)
        named, net = views.shown(container.name, container.labels), params.id
        if network.name in container.endpoints:
            raise Conflict(f"endpoint with name {named} already exists in network {net}")
        # reachable by its user name too, as a container created on the network is
        endpoint = Endpoint(network.id, list(dict.fromkeys([named, *params.aliases])))
        container.endpoints[network.name] = endpoint
        if container.live:
            endpoint.ipv4 = self.address_for(network.name, container)
        return self._network_view(network)

    def network_disconnect(self, params: ContainerNetworkDisconnect, ctx: JobContext) -> Result:
        """See :meth:`ContainerDriver.network_disconnect`."""
        network = self.network(params.id, ctx)
        container = self.container(params.container, ctx)
        if network.name not in container.endpoints:
            raise Conflict(f"container {container.id} is not connected to network {params.id}")
        del container.endpoints[network.name]
        return self._network_view(network)

    def network_remove(self, params: ContainerNetworkRef, ctx: JobContext) -> Result:
        """See :meth:`ContainerDriver.network_remove`."""
        network = self.network(params.id, ctx)
        if self._members(network):
            raise Conflict(
                f"error while removing network: network {params.id} id {network.id} "
                "has active endpoints"
            )
        del self.networks[network.id]
        return {
            "id": network.id,
            "name": views.shown(network.name, network.labels),
            "removed": True,
        }

    def network_prune(self, params: LabelFilter, ctx: JobContext) -> Result:
        """See :meth:`ContainerDriver.network_prune`."""
        unused = [
            n
            for n in self.networks.values()
            if self.mine(n.labels, ctx, params.label) and not self._members(n)
        ]
        for network in unused:
            del self.networks[network.id]
        return {"deleted": [views.shown(n.name, n.labels) for n in unused]}

    def _members(self, network: FakeNetwork) -> list[FakeContainer]:
        """The running containers attached to ``network`` (the engine's active endpoints)."""
        return [c for c in self.containers.values() if c.live and network.name in c.endpoints]

    def _network_view(self, network: FakeNetwork) -> Result:
        return views.network_view(network, self._members(network))

    # --- volumes ---------------------------------------------------------------------------------

    def volume_create(self, params: ContainerVolumeCreate, ctx: JobContext) -> Result:
        """See :meth:`ContainerDriver.volume_create`."""
        earlier = [v for v in self.volumes.values() if self.made_by_job(v.labels, ctx)]
        if earlier:
            return views.volume_view(earlier[0])
        name = None  # unnamed: the engine's own (hex) name, shown as it is
        if params.name is not None:
            name = backend_name(ctx.tenant, params.name)
            if name in self.volumes:
                raise name_taken("volume", params.name)
        volume = self.make_volume(name, self.new_labels(ctx, params.labels))
        return views.volume_view(volume)

    def volume_list(self, params: LabelFilter, ctx: JobContext) -> Result:
        """See :meth:`ContainerDriver.volume_list`."""
        found = [v for v in self.volumes.values() if self.mine(v.labels, ctx, params.label)]
        return {"volumes": [views.volume_view(v) for v in found]}

    def volume_inspect(self, params: ContainerVolumeRef, ctx: JobContext) -> Result:
        """See :meth:`ContainerDriver.volume_inspect`."""
        return views.volume_view(self.volume(params.name, ctx))

    def volume_remove(self, params: ContainerVolumeRemove, ctx: JobContext) -> Result:
        """See :meth:`ContainerDriver.volume_remove`."""
        volume = self.volume(params.name, ctx)
        users = self.users_of_volume(volume.name)
        if users:
            raise Conflict(f"remove {params.name}: volume is in use - [{users[0].id}]")
        del self.volumes[volume.name]
        return {"name": views.shown(volume.name, volume.labels), "removed": True}

    def volume_prune(self, params: LabelFilter, ctx: JobContext) -> Result:
        """See :meth:`ContainerDriver.volume_prune`."""
        unused = [
            v
            for v in self.volumes.values()
            if self.mine(v.labels, ctx, params.label) and not self.users_of_volume(v.name)
        ]
        for volume in unused:
            del self.volumes[volume.name]
        reclaimed = sum(len(d) for v in unused for d in v.files.values())
        deleted = [views.shown(v.name, v.labels) for v in unused]
        return {"deleted": deleted, "space_reclaimed": reclaimed}

    def volume_backup(self, params: ContainerVolumeRef, ctx: JobContext) -> Result:
        """See :meth:`ContainerDriver.volume_backup`."""
        volume = self.volume(params.name, ctx)
        raw = _tar(volume.files)
        if len(raw) > ARCHIVE_LIMIT:
            raise PayloadTooLarge(limit=ARCHIVE_LIMIT)
        return {"name": params.name, "size": len(raw), "archive": base64.b64encode(raw).decode()}

    def volume_restore(self, params: ContainerVolumeRestore, ctx: JobContext) -> Result:
        """See :meth:`ContainerDriver.volume_restore`."""
        raw = decode_archive(params.archive)
        volume = self._volume_for_restore(params.name, ctx)
        volume.files.update(_untar(raw))
        return {"name": params.name, "size": len(raw)}

    def _volume_for_restore(self, name: str, ctx: JobContext) -> FakeVolume:
        try:
            return self.volume(name, ctx)
        except NotFound:
            scoped = backend_name(ctx.tenant, name)
            if scoped in self.volumes:
                raise
            return self.make_volume(scoped, self.new_labels(ctx))


def decode_archive(data: str) -> bytes:
    """Base64 text → a tar archive, or ``InvalidRequest`` (as the Docker driver checks it)."""
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as err:
        raise InvalidRequest("the archive is not valid base64") from err
    if len(raw) > ARCHIVE_LIMIT:
        raise PayloadTooLarge(limit=ARCHIVE_LIMIT)
    if not tarfile.is_tarfile(io.BytesIO(raw)):
        raise InvalidRequest("the archive is not a tar archive")
    return raw


def _tar(files: dict[str, bytes]) -> bytes:
    """The volume's files as the engine archives ``/volume/.``: ``./``, ``./a``, ``./d/b``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in ["", *_parents(files)]:
            info = tarfile.TarInfo(f"./{name}".rstrip("/") or ".")
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for path, data in sorted(files.items()):
            info = tarfile.TarInfo(f"./{path}")
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _parents(files: dict[str, bytes]) -> list[str]:
    """Every directory above the files: ``d/e/f`` → ``d``, ``d/e``."""
    parts = (p.split("/") for p in files)
    return sorted({"/".join(p[:i]) for p in parts for i in range(1, len(p))})


def _untar(raw: bytes) -> dict[str, bytes]:
    files = {}
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        for member in tar.getmembers():
            reader = tar.extractfile(member) if member.isfile() else None
            name = member.name.removeprefix("./").lstrip("/")
            if reader is not None and name and ".." not in name.split("/"):
                files[name] = reader.read()
    return files
