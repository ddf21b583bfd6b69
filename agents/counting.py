"""How many containers or VMs a tenant has, for the policy's count caps.

Only workers touch Docker and libvirt, so the agent counts the way any client would: it runs a
list operation as a job through the broker and waits for its result. A count that cannot be had
in time denies the request (a cap that cannot be checked is not waived).
"""

from __future__ import annotations

from celery import Celery

from nube.catalog import CATALOG
from nube.errors import PolicyDenied
from nube.jobs import Job, JobStatus, JobStore, new_job_id, now_iso

#: kind → (list operation, its parameters, the result member holding the list)
LISTS = {
    "containers": ("containers.list", {"all": True}, "containers"),
    "vms": ("vms.list", {"state": "all"}, "vms"),
}


class BrokerCounts:
    """``counts(tenant, kind)`` answered by a list job on the kind's worker queue."""

    def __init__(self, app: Celery, jobs: JobStore, timeout: float = 30.0) -> None:
        self.app = app
        self.jobs = jobs
        self.timeout = timeout

    def __call__(self, tenant: str, kind: str) -> int:
        name, params, member = LISTS[kind]
        op = CATALOG.get(name)
        job = self.jobs.create(
            Job(
                id=new_job_id(),
                operation=name,
                tenant=tenant,
                queue=op.queue,
                submitted_at=now_iso(),
            )
        )
        self.app.send_task(
            name,
            kwargs={"params": params, "job": {"tenant": tenant, "admin": False}},
            task_id=job.id,
            queue=op.queue,
            headers={"nube": {"tenant": tenant, "job": job.id, "op": name, "target": None}},
        )
        done = self.jobs.wait(job.id, self.timeout)
        if done is None or done.status != JobStatus.SUCCEEDED:
            raise PolicyDenied(rule=f"max_{kind}", reason=f"could not count the tenant's {kind}")
        return len(done.result[member])
