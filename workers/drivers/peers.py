"""Where a VM may migrate: ``NUBE_LIBVIRT_PEERS``, the hypervisor of each other node.

``n2=qemu+tcp://10.0.0.2/system,n3=qemu+ssh://n3/system`` names, for each node a VM of this
worker's node may move to, the libvirt URI this worker reaches that node's hypervisor at. The
destination node's worker serves the VM afterwards (its placement moves there).
"""

from __future__ import annotations

from collections.abc import Mapping

from nube.errors import Conflict, InvalidRequest


def parse_peers(text: str) -> dict[str, str]:
    """``node=uri,...`` as a map (``NUBE_LIBVIRT_PEERS``'s pattern has checked the shape)."""
    peers: dict[str, str] = {}
    for entry in filter(None, (e.strip() for e in text.split(","))):
        node, _, uri = entry.partition("=")
        peers[node] = uri
    return peers


def peer_uri(peers: Mapping[str, str], node: str, here: str, name: str) -> str:
    """The libvirt URI of ``node`` for migrating VM ``name`` away from ``here``: a move to the
    VM's own node is ``Conflict``, a node that is not a peer ``InvalidRequest``."""
    if node == here:
        raise Conflict(f"VM '{name}' already lives on node '{node}'", name=name, node=node)
    if node not in peers:
        known = ", ".join(sorted(peers)) or "none"
        raise InvalidRequest(
            f"node '{node}' is not a migration destination of node '{here}' "
            f"(NUBE_LIBVIRT_PEERS: {known})",
            field="node",
        )
    return peers[node]
