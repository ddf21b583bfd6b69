"""The one place nube's own messages are put on the broker.

:func:`publish_request` sends a :class:`~nube.wire.RelayRequest` to the agent (the API submits a
job; the agent's reconciler sends a lost one again). :func:`publish_operation` sends an operation
to a worker queue with its :class:`~nube.wire.JobMeta` (the agent relays a job; its counter runs
a list job). Both set the ``nube`` header that binds the sealed message to its task, job and
tenant (:func:`nube.sealing.celery_hooks.bind_and_redact` moves it into the seal) and names the
operation and target for the redacted summary that events and Flower show.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import Celery

from nube.broker import INGRESS_QUEUE, PUBLISH_ERRORS, RELAY_TASK, relay_task_id
from nube.errors import BrokerUnavailable
from nube.jobs import Job, JobStore
from nube.sealing.celery_hooks import PUBLISH_HEADER
from nube.summary import target_of
from nube.wire import JobMeta, RelayRequest

log = logging.getLogger(__name__)

#: The pauses between attempts at an operation's publish (then it raises): when a RabbitMQ
#: cluster member dies, the publishes in flight to the queues it led are nacked (or their
#: connection closes) until the survivors elect new leaders, a second or two.
OPERATION_PUBLISH_PAUSES = (0.5, 1.0, 2.0, 3.0)


def binding_header(tenant: str, job_id: str, operation: str, target: str | None) -> dict[str, Any]:
    """The headers of a message of ``job_id``: the binding and the summary's fields."""
    return {PUBLISH_HEADER: {"tenant": tenant, "job": job_id, "op": operation, "target": target}}


def publish_request(
    app: Celery, jobs: JobStore, job: Job, request: RelayRequest, *, kept: bool = False
) -> None:
    """Send ``request`` to the agent, keeping it until the job ends (for the reconciler; ``kept``
    when :meth:`~nube.jobs.JobStore.create` kept it already); ``BrokerUnavailable`` when Redis
    cannot take it."""
    try:
        if not kept:
            jobs.keep_request(job, request)
        app.send_task(
            RELAY_TASK,
            args=(request.model_dump(mode="json"),),
            task_id=relay_task_id(job.id),
            queue=INGRESS_QUEUE,
            ignore_result=True,
            headers=binding_header(job.tenant, job.id, job.operation, job.target),
        )
    except PUBLISH_ERRORS as e:
        log.warning("publishing job %s failed: %s", job.id, e)
        raise BrokerUnavailable() from e


def publish_operation(
    app: Celery, job_id: str, operation: str, queue: str, params: dict[str, Any], meta: JobMeta
) -> None:
    """Send ``operation`` of job ``job_id`` to ``queue``: the job id is the Celery task id, so
    ``AsyncResult(job_id)`` and Flower show the operation itself. A publish the broker refuses
    or loses is tried again (:data:`OPERATION_PUBLISH_PAUSES`): a twin, should the first have
    been stored after all, is handled as any redelivery (effects are keyed by the job id); a
    missing message would leave the job queued for ever on RabbitMQ (the relay message that
    carried it is done, so its redelivery is refused as a replay)."""
    for pause in (*OPERATION_PUBLISH_PAUSES, None):
        try:
            app.send_task(
                operation,
                kwargs={"params": params, "job": meta.model_dump(mode="json")},
                task_id=job_id,
                queue=queue,
                headers=binding_header(
                    meta.tenant, job_id, operation, target_of(operation, params)
                ),
            )
            return
        except PUBLISH_ERRORS as e:
            if pause is None:
                raise
            log.warning(
                "publishing job %s to %s failed (%r); again in %s s", job_id, queue, e, pause
            )
            time.sleep(pause)
