"""Every metric nube exports (``prometheus-client``), and how a process serves them.

Each process counts what passes through it, in memory (no Redis round trip per metric): the API
at ``/metrics`` (:mod:`api.metrics`), an agent or worker on ``NUBE_METRICS_PORT`` when set
(:func:`serve`). Processes that fork (gunicorn's workers, Celery's prefork pool) use
prometheus-client's multiprocess mode: ``PROMETHEUS_MULTIPROC_DIR`` names a directory of
memory-mapped files, one per process, that the serving process adds up. When a process serves
metrics and the variable is unset, this module makes a directory of its own before
prometheus-client is imported (and removes it at exit).

What is the same for the whole cluster (queue depths, consumers, the audit chain) is read from
Redis only when Prometheus scrapes the API (:mod:`nube.observability.cluster`).
``docs/operations.md`` ("Observability") lists every metric.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Sequence

MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
PORT_VARIABLE = "NUBE_METRICS_PORT"


def _own_multiprocess_dir() -> None:
    """A fresh directory for this process tree when it serves metrics and none is given."""
    if os.environ.get(PORT_VARIABLE) and not os.environ.get(MULTIPROC_VARIABLE):
        path = tempfile.mkdtemp(prefix="nube-metrics-")
        os.environ[MULTIPROC_VARIABLE] = path
        owner = os.getpid()

        def remove() -> None:
            if os.getpid() == owner:  # not in a forked child
                shutil.rmtree(path, ignore_errors=True)

        atexit.register(remove)


_own_multiprocess_dir()

# prometheus-client chooses its value class (in memory or memory-mapped) at import.
from prometheus_client import (  # noqa: E402
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)
from prometheus_client import multiprocess as _multiprocess  # noqa: E402
from prometheus_client.registry import Collector  # noqa: E402

from nube.settings import Settings  # noqa: E402

#: Latency buckets (seconds): 1 ms to 5 min — a relay takes milliseconds, a VM create minutes.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

# --- the API ------------------------------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "nube_http_requests_total", "HTTP requests answered by the API", ["method", "route", "status"]
)
HTTP_DURATION = Histogram(
    "nube_http_request_duration_seconds",
    "Time to answer an HTTP request (a long-poll's wait included)",
    ["method", "route"],
    buckets=BUCKETS,
)

# --- the hops: api -> agent (ingress), agent -> worker (operation) ------------------------------
PUBLISHED = Counter(
    "nube_messages_published_total",
    "Messages put on the broker, by hop (ingress: api/reconciler -> agent; worker: agent -> "
    "worker) and the process's role",
    ["hop", "role", "operation"],
)
PUBLISH_DURATION = Histogram(
    "nube_publish_duration_seconds",
    "Time to seal and send one message",
    ["hop", "operation"],
    buckets=BUCKETS,
)
RECONCILER_RELAYS = Counter(
    "nube_reconciler_relays_total", "Relay requests the agent's reconciler sent again"
)
QUEUE_WAIT = Histogram(
    "nube_queue_wait_seconds",
    "Time from send to start of a message's first delivery (ingress: api -> agent; worker: "
    "agent -> worker)",
    ["hop", "operation"],
    buckets=BUCKETS,
)
TASKS = Counter(
    "nube_tasks_total",
    "Messages handled (role agent: relays; workers: operation runs), by outcome",
    ["role", "operation", "outcome"],
)
TASK_DURATION = Histogram(
    "nube_task_duration_seconds",
    "Time to handle a message (role agent: the relay; workers: the operation's run)",
    ["role", "operation"],
    buckets=BUCKETS,
)
TASK_FAILURES = Counter(
    "nube_task_failures_total", "Failed operation runs by error code", ["operation", "code"]
)
TASK_RETRIES = Counter("nube_task_retries_total", "Operation runs retried", ["operation"])
REDELIVERIES = Counter(
    "nube_redeliveries_total",
    "Messages delivered again (a consumer died or did not acknowledge in time)",
    ["role", "operation"],
)
RELAYS = Counter(
    "nube_relay_outcomes_total",
    "The agent's decisions: routed, denied (policy) or refused (with the error code)",
    ["operation", "outcome", "code"],
)
JOBS_ENDED = Counter(
    "nube_jobs_ended_total",
    "Jobs that ended, by status (a refused relay fails its job)",
    ["operation", "status"],
)

# --- sealing and audit --------------------------------------------------------------------------
SEALING = Counter(
    "nube_sealing_total", "Seals and opens by this process, by outcome", ["action", "outcome"]
)
SEALING_FAILURES = Counter(
    "nube_sealing_failures_total", "Opens or seals that failed, by reason", ["action", "reason"]
)
SEALING_KEY = Gauge(
    "nube_sealing_key_info",
    "The key id that seals new messages (value 1)",
    ["key_id"],
    multiprocess_mode="max",
)
REFUSED = Counter(
    "nube_refused_messages_total",
    "Messages refused before any task ran (bad seal, replay, misbinding...), by reason",
    ["reason"],
)
AUDIT_WRITES = Counter(
    "nube_audit_writes_total", "Audit records appended, by outcome", ["outcome", "actor"]
)


def registry() -> CollectorRegistry:
    """What this process serves: in multiprocess mode every process's files added up."""
    from prometheus_client import REGISTRY

    if not os.environ.get(MULTIPROC_VARIABLE):
        return REGISTRY
    collected = CollectorRegistry()
    _multiprocess.MultiProcessCollector(collected)
    return collected


def serve(port: int, address: str = "127.0.0.1", extra: Sequence[Collector] = ()) -> None:
    """Serve ``/metrics`` on ``address:port`` from a daemon thread (an agent or a worker), with
    the ``extra`` collectors read at each scrape (:func:`role_collectors`)."""
    served = registry()
    for collector in extra:
        served.register(collector)
    start_http_server(port, addr=address, registry=served)


def role_collectors(role: str, settings: Settings) -> list[Collector]:
    """What a process of ``role`` reads at each scrape besides its counters: a VM worker on
    libvirt, its node's statistics (:mod:`nube.observability.node`)."""
    if role != "vms" or settings.vm_driver != "libvirt":
        return []
    from nube.observability.node import NodeStatsCollector

    return [NodeStatsCollector(settings.libvirt_uri, settings.node)]


def mark_process_dead(pid: int) -> None:
    """Drop the live gauges of a process that exited (gunicorn's ``child_exit``)."""
    if os.environ.get(MULTIPROC_VARIABLE):
        _multiprocess.mark_process_dead(pid)
