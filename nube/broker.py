"""The Celery application every service builds, with nube's no-loss delivery settings.

See docs/architecture.md ("Delivery guarantees") for why each setting is there. Messages are
published through :mod:`nube.publish`.
"""

from __future__ import annotations

from datetime import timedelta

from celery import Celery
from kombu.exceptions import OperationalError

from nube.catalog import CATALOG, Catalog
from nube.redis_client import REDIS_ERRORS
from nube.settings import Settings, SettingsError

#: What a publish raises when the broker cannot take a message.
PUBLISH_ERRORS: tuple[type[BaseException], ...] = (OperationalError, *REDIS_ERRORS)

#: The serializer of every message and result; the agent's sealed codec replaces it by name.
SERIALIZER = "json"
INGRESS_QUEUE = "nube.ingress"
RELAY_TASK = "agent.relay"
#: The relay message of job ``<id>`` has task id ``relay-<id>``; the operation's is the job id.
RELAY_ID_PREFIX = "relay-"


def relay_task_id(job_id: str) -> str:
    return RELAY_ID_PREFIX + job_id


def job_of_task(task_id: str) -> tuple[str, bool]:
    """The job a task id belongs to, and whether it is the job's relay message."""
    relay = task_id.startswith(RELAY_ID_PREFIX)
    return (task_id[len(RELAY_ID_PREFIX) :] if relay else task_id), relay


#: Seconds of margin between the longest operation's time limit and the visibility timeout.
VISIBILITY_MARGIN = 60


def check_visibility_timeout(settings: Settings, catalog: Catalog = CATALOG) -> None:
    """Refuse to start when a redelivery could overtake a still-running operation."""
    longest = max(op.time_limit for op in catalog)
    if settings.visibility_timeout < longest + VISIBILITY_MARGIN:
        raise SettingsError(
            f"NUBE_VISIBILITY_TIMEOUT: {settings.visibility_timeout} s must exceed the longest "
            f"operation time limit ({longest} s) by {VISIBILITY_MARGIN} s"
        )


def make_celery(settings: Settings, main: str, catalog: Catalog = CATALOG) -> Celery:
    """A Celery app on the settings' Redis, configured for at-least-once, effectively-once."""
    check_visibility_timeout(settings, catalog)
    app = Celery(main, broker=settings.broker_url, backend=settings.broker_url)
    transport = {"visibility_timeout": settings.visibility_timeout}
    app.conf.update(
        task_serializer=SERIALIZER,
        result_serializer=SERIALIZER,
        event_serializer="json",
        accept_content=[SERIALIZER],
        result_accept_content=[SERIALIZER],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        task_track_started=True,
        result_expires=timedelta(days=settings.result_expires_days),
        result_extended=True,
        broker_transport_options=transport,
        result_backend_transport_options=transport,
        visibility_timeout=settings.visibility_timeout,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=settings.publish_timeout,
        redis_socket_connect_timeout=settings.publish_timeout,
        redis_socket_timeout=30,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        worker_soft_shutdown_timeout=10.0,
        worker_deduplicate_successful_tasks=True,
        worker_send_task_events=True,
        task_send_sent_event=True,
        task_publish_retry=True,
        task_publish_retry_policy={
            "max_retries": 3,
            "interval_start": 0,
            "interval_step": 0.5,
            "interval_max": 1,
        },
        task_default_queue=INGRESS_QUEUE,
        task_routes={RELAY_TASK: {"queue": INGRESS_QUEUE}}
        | {op.name: {"queue": op.queue} for op in catalog},
        task_create_missing_queues=True,
        worker_hijack_root_logger=False,
    )
    return app


def run_worker(app: Celery, queues: list[str], settings: Settings, extra: list[str]) -> None:
    """Run ``app`` as a Celery worker on ``queues`` (blocks until it shuts down).

    Mingle and gossip are off: nube's services find each other through the registry, and every
    control message would have to be sealed anyway.
    """
    app.worker_main(
        [
            "worker",
            f"--queues={','.join(queues)}",
            f"--hostname={app.conf.nube_instance_name}",
            f"--loglevel={settings.log_level}",
            "--task-events",
            "--without-mingle",
            "--without-gossip",
            *extra,
        ]
    )
