"""The one module through which the API sends work (like Nova's ``compute/rpcapi.py``).

A submission creates the job record first, binds the idempotency key, then publishes the relay
request to the agent's ingress queue (:func:`nube.publish.publish_request`). If publishing
fails, the record and the key are removed again, so a client that got an error has no half-made
job, and a client that got ``202`` has a job that ends.
"""

from __future__ import annotations

from typing import Any

from api.services import Services
from nube.catalog import Operation
from nube.jobs import Job, body_fingerprint, new_job_id, now_iso
from nube.observability.tracing import active_trace_id
from nube.publish import publish_request
from nube.summary import target_of
from nube.tokens import TokenInfo
from nube.wire import RelayRequest


def submit(
    svc: Services,
    op: Operation,
    params: dict[str, Any],
    token: TokenInfo,
    idempotency_key: str | None = None,
) -> tuple[Job, bool]:
    """Accept ``op`` with validated ``params``; returns the job and whether it is new."""
    job = Job(
        id=new_job_id(),
        operation=op.name,
        tenant=token.tenant,
        queue=op.queue,
        target=target_of(op.name, params),
        submitted_at=now_iso(),
        trace_id=active_trace_id(),
    )
    request = request_of(job, params, token)
    svc.jobs.create(job, request)
    if idempotency_key:
        bound = svc.jobs.claim_idempotency_key(
            token.tenant, idempotency_key, job, body_fingerprint(op.name, params)
        )
        if bound.id != job.id:
            svc.jobs.discard(job)
            return bound, False
    try:
        publish_request(svc.celery, svc.jobs, job, request, kept=True)
    except Exception:
        svc.jobs.discard(job)
        if idempotency_key:
            svc.jobs.release_idempotency_key(token.tenant, idempotency_key)
        raise
    return job, True


def request_of(job: Job, params: dict[str, Any], token: TokenInfo) -> RelayRequest:
    """The relay request the agent receives for ``job``."""
    return RelayRequest(
        job_id=job.id,
        operation=job.operation,
        tenant=job.tenant,
        token_id=token.id,
        admin=token.admin,
        params=params,
    )
