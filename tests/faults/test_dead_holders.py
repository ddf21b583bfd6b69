"""The reconciler's dead-holder sweep (Redis): a message held by no live service goes back to
its queue within seconds; a message a live, slow worker holds is never handed to another.

Both run with the reconciler's defaults on a private stack; the second also on RabbitMQ, where
the broker alone decides (the reconciler is idle there).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

from agents.reconciler import ORPHAN_SECONDS, Reconciler, unacked_deliveries
from nube.registry import HEARTBEAT_TTL
from nube.tools.devstack import Stack
from tests.brokers import Broker
from tests.conftest import docker_available, need, remove_docker_resources
from tests.faults.test_message_path_faults import _container_creations
from tests.faults.test_worker_and_redis_faults import (
    TERMINAL,
    assert_drained,
    client_for,
    job_of,
    private_stack,
    serve_containers,
    unacked_holding,
    wait_for,
)

#: A job that runs longer than a dead holder takes to be found (heartbeat TTL, then the sweeps).
SLOW_SECONDS = HEARTBEAT_TTL + int(ORPHAN_SECONDS) + 6


def test_a_slow_job_is_never_handed_to_another_worker(tmp_path: Path, broker: Broker) -> None:
    """Two workers; one runs a job longer than a dead holder takes to be found: the job runs
    once, on one worker, one container (no second delivery while the first holder lives)."""
    need(docker_available(), "the Docker engine")
    with private_stack(tmp_path, **broker.env()) as stack:
        stack.start_agent()
        for node in ("node-a", "node-b"):
            stack.start_worker("containers", f"worker-{node}", concurrency=1, NUBE_NODE=node)
        stack.start_api()
        stack.wait_ready(["nube.ingress", "containers"])
        api = client_for(stack)
        started = time.time() - 1
        body = {"image": "busybox:latest", "command": ["sleep", str(SLOW_SECONDS)]}
        try:
            job = api.submit("POST", "/v1/containers", body)
            done = wait_for(
                lambda: (j := api.job(job["id"], wait=30))["status"] in TERMINAL and j,
                SLOW_SECONDS + 60,
                "the slow job's end",
            )
            events = [e["event"] for e in done["history"]]
            assert done["status"] == "succeeded", done
            assert done["attempts"] == 1, events
            assert events.count("running") == 1, events
            assert _container_creations(job["id"], started) == 1
            assert_drained(stack, broker, job["id"], "containers")
            agent_log = (stack.workdir / "agent.log").read_text()
            assert "held by no live service" not in agent_log
        finally:
            remove_docker_resources(api.tenant)  # type: ignore[attr-defined]


def test_a_dead_holders_message_goes_back_to_its_queue(tmp_path: Path) -> None:
    """SIGKILL the only worker mid-job and start none: the sweep finds the message held by no
    live service once the worker's heartbeat has expired and puts it back on its queue, where it
    waits (readable by a new worker); the sweep alone (``Reconciler.sweep``) never restores a
    message while its holder's heartbeat lives."""
    need(docker_available(), "the Docker engine")
    with private_stack(tmp_path, NUBE_RECONCILE_SECONDS="0") as stack:
        api = serve_containers(stack)
        started = time.time() - 1
        body = {"image": "busybox:latest", "command": ["sleep", "15"]}
        try:
            job = api.submit("POST", "/v1/containers", body)
            wait_for(lambda: _container_creations(job["id"], started) == 1, 30, "the container")
            sweeper = _sweeper(stack)
            assert sweeper.sweep() == []  # held by the live worker
            time.sleep(ORPHAN_SECONDS + 1)
            assert sweeper.sweep() == [], "a live holder's message stays where it is"
            killed = time.monotonic()
            stack.stop("worker-containers", signal.SIGKILL)
            tags = unacked_holding(stack, job["id"])
            assert len(tags) == 1
            restored: list[str] = []
            while not restored and time.monotonic() - killed < HEARTBEAT_TTL + 20:
                restored = sweeper.sweep()
                time.sleep(1)
            print(f"restored {time.monotonic() - killed:.1f} s after the cold kill")
            assert restored == tags
            assert not unacked_holding(stack, job["id"])
            assert stack.redis().llen("containers") == 1
            assert job_of(stack, job["id"])["status"] == "running"  # until a worker takes it
            stack.start_worker("containers", concurrency=1)
            done = api.job(job["id"], wait=60)
            assert done["status"] == "succeeded" and done["attempts"] == 2, done
            assert _container_creations(job["id"], started) == 1
            assert not unacked_deliveries(stack.redis())
        finally:
            remove_docker_resources(api.tenant)  # type: ignore[attr-defined]


def _sweeper(stack: Stack) -> Reconciler:
    """A reconciler of the test's own (not started: the test calls ``sweep``) on the stack's
    sealed Celery app, as the agent makes it."""
    from nube.bootstrap import bootstrap
    from nube.settings import load_settings

    process = bootstrap(load_settings(stack.env()), "agent")
    return Reconciler(process.celery, process.jobs, 30)
