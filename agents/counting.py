"""How many containers or VMs a tenant has, for the policy's count caps.

Only workers touch Docker and libvirt, so the agent counts the way any client would: it runs a
list operation as a job through the broker and waits for its result. The catalog names that
operation for each kind (:meth:`~nube.catalog.Catalog.counter`) and the parameters that list every
one. A count that cannot be had in time denies the request (a cap that cannot be checked is not
waived).
"""

from __future__ import annotations

from celery import Celery

from nube.catalog import CATALOG
from nube.errors import PolicyDenied
from nube.jobs import Job, JobStatus, JobStore, new_job_id, now_iso
from nube.publish import publish_operation
from nube.wire import JobMeta


class BrokerCounts:
    """``counts(tenant, kind)`` answered by a list job on the kind's worker queue."""

    def __init__(self, app: Celery, jobs: JobStore, timeout: float = 30.0) -> None:
        self.app = app
        self.jobs = jobs
        self.timeout = timeout

    def __call__(self, tenant: str, kind: str) -> int:
        op = CATALOG.counter(kind)
        every = op.lists_all.model_dump(mode="json", exclude_unset=True) if op.lists_all else {}
        job = self.jobs.create(
            Job(
                id=new_job_id(),
                operation=op.name,
                tenant=tenant,
                queue=op.queue,
                submitted_at=now_iso(),
            )
        )
        publish_operation(self.app, job.id, op.name, op.queue, every, JobMeta(tenant=tenant))
        done = self.jobs.wait(job.id, self.timeout)
        if done is None or done.status != JobStatus.SUCCEEDED:
            raise PolicyDenied(rule=f"max_{kind}", reason=f"could not count the tenant's {kind}")
        return len(done.result[kind])
