"""What the agent's node watch (``agents/node_watch.py``) records about nodes, for any process
to read: each node's newest worker heartbeat, and the nodes declared lost with their VMs."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import redis

LAST_SEEN = "nube:nodes:last-seen"
"""Hash: node → the newest heartbeat time (epoch seconds) of any of its workers."""
LOST = "nube:nodes:lost"
"""Hash: lost node → JSON ``{"last_seen", "declared_at", "vms": [{"tenant", "name"}]}``."""


def lost_nodes(client: redis.Redis) -> dict[str, dict[str, Any]]:
    """The nodes declared lost, each with when it was last heard of and the VMs placed on it."""
    return {str(node): json.loads(raw) for node, raw in client.hgetall(LOST).items()}


def when(epoch: float) -> str:
    """An epoch time as the API shows times (RFC 3339, UTC, to the second)."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
