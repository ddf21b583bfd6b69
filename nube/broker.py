"""The Celery application every service builds, with nube's no-loss delivery settings.

See docs/architecture.md ("Delivery guarantees") for why each setting is there. Messages are
published through :mod:`nube.publish`.

The broker is Redis (``NUBE_REDIS_URL``, or the primary of ``NUBE_REDIS_SENTINELS``,
see :func:`sentinel_options`) or RabbitMQ (``NUBE_BROKER_URL=amqp://...``, see
:func:`amqp_options`); results, job records and everything else stay on Redis either way.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from amqp.exceptions import AMQPError, MessageNacked  # type: ignore[import-untyped]
from celery import Celery
from celery.exceptions import Reject
from kombu.exceptions import OperationalError
from redis.connection import parse_url

from nube import redis_transport, tls
from nube.catalog import CATALOG, Catalog
from nube.redis_client import REDIS_ERRORS, sentinel_kwargs
from nube.settings import Settings, SettingsError

#: What a publish raises when the broker cannot take a message (on RabbitMQ also a refused
#: publish: a channel error or a negative publisher confirm).
PUBLISH_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    *REDIS_ERRORS,
    AMQPError,
    MessageNacked,
)

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


log = logging.getLogger(__name__)


@contextmanager
def redelivered_without_job_store(task_id: str, settings: Settings) -> Iterator[None]:
    """Run a task's first steps, those before it changes anything outside Redis: on RabbitMQ,
    should the job store (Redis) be unreachable there, the message goes back to the broker
    (Celery's ``Reject``, requeued) instead of being acknowledged as a failed task, which would
    lose its job. The redelivery waits for Redis in the replay guard; the task must leave its
    nonce open (a REJECTED task is not completed: :func:`nube.sealing.celery_hooks.install`).

    On Redis the error is left to fail the task: the job store is the broker, which cannot
    take the message back either, and the agent's reconciler relays again a job whose message
    was lost (a requeue as well could make two copies of it)."""
    try:
        yield
    except REDIS_ERRORS as e:
        if not settings.amqp:
            raise
        log.warning(
            "task %s left for redelivery: the job store is unreachable (%s)",
            task_id,
            type(e).__name__,
        )
        raise Reject("the job store is unreachable", requeue=True) from None


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


def amqp_options() -> dict[str, Any]:
    """Celery's settings for RabbitMQ (kombu's py-amqp transport).

    - Task queues are quorum queues (replicated, durable; they requeue an unacknowledged
      message as soon as its consumer's connection or channel closes), declared so whether
      listed (``nube.ingress``) or made on first use (every service queue, ``vms.<node>``).
      Celery's own pidbox (control) and event queues are not task queues: they stay classic,
      auto-delete and non-durable, as quorum queues cannot be.
    - Their exchanges are topic exchanges, so a retry's countdown goes through RabbitMQ's
      native delayed delivery (``celery_delayed_*``) instead of being held by the worker
      (quorum queues have no global QoS to make room for held messages).
    - Publisher confirms: a publish returns once RabbitMQ has the message (the quorum queue's
      majority has written it), or raises what RabbitMQ refused.
    - A worker's pidbox queue is not exclusive: after a partition the worker reconnects at once,
      while RabbitMQ still counts its old connection alive until the heartbeat times out; an
      exclusive queue of the same name would be locked (``RESOURCE_LOCKED``) and Celery would
      exit with an unrecoverable error. It still auto-deletes (``control_queue_expires``).
    """
    return {
        "control_queue_exclusive": False,
        "broker_transport_options": {"confirm_publish": True},
        "task_default_queue_type": "quorum",
        "task_create_missing_queue_type": "quorum",
        "task_default_exchange_type": "topic",
        "task_create_missing_queue_exchange_type": "topic",
        "broker_native_delayed_delivery_queue_type": "quorum",
        "worker_detect_quorum_queues": True,
    }


def sentinel_urls(settings: Settings) -> str:
    """The sentinels as one kombu/Celery URL: ``sentinel://:pw@host:port/db;sentinel://...``
    (the password is the primary's, ``NUBE_REDIS_PASSWORD``)."""
    target = parse_url(settings.redis_dsn)
    user, password = target.get("username") or "", target.get("password")
    auth = f"{quote(user, safe='')}:{quote(password, safe='')}@" if password else ""
    return ";".join(
        f"sentinel://{auth}{host}:{port}/{settings.redis_db}"
        for host, port in settings.sentinel_addresses
    )


def sentinel_options(settings: Settings) -> dict[str, Any]:
    """Celery's settings on Redis Sentinel: results (and the messages, unless RabbitMQ carries
    them) on the primary the sentinels name, found again after a failover (kombu's and
    Celery's ``sentinel://`` transport and backend; the broker keeps one client per channel)."""
    options = {
        "master_name": settings.redis_sentinel_master,
        "sentinel_kwargs": sentinel_kwargs(settings),
        "visibility_timeout": settings.visibility_timeout,
    }
    conf: dict[str, Any] = {
        "result_backend": sentinel_urls(settings),
        "result_backend_transport_options": options,
    }
    if not settings.amqp:
        conf |= {
            "broker_url": sentinel_urls(settings),
            "broker_transport": redis_transport.SENTINEL_TRANSPORT,
            "broker_transport_options": options,
        }
    return conf


def make_celery(settings: Settings, main: str, catalog: Catalog = CATALOG) -> Celery:
    """A Celery app on the settings' broker, configured for at-least-once, effectively-once;
    its results on Redis."""
    check_visibility_timeout(settings, catalog)
    app = Celery(main, broker=settings.broker, backend=settings.redis_dsn)
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
        task_track_started=False,  # the job record says running; no backend write
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
        worker_deduplicate_successful_tasks=False,  # the job record dedupes (terminal = skip)
        worker_send_task_events=True,
        task_send_sent_event=False,  # Flower starts at task-received; one seal less per hop
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
    if tls.redis_tls(settings):  # the result backend, and the broker when it is Redis
        tls.quiet_masked_url_warning()
        app.conf.redis_backend_use_ssl = tls.redis_options(settings)
        if not settings.amqp:
            app.conf.broker_use_ssl = tls.redis_options(settings)
    if tls.amqp_tls(settings):
        tls.check_server(settings, settings.broker, settings.publish_timeout)
        app.conf.broker_use_ssl = tls.amqp_options(settings)
    if settings.amqp:
        app.conf.update(amqp_options())
    elif settings.broker.startswith(("redis://", "rediss://")):
        app.conf.broker_transport = redis_transport.TRANSPORT  # one client per channel
    if settings.sentinel_addresses:
        app.conf.update(sentinel_options(settings))
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
