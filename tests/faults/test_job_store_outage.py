"""Redis SIGKILLed exactly as a task starts, on RabbitMQ (shared/reliability.md #8): no job lost.

On RabbitMQ the job store (Redis) is a separate service, so it can be gone while the broker
delivers. A worker or the agent whose Redis vanished after its consumer took a message, but
before the task had changed anything, used to have Celery acknowledge that message as a failed
task: the job stayed ``queued`` for ever, and nothing relays it again (the reconciler watches the
Redis broker only). Now the message goes back to the broker and runs once Redis is back:

- ``received``: the consumer has opened the body, the pool has not run it. Celery's pool used
  to open it again, asking Redis to claim its nonce a second time: on a worker's prefork pool
  that failure acknowledged the message, on the agent's thread pool it was dropped and the
  message held unacknowledged. The pool now runs the body the consumer opened
  (:class:`nube.sealing.celery_hooks.SealedRequest`), so the task starts and meets the next case;
- ``prerun``: the task cannot mark its job running (a worker) or read the job it relays (the
  agent): :func:`nube.broker.redelivered_without_job_store` raises Celery's
  ``Reject(requeue=True)``, and the nonce is left open for the redelivery. The service is the
real one with one hook (``tests/faults/outage_service.py``) that SIGKILLs the real redis-server
at that moment; the test starts it again (AOF keeps every record).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from nube.tools.devstack import PY
from tests.brokers import Broker, RabbitNode
from tests.conftest import docker_available, need, remove_docker_resources
from tests.faults.test_message_path_faults import _container_creations
from tests.faults.test_worker_and_redis_faults import (
    SLEEPER,
    TERMINAL,
    assert_drained,
    client_for,
    job_of,
    private_stack,
    serve_containers,
    wait_for,
)

#: How long the redis-server stays dead: longer than the replay guard's patience in the worker
#: (``OUTAGE_CLAIM_PATIENCE_S``), so that every claim made meanwhile gives up.
OUTAGE_S = 5.0
PATIENCE_S = "2"


@pytest.mark.parametrize(
    ("service", "moment"),
    [("workers", "received"), ("workers", "prerun"), ("agents", "received"), ("agents", "prerun")],
)
def test_redis_lost_as_a_task_starts_requeues_its_message(
    tmp_path: Path, rabbitmq_node: RabbitNode, service: str, moment: str
) -> None:
    broker = Broker("rabbitmq", rabbitmq_node)
    flag, go = tmp_path / "cut", tmp_path / "go"
    with private_stack(tmp_path, **broker.env()) as stack:
        redis = stack.procs["redis"]
        cut = {
            "OUTAGE_AT": moment,
            "OUTAGE_REDIS_PID": str(redis.pid),
            "OUTAGE_FLAG": str(flag),
            "OUTAGE_GO": str(go),
            "OUTAGE_CLAIM_PATIENCE_S": PATIENCE_S,
        }
        argv = [PY, "-m", "tests.faults.outage_service", service]
        if service == "agents":
            stack.spawn("agent", argv, **cut)
            stack.start_worker("vms", concurrency=1)
        else:
            stack.start_agent()
            stack.spawn("worker-vms", [*argv, "vms", "--concurrency", "1"], **cut)
        stack.start_api()
        stack.wait_ready(["nube.ingress", "vms"])
        job = client_for(stack).submit("GET", "/v1/vms")
        go.touch()  # the API has answered: the service may cut Redis now

        wait_for(flag.exists, 30, f"the worker to cut Redis at '{moment}'")
        redis.wait(10)
        time.sleep(OUTAGE_S)
        stack.start_redis()

        deadline = time.monotonic() + 60
        while job_of(stack, job["id"])["status"] not in TERMINAL and time.monotonic() < deadline:
            time.sleep(0.2)
        done = job_of(stack, job["id"])
        assert done["status"] == "succeeded", done
        assert done["attempts"] == 1, done  # the lost start never counted as an attempt
        log = stack.workdir / ("agent.log" if service == "agents" else "worker-vms.log")
        assert "left for redelivery" in log.read_text(errors="replace")
        assert_drained(stack, broker, job["id"], "vms")


def test_redis_lost_while_an_operation_runs_its_outcome_is_recorded(
    tmp_path: Path, rabbitmq_node: RabbitNode
) -> None:
    """Redis SIGKILLed while a container runs (``sleep 3``) and back 6 s later: the worker
    records the outcome once Redis is back (``workers.runner.OUTCOME_RETRY``) instead of failing
    the task, which Celery acknowledged, leaving the job ``running`` for ever on RabbitMQ."""
    need(docker_available(), "the Docker engine")
    broker = Broker("rabbitmq", rabbitmq_node)
    with private_stack(tmp_path, **broker.env()) as stack:
        api = serve_containers(stack)
        started = time.time() - 1
        try:
            job = api.submit("POST", "/v1/containers", SLEEPER)
            wait_for(lambda: job_of(stack, job["id"])["status"] == "running", 30, "the run")
            stack.stop("redis", signal.SIGKILL)
            time.sleep(OUTAGE_S + 1)  # the container ends meanwhile
            stack.start_redis()

            deadline = time.monotonic() + 60
            while job_of(stack, job["id"])["status"] not in TERMINAL:
                assert time.monotonic() < deadline, job_of(stack, job["id"])
                time.sleep(0.2)
            done = job_of(stack, job["id"])
            assert done["status"] == "succeeded" and done["attempts"] == 1, done
            assert _container_creations(job["id"], started) == 1
            log = (stack.workdir / "worker-containers.log").read_text(errors="replace")
            assert "recording the outcome again" in log
            assert_drained(stack, broker, job["id"], "containers")
        finally:
            remove_docker_resources(api.tenant)  # type: ignore[attr-defined]
