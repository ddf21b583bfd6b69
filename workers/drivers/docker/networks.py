"""User bridge networks: create, list, inspect, connect, disconnect, remove, prune."""

from __future__ import annotations

from typing import Any

from docker.models.networks import Network
from docker.types import IPAMConfig, IPAMPool

from nube.catalog import container_models as m
from workers.drivers.base import JobContext, name_taken
from workers.drivers.docker import views
from workers.drivers.docker.base import DockerBase
from workers.drivers.docker.errors import translated
from workers.drivers.names import backend_name, user_name


class NetworksMixin(DockerBase):
    """The network operations of :class:`ContainerDriver`."""

    def network_create(self, params: m.ContainerNetworkCreate, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`ContainerDriver.network_create`."""
        earlier = self.client.networks.list(filters=self.job_filter(ctx))
        if earlier:
            return self._network_view(earlier[0])
        name = backend_name(ctx.tenant, params.name)
        if self._network_named(name):
            raise name_taken("network", params.name)
        with translated("network", params.name):
            network = self.client.networks.create(
                name,
                driver="bridge",
                internal=params.internal,
                ipam=_ipam(params),
                labels=self.new_labels(ctx, params.labels),
                check_duplicate=True,
            )
        return self._network_view(network)

    def network_list(self, params: m.LabelFilter, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`ContainerDriver.network_list`."""
        found = self.client.networks.list(filters=self.label_filter(ctx, params.label))
        return {"networks": [views.network_view(n) for n in found]}

    def network_inspect(self, params: m.ContainerNetworkRef, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`ContainerDriver.network_inspect`."""
        return views.network_view(self.network(params.id, ctx))

    def network_connect(self, params: m.ContainerNetworkConnect, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`ContainerDriver.network_connect`."""
        network = self.network(params.id, ctx)
        container = self.container(params.container, ctx)
        # reachable by its user name too, as a container created on the network is
        named = views.shown(container.name, container.labels)
        aliases = list(dict.fromkeys([named, *params.aliases]))
        network.connect(container, aliases=aliases)
        return self._network_view(network)

    def network_disconnect(
        self, params: m.ContainerNetworkDisconnect, ctx: JobContext
    ) -> dict[str, Any]:
        """See :meth:`ContainerDriver.network_disconnect`."""
        network = self.network(params.id, ctx)
        container = self.container(params.container, ctx)
        network.disconnect(container, force=params.force)
        return self._network_view(network)

    def network_remove(self, params: m.ContainerNetworkRef, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`ContainerDriver.network_remove`."""
        network = self.network(params.id, ctx)
        network.remove()
        return {
            "id": network.id,
            "name": views.shown(network.name, network.attrs.get("Labels")),
            "removed": True,
        }

    def network_prune(self, params: m.LabelFilter, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`ContainerDriver.network_prune`."""
        pruned = self.client.networks.prune(filters=self.label_filter(ctx, params.label))
        return {"deleted": [user_name(n, ctx.tenant) for n in pruned.get("NetworksDeleted") or []]}

    def _network_named(self, name: str) -> bool:
        """Whether a network of exactly that backend name exists, whoever owns it (the engine's
        ``name`` filter matches substrings)."""
        return any(n.get("Name") == name for n in self.client.api.networks(names=[name]))

    @staticmethod
    def _network_view(network: Network) -> dict[str, Any]:
        network.reload()
        return views.network_view(network)


def _ipam(params: m.ContainerNetworkCreate) -> IPAMConfig | None:
    if params.subnet is None:
        return None
    gateway = str(params.gateway) if params.gateway else None
    return IPAMConfig(pool_configs=[IPAMPool(subnet=str(params.subnet), gateway=gateway)])
