"""One start-up for every nube process: Redis, sealing, the job store and the Celery app.

The API, the agent, the workers and Flower start the same way; what differs is their role,
which names their Celery app (``nube-<role>``) and their instance (``<role>.<hex8>@<node>``:
a worker's Celery hostname and its entry in the registry).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import redis
from celery import Celery

from nube.broker import make_celery
from nube.jobs import JobStore
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
    """Connect to Redis, load the keyring and audit log, make the Celery app and seal it.

    ``role`` is ``api``, ``agent``, ``containers``, ``vms`` or ``flower``. A missing or bad
    setting raises ``SettingsError`` naming the variable, before any message is sent.
    """
    client = connect(settings)
    security = load_security(settings, client)
    jobs = JobStore(client, RecordSealer(security.sealer))
    app = make_celery(settings, f"nube-{role}")
    secure_app(app, security, jobs)
    name = f"{role}.{uuid.uuid4().hex[:8]}@{settings.node}"
    app.conf.nube_instance_name = name
    return Process(name, client, security, jobs, app)
