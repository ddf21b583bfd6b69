"""gunicorn settings for the API: gevent workers, so a long-poll ties up no server worker.

Logs: gunicorn's own records go through nube's handler (JSON lines or text,
:mod:`nube.observability.logs`); the API writes its own access lines (``nube.access``).
Metrics: every worker counts into ``PROMETHEUS_MULTIPROC_DIR`` (a fresh directory made here when
unset) and any of them answers ``/metrics`` with the sum.
"""

import atexit
import os
import shutil
import tempfile

from nube.observability import logs

bind = os.environ.get("NUBE_API_BIND", "127.0.0.1:8080")
worker_class = "gevent"
workers = int(os.environ.get("NUBE_API_WORKERS", "2"))
worker_connections = 1000
timeout = 90  # above the longest wait (60 s)
graceful_timeout = 10
accesslog = None  # api.metrics logs each request (route, status, duration)
errorlog = "-"
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {
        "nube": {
            "()": logs.handler,
            "service": "api",
            "node": os.environ.get("NUBE_NODE", os.uname().nodename),
        }
    },
    "root": {"level": "INFO", "handlers": ["nube"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["nube"], "propagate": False},
        "gunicorn.access": {"level": "WARNING", "handlers": ["nube"], "propagate": False},
    },
}

if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _metrics_dir = tempfile.mkdtemp(prefix="nube-api-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir
    _master = os.getpid()

    def _remove_metrics_dir() -> None:
        if os.getpid() == _master:  # not in a worker
            shutil.rmtree(_metrics_dir, ignore_errors=True)

    atexit.register(_remove_metrics_dir)


def child_exit(server: object, worker: object) -> None:
    """A worker exited: its live gauges go (its counters stay in the sum)."""
    from nube.observability.metrics import mark_process_dead

    mark_process_dead(worker.pid)  # type: ignore[attr-defined]
