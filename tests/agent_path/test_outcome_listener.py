"""The agent's outcome listener keeps one event subscription while idle.

Celery events on Redis are pub/sub messages: a receiver that is not subscribed at the moment an
event is published never sees it. The listener once ended its ``consume`` after each idle second
and subscribed again on a new connection, so an operation's ``task-succeeded`` published in that
gap had no audit record (and every idle second cost a connection and a subscription).
"""

from __future__ import annotations

import time

import redis

from nube.tools.client import NubeClient
from nube.tools.devstack import Stack

IDLE_S = 4


def subscriptions(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(
        int(stats.get(f"cmdstat_{name}", {}).get("calls", 0))
        for name in ("subscribe", "psubscribe", "ssubscribe")
    )


def connections(client: redis.Redis) -> int:
    return int(client.info("stats")["total_connections_received"])


def test_an_idle_agent_keeps_its_event_subscription(stack: Stack, api: NubeClient) -> None:
    client = stack.redis()
    job = api.submit("POST", "/v1/containers", {"image": "busybox:latest", "command": ["true"]})
    assert api.job(job["id"], wait=30)["status"] == "succeeded"  # events flowed, then idle
    time.sleep(1.5)
    before_subs, before_conns = subscriptions(client), connections(client)
    time.sleep(IDLE_S)
    subs, conns = subscriptions(client) - before_subs, connections(client) - before_conns
    assert subs == 0, f"{subs} subscriptions in {IDLE_S} idle seconds"
    assert conns <= 1, f"{conns} new connections in {IDLE_S} idle seconds"
