"""The agent's Celery app: consumes ``nube.ingress``, relays every request, audits outcomes."""

from __future__ import annotations

import time
from typing import Any

from celery import Celery, Task
from celery.signals import worker_ready, worker_shutdown

from agents.counting import BrokerCounts
from agents.node_watch import watch_nodes
from agents.outcomes import OutcomeListener
from agents.policy import Policy, load_policy
from agents.reconciler import Reconciler
from agents.relay import Relay, default_middlewares
from nube.bootstrap import bootstrap
from nube.broker import INGRESS_QUEUE, RELAY_TASK
from nube.errors import PolicyInvalid
from nube.jobs import JobStore
from nube.placement import Placements
from nube.registry import ServiceInstance, heartbeat_while_serving
from nube.sealing.celery_hooks import SEALED_REQUEST, verify_request
from nube.sealing.setup import Security
from nube.settings import Settings, SettingsError


def create_agent_app(settings: Settings) -> Celery:
    """The agent: the relay task on the ingress queue, its outcome listener and heartbeat."""
    process = bootstrap(settings, "agent")
    policy = load_agent_policy(settings)
    app, jobs = process.celery, process.jobs
    counts = BrokerCounts(app, jobs)
    middlewares = default_middlewares(process.security, policy, counts, Placements(process.redis))
    relay = Relay(app, jobs, middlewares, settings)

    @app.task(
        name=RELAY_TASK,
        bind=True,
        acks_late=True,
        reject_on_worker_lost=True,
        ignore_result=True,
        Request=SEALED_REQUEST,  # the relay thread runs the body the consumer opened
    )
    def relay_task(self: Task, request: dict[str, Any]) -> None:
        verify_request(self)
        relay.relay(request)

    heartbeat_while_serving(
        settings,
        lambda: ServiceInstance(
            name=process.name,
            kind="agent",
            node=settings.node,
            queues=[INGRESS_QUEUE],
            started_at=time.time(),
        ),
    )
    _listen_for_outcomes(app, jobs, process.security)
    _reconcile(app, jobs, settings)
    watch_nodes(jobs, settings)
    return app


def load_agent_policy(settings: Settings) -> Policy:
    """The policy file named by ``NUBE_POLICY_FILE`` (without one, every image is allowed and
    the hardening defaults apply); a bad one is a ``SettingsError`` naming the variable."""
    if not settings.policy_file:
        return Policy.from_dict({})
    try:
        return load_policy(settings.policy_file)
    except PolicyInvalid as e:
        raise SettingsError(f"NUBE_POLICY_FILE: {e.message}") from e


def _listen_for_outcomes(app: Celery, jobs: JobStore, security: Security) -> None:
    @worker_ready.connect(weak=False)
    def start(**_: Any) -> None:
        listener = OutcomeListener(app, jobs, security.audit)
        listener.start()
        worker_shutdown.connect(lambda **_: listener.stop(), weak=False)


def _reconcile(app: Celery, jobs: JobStore, settings: Settings) -> None:
    if not settings.reconcile_seconds:
        return

    @worker_ready.connect(weak=False)
    def start(**_: Any) -> None:
        reconciler = Reconciler(app, jobs, settings.reconcile_seconds)
        reconciler.start()
        worker_shutdown.connect(lambda **_: reconciler.stop(), weak=False)
