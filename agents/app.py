"""The agent's Celery app: consumes ``nube.ingress`` and relays every request."""

from __future__ import annotations

import time
import uuid
from typing import Any

from celery import Celery

from agents.relay import Relay, default_middlewares
from nube.broker import INGRESS_QUEUE, RELAY_TASK, make_celery
from nube.jobs import JobStore
from nube.redis_client import connect
from nube.registry import ServiceInstance, heartbeat_while_serving
from nube.settings import Settings


def create_agent_app(settings: Settings) -> Celery:
    """The agent: the relay task on the ingress queue, and its heartbeat."""
    app = make_celery(settings, "nube-agent")
    relay = Relay(app, JobStore(connect(settings)), default_middlewares())

    @app.task(name=RELAY_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
    def relay_task(envelope: dict[str, Any]) -> None:
        relay.relay(envelope)

    name = f"agent.{uuid.uuid4().hex[:8]}@{settings.node}"
    app.conf.nube_instance_name = name

    heartbeat_while_serving(
        settings,
        lambda: ServiceInstance(
            name=name,
            kind="agent",
            node=settings.node,
            queues=[INGRESS_QUEUE],
            started_at=time.time(),
        ),
    )
    return app
