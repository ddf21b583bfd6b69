"""Runs one operation for one job: the job's life cycle around a single driver call.

This is the one place where failures are handled for every task (like Nova's
``@wrap_instance_fault``): terminal and cancelled jobs are skipped, deliveries are counted and
capped, transient backend errors retry with exponential backoff through Celery's own retry, and
every other error fails the job with its stable code.

An error's message may quote the operation's parameters or the backend's own text, so it goes
only into the job record (where the job store seals it for the job's owner). What leaves the
worker through Celery (the task's result, its ``task-failed``/``task-retried`` events, which
Flower shows, and Celery's log lines) is the error's :meth:`~nube.errors.NubeError.redacted`
copy, raised without its cause; this module's own log lines name the code and the class.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from celery import Task
from celery.exceptions import Ignore, SoftTimeLimitExceeded
from celery.utils.time import get_exponential_backoff_interval
from pydantic import ValidationError
from redis.backoff import ConstantBackoff
from redis.retry import Retry

from nube.broker import redelivered_without_job_store
from nube.catalog import Operation
from nube.errors import InvalidRequest, NubeError, Timeout, WorkerLost
from nube.jobs import Job, JobStatus, JobStore
from nube.placement import Placements
from nube.redis_client import REDIS_ERRORS
from nube.settings import Settings
from nube.wire import JobMeta, field_error
from workers.drivers import Driver, JobContext, load_driver

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How a worker records an operation's outcome while the job store is briefly unreachable (a
#: failover, a restart, a cut link): the operation has run, so giving up would leave its job
#: ``running`` on RabbitMQ, or have the reconciler run it again on Redis. One try a second, 20
#: in all, with redis-py's own ``Retry`` (the task's soft time limit may end the wait first).
OUTCOME_RETRY = Retry(ConstantBackoff(1.0), 20, supported_errors=REDIS_ERRORS)


def _waiting_for_job_store(error: Exception) -> None:
    log.warning(
        "the job store is unreachable (%s): recording the outcome again", type(error).__name__
    )


@dataclass
class Runtime:
    """What a worker process needs to run operations: settings, jobs and its drivers."""

    settings: Settings
    jobs: JobStore
    _drivers: dict[str, Driver] = field(default_factory=dict)
    _pid: int = 0

    def driver(self, service: str) -> Driver:
        """The driver for ``service``, made once per process (connections do not cross fork)."""
        if self._pid != os.getpid():
            self._drivers, self._pid = {}, os.getpid()
        if service not in self._drivers:
            self._drivers[service] = load_driver(service, self.settings)
        return self._drivers[service]

    def execute(self, task: Task, op: Operation, params: dict[str, Any], job_meta: Any) -> Any:
        """Run ``op`` for the job whose id is the Celery task id; returns the driver's result.

        ``job_meta`` is the task's ``job`` argument, validated here as a :class:`JobMeta` (a
        malformed one fails the job ``invalid_request`` naming the field).
        """
        job_id = task.request.id
        job = self._start(job_id)
        if job is None:
            return self._skip(job_id)
        lost = job.attempts - 1 - task.request.retries
        if lost >= self.settings.max_attempts:
            return self._fail(job_id, WorkerLost(attempts=lost), job)
        try:
            meta = JobMeta.model_validate(job_meta)
        except ValidationError as e:
            return self._fail(job_id, InvalidRequest(f"malformed job: {field_error(e)}"), job)
        ctx = JobContext(
            job_id=job_id,
            tenant=meta.tenant,
            operation=op.name,
            admin=meta.admin,
            attempt=job.attempts,
            hardening=meta.hardening,
            report_progress=lambda progress: self.jobs.report_progress(job_id, progress),
            after_recorded=[],
        )
        try:
            result = self._call(op, params, ctx)
        except NubeError as e:
            error = e
        else:
            self._recorded(lambda: self._place(op, params, ctx, result))
            self._recorded(lambda: self.jobs.finish(job_id, result, base=job))
            _run_recorded(ctx)
            return result
        # outside the except block: nothing raised from here on carries the error as context
        return self._handle_error(task, op, job, error)

    def _start(self, job_id: str) -> Job | None:
        """Mark the job running (nothing has run yet: an unreachable job store requeues)."""
        with redelivered_without_job_store(job_id, self.settings):
            return self.jobs.mark_running(job_id, self.settings.node)

    def _place(self, op: Operation, params: dict[str, Any], ctx: JobContext, result: Any) -> None:
        """Record (or drop) where the resource an operation made (or removed, renamed, or
        migrated to another node) lives, under its owner's tenant: the driver's result names
        it (an admin may act on another tenant's VM), else the job's tenant owns it."""
        if not (op.places or op.releases):
            return
        placements = Placements(self.jobs.redis)
        owner = result.get("tenant") if isinstance(result, dict) else None
        tenant = owner if isinstance(owner, str) and owner else ctx.tenant
        released, placed = params.get("name"), params.get(op.placed_by)
        if op.releases and isinstance(released, str):
            placements.forget(op.service, tenant, released)
        node = params.get(op.placed_on) if op.placed_on else self.settings.node
        if op.places and isinstance(placed, str) and isinstance(node, str):
            placements.record(op.service, tenant, placed, node)

    def _call(self, op: Operation, params: dict[str, Any], ctx: JobContext) -> Any:
        try:
            validated = op.params.model_validate(params)
            return getattr(self.driver(op.service), op.handler)(validated, ctx)
        except ValidationError as e:
            raise InvalidRequest(str(e.errors(include_url=False)[0]["msg"])) from e
        except SoftTimeLimitExceeded as e:
            raise Timeout(limit=op.time_limit) from e
        except NubeError:
            raise
        except Exception as e:
            # the exception's text and traceback may quote parameters: the class only, and the
            # traceback at DEBUG level (for a developer's own worker)
            log.warning(
                "operation %s of job %s failed unexpectedly: %s",
                op.name,
                ctx.job_id,
                type(e).__name__,
            )
            log.debug("operation %s of job %s failed", op.name, ctx.job_id, exc_info=True)
            raise NubeError(f"unexpected error: {type(e).__name__}") from e

    def _handle_error(self, task: Task, op: Operation, job: Job, error: NubeError) -> Any:
        """Retry a retryable error (the job is queued again) or fail the job. ``job`` is the
        record as this worker marked it running."""
        job_id, retries = job.id, task.request.retries
        if error.retryable and retries < op.max_retries:
            countdown = get_exponential_backoff_interval(
                factor=1, retries=retries, maximum=self.settings.retry_backoff_max, full_jitter=True
            )
            detail = f"{error.code}; retry {retries + 1} in {countdown} s"
            self._recorded(
                lambda: self.jobs.update(
                    job_id, "retrying", detail, base=job, status=JobStatus.QUEUED
                )
            )
            log.info(
                "job %s: %s (%s), retry %d in %s s",
                job_id,
                error.code,
                type(error).__name__,
                retries + 1,
                countdown,
            )
            retry = task.retry(
                exc=error.redacted(), countdown=countdown, max_retries=op.max_retries, throw=False
            )
            raise retry from None
        return self._fail(job_id, error, job)

    def _fail(self, job_id: str, error: NubeError, job: Job | None = None) -> Any:
        log.info("job %s failed: %s (%s)", job_id, error.code, type(error).__name__)
        self._recorded(lambda: self.jobs.fail(job_id, error.to_dict(), base=job))
        raise error.redacted() from None

    def _recorded(self, write: Callable[[], T]) -> T:
        """``write``, a record of what an operation did (or of its end), tried again while the
        job store is unreachable (:data:`OUTCOME_RETRY`)."""
        return OUTCOME_RETRY.call_with_retry(write, _waiting_for_job_store)

    def _skip(self, job_id: str) -> Any:
        job = self.jobs.find(job_id)
        if job is None:
            log.warning("refusing task %s: no such job record", job_id)
        else:
            log.info("skipping job %s: already %s", job_id, job.status.value)
        raise Ignore()


def _run_recorded(ctx: JobContext) -> None:
    """What the driver left until the result was recorded (a finished run's container)."""
    for action in ctx.after_recorded or []:
        try:
            action()
        except Exception as e:  # the job has succeeded: a cleanup fault is only logged
            log.warning("cleanup after job %s failed: %s", ctx.job_id, type(e).__name__)
            log.debug("cleanup after job %s failed", ctx.job_id, exc_info=True)
