"""Which unacknowledged deliveries the reconciler may hand back (``agents.reconciler.orphaned``):
only those no live service can hold."""

from __future__ import annotations

from agents.reconciler import Delivery, orphaned
from nube.registry import ServiceInstance


def service(name: str, *queues: str) -> ServiceInstance:
    return ServiceInstance(
        name=name, kind="containers", node="n", queues=list(queues), started_at=0
    )


CONTAINERS = Delivery("t1", "job-1", "containers")
PINNED = Delivery("t2", "job-2", "vms.node-a")
INGRESS = Delivery("t3", "relay-job-3", "nube.ingress")
UNKNOWN = Delivery("t4", "job-4", "")
ALL = [CONTAINERS, PINNED, INGRESS, UNKNOWN]
LIVE = [service("agent", "nube.ingress"), service("c1", "containers"), service("v1", "vms.node-a")]


def test_everyone_answered_nothing_held_everything_is_orphaned() -> None:
    assert orphaned(ALL, set(), {"agent", "c1", "v1"}, LIVE) == ALL


def test_a_held_delivery_stays() -> None:
    held = {"job-1", "relay-job-3"}
    assert orphaned(ALL, held, {"agent", "c1", "v1"}, LIVE) == [PINNED, UNKNOWN]


def test_a_silent_live_service_keeps_its_queues_and_unknown_ones() -> None:
    # c1 heartbeats but did not answer: it may hold the containers message, and any of unknown
    assert orphaned(ALL, set(), {"agent", "v1"}, LIVE) == [PINNED, INGRESS]


def test_a_service_too_new_to_heartbeat_counts_when_it_answers() -> None:
    assert orphaned(ALL, {"job-2"}, {"agent", "c1", "v1", "v2"}, LIVE) == [
        CONTAINERS,
        INGRESS,
        UNKNOWN,
    ]
