"""Where each VM lives: the node whose worker defined it.

A VM lives on one hypervisor, so every operation on an existing VM (``Operation.pinned`` in the
catalog) must reach that node's worker. Workers record a placement when an operation that
``places`` succeeds and drop it after one that ``releases``; the agent routes pinned operations to
``vms.<node>``.
"""

from __future__ import annotations

import redis


class Placements:
    """``nube:placement:<service>:<tenant>:<name>`` → node, and for each node the set
    ``nube:placed-on:<service>:<node>`` of ``<tenant>:<name>`` (what lives there, read without a
    scan of the key space)."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    @staticmethod
    def key(service: str, tenant: str, name: str) -> str:
        return f"nube:placement:{service}:{tenant}:{name}"

    @staticmethod
    def on_node_key(service: str, node: str) -> str:
        return f"nube:placed-on:{service}:{node}"

    def record(self, service: str, tenant: str, name: str, node: str) -> None:
        before = self.redis.set(self.key(service, tenant, name), node, get=True)
        pipe = self.redis.pipeline(transaction=False)
        if before and str(before) != node:
            pipe.srem(self.on_node_key(service, str(before)), f"{tenant}:{name}")
        pipe.sadd(self.on_node_key(service, node), f"{tenant}:{name}")
        pipe.execute()

    def forget(self, service: str, tenant: str, name: str) -> None:
        before = self.redis.getdel(self.key(service, tenant, name))
        if before:
            self.redis.srem(self.on_node_key(service, str(before)), f"{tenant}:{name}")

    def on_node(self, service: str, node: str) -> list[tuple[str, str]]:
        """``(tenant, name)`` of everything placed on ``node``, sorted."""
        members = self.redis.smembers(self.on_node_key(service, node))
        return sorted(tuple(str(m).split(":", 1)) for m in members)  # type: ignore[misc]

    def node_of(self, service: str, tenant: str, name: str) -> str | None:
        node = self.redis.get(self.key(service, tenant, name))
        return str(node) if node else None

    def nodes_of_any_tenant(self, service: str, name: str) -> set[str]:
        """The nodes of every tenant's resource called ``name`` (for admins acting across)."""
        keys = list(self.redis.scan_iter(match=self.key(service, "*", name), count=500))
        return {str(node) for node in self.redis.mget(keys) if node} if keys else set()
