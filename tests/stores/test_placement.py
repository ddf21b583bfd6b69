"""Placements on a real Redis: where each VM lives, and what lives on a node (no scan)."""

from __future__ import annotations

from nube.placement import Placements
from nube.tools.devstack import Stack


def test_what_lives_on_a_node_follows_records_moves_and_forgets(redis_only: Stack) -> None:
    client = redis_only.redis()
    client.flushdb()
    placements = Placements(client)
    placements.record("vms", "acme", "web", "n1")
    placements.record("vms", "beta", "web", "n1")
    placements.record("vms", "acme", "db", "n2")
    assert placements.on_node("vms", "n1") == [("acme", "web"), ("beta", "web")]
    placements.record("vms", "acme", "web", "n2")  # moved (a redefine elsewhere)
    placements.forget("vms", "beta", "web")
    assert placements.on_node("vms", "n1") == []
    assert placements.on_node("vms", "n2") == [("acme", "db"), ("acme", "web")]
    assert placements.node_of("vms", "acme", "web") == "n2"
    assert placements.node_of("vms", "beta", "web") is None
