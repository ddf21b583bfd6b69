"""The worker Celery app: one thin task per catalog operation of its service."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

from celery import Celery, Task
from celery.exceptions import TimeLimitExceeded

from nube.bootstrap import Process, bootstrap
from nube.catalog import CATALOG, Operation
from nube.errors import NubeError, Timeout
from nube.registry import ServiceInstance, heartbeat_while_serving
from nube.sealing.celery_hooks import SEALED_REQUEST, verify_request
from nube.settings import Settings
from workers.metrics import instrument
from workers.runner import Runtime

log = logging.getLogger(__name__)


def register_operation(app: Celery, op: Operation, runtime: Runtime) -> Task:
    """A task named after ``op`` that hands its message to the runtime."""

    @app.task(
        name=op.name,
        bind=True,
        time_limit=op.time_limit,
        soft_time_limit=op.soft_time_limit,
        max_retries=op.max_retries,
        acks_late=True,
        reject_on_worker_lost=True,
        Request=SEALED_REQUEST,  # the pool runs the body the consumer opened
        ignore_result=True,  # the job record holds the result (sealed): no second copy
        typing=False,
        resultrepr_maxsize=0,  # events and Flower never show a result (it may hold secrets)
        # nube's errors are expected outcomes (the job record says why): Celery logs them at
        # INFO without a traceback, which would print chained causes (a backend's own text)
        throws=(NubeError,),
        on_failure=_fail_on_hard_time_limit(op, runtime),
    )
    def operation_task(self: Task, params: dict[str, Any], job: dict[str, Any]) -> Any:
        """``job`` is a :class:`nube.wire.JobMeta` as JSON (the runtime validates it)."""
        verify_request(self)
        return runtime.execute(self, op, params, job)

    return operation_task


def _fail_on_hard_time_limit(op: Operation, runtime: Runtime) -> Callable[..., None]:
    """The task's ``on_failure``: a hard time limit kills the pool child, so the runner never
    records the outcome, and Celery acknowledges the message and calls this in the worker's
    main process. Without it the job stays ``running`` and the reconciler, finding no message,
    relays it again: a twin run. The job fails ``timeout`` here (a terminal job is left)."""

    def on_failure(task: Task, exc: BaseException, task_id: str, *_: Any) -> None:
        if isinstance(exc, TimeLimitExceeded):
            log.info("job %s failed: timeout (hard time limit, %s s)", task_id, op.time_limit)
            runtime.jobs.fail(task_id, Timeout(limit=op.time_limit).to_dict())

    return on_failure


def queues_for(service: str, settings: Settings) -> list[str]:
    """The shared queue of the service and this node's pinned queue."""
    return [service, f"{service}.{settings.node}"]


def create_worker_app(settings: Settings, service: str) -> Celery:
    """The Celery app of a worker that serves ``service`` (``containers`` or ``vms``)."""
    process = bootstrap(settings, service)
    runtime = Runtime(settings=settings, jobs=process.jobs)
    instrument(runtime)  # driver calls as spans (workers.metrics)
    for op in CATALOG:
        if op.service == service:
            register_operation(process.celery, op, runtime)
    _announce_when_ready(process, settings, service, runtime)
    return process.celery


def _announce_when_ready(
    process: Process, settings: Settings, service: str, runtime: Runtime
) -> None:
    app = process.celery

    def describe_self() -> ServiceInstance:
        driver, version = _driver_info(runtime, service)
        return ServiceInstance(
            name=process.name,
            kind=service,
            node=settings.node,
            queues=queues_for(service, settings),
            driver=driver,
            backend_version=version,
            capacity=int(app.conf.worker_concurrency or os.cpu_count() or 1),
            started_at=time.time(),
        )

    heartbeat_while_serving(settings, describe_self)


def _driver_info(runtime: Runtime, service: str) -> tuple[str, str]:
    try:
        driver = runtime.driver(service)
        return driver.name, driver.version()
    except Exception as e:  # the backend may be down at start: still serve, and say so
        log.warning("the %s backend is not reachable yet: %s", service, e)
        return service, "unavailable"
