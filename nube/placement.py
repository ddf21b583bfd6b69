"""Where each VM lives: the node whose worker defined it.

A VM lives on one hypervisor, so every operation on an existing VM (``Operation.pinned`` in the
catalog) must reach that node's worker. Workers record a placement when an operation that
``places`` succeeds and drop it after one that ``releases``; the agent routes pinned operations to
``vms.<node>``.
"""

from __future__ import annotations

import redis


class Placements:
    """``nube:placement:<service>:<tenant>:<name>`` → node."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    @staticmethod
    def key(service: str, tenant: str, name: str) -> str:
        return f"nube:placement:{service}:{tenant}:{name}"

    def record(self, service: str, tenant: str, name: str, node: str) -> None:
        self.redis.set(self.key(service, tenant, name), node)

    def forget(self, service: str, tenant: str, name: str) -> None:
        self.redis.delete(self.key(service, tenant, name))

    def node_of(self, service: str, tenant: str, name: str) -> str | None:
        node = self.redis.get(self.key(service, tenant, name))
        return str(node) if node else None

    def nodes_of_any_tenant(self, service: str, name: str) -> set[str]:
        """The nodes of every tenant's resource called ``name`` (for admins acting across)."""
        keys = list(self.redis.scan_iter(match=self.key(service, "*", name), count=500))
        return {str(node) for node in self.redis.mget(keys) if node} if keys else set()
