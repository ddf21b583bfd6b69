"""One start-up for every nube process: Redis, sealing, the job store and the Celery app.

The API, the agent, the workers and Flower start the same way; what differs is their role,
which names their Celery app (``nube-<role>``) and their instance (``<role>.<hex8>@<node>``:
a worker's Celery hostname and its entry in the registry).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

import redis
from celery import Celery

from nube.broker import make_celery
from nube.jobs import JobStore
from nube.observability import logs, metrics, tasks, tracing
from nube.observability.instrument import instrument_security
from nube.redis_client import connect
from nube.sealing.setup import RecordSealer, Security, load_security, secure_app
from nube.settings import Settings


@dataclass(frozen=True)
class Process:
    """What a started process holds."""

    name: str
    """``<role>.<hex8>@<node>``, new at every start."""
    redis: redis.Redis
    security: Security
    jobs: JobStore
    """Job records, with results and error texts sealed."""
    celery: Celery
    """Sends and accepts sealed content only; what it refuses is audited and fails its job."""


def bootstrap(settings: Settings, role: str) -> Process:
    """Set up logging and tracing, connect to Redis, load the keyring and audit log, make the
    Celery app and seal it; count, time and trace its messages (:mod:`nube.observability`).

    ``role`` is ``api``, ``agent``, ``containers``, ``vms`` or ``flower``. A missing or bad
    setting raises ``SettingsError`` naming the variable, before any message is sent.
    """
    logs.configure(role, settings.node, settings.log_level)
    tracing.setup(role)
    client = connect(settings)
    security = load_security(settings, client)
    instrument_security(security.sealer, security.audit)
    tasks.install(role)
    _serve_metrics(role, settings)
    jobs = JobStore(client, RecordSealer(security.sealer))
    app = make_celery(settings, f"nube-{role}")
    secure_app(app, security, jobs)
    name = f"{role}.{uuid.uuid4().hex[:8]}@{settings.node}"
    app.conf.nube_instance_name = name
    return Process(name, client, security, jobs, app)


def _serve_metrics(role: str, settings: Settings) -> None:
    """An agent's or worker's ``/metrics`` on ``NUBE_METRICS_PORT`` (the API serves its own),
    on ``NUBE_METRICS_ADDRESS`` (default 127.0.0.1); a VM worker's with its node's stats."""
    port = os.environ.get(metrics.PORT_VARIABLE)
    if port and role not in ("api", "flower"):
        address = os.environ.get("NUBE_METRICS_ADDRESS", "127.0.0.1")
        metrics.serve(int(port), address, metrics.role_collectors(role, settings))
