"""Bare Celery apps with one no-op task: the baselines the benchmarks compare nube to.

Each :class:`Profile` is a Celery configuration plus the worker's command line:

- ``nube``: nube's delivery settings (JSON, ``task_acks_late``, prefetch multiplier 1, a Redis
  result backend) on a prefork pool of 2, like nube's workers; no task events, no
  ``task_track_started``, no ``result_extended`` (nube turns those on; this baseline does not
  pay for them);
- ``fast``: the fastest no-op round trip and burst found on the benchmark machine, a
  ``.get()`` on a Redis result still included (see :data:`CANDIDATES`, measured by
  ``bench/bench_message_path.py --tune``).

A worker runs as ``celery -A bench.bare_celery worker`` with ``BARE_PROFILE`` and
``BARE_BROKER`` in its environment (:func:`worker_argv`); a client builds the same app with
:func:`make_app`. Each profile consumes its own queue, ``bare.<profile>``.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any

from celery import Celery

TASK = "bare.noop"

_NUBE_CONF: dict[str, Any] = {
    "task_serializer": "json",
    "result_serializer": "json",
    "accept_content": ["json"],
    "worker_prefetch_multiplier": 1,
    "task_acks_late": True,
    "worker_hijack_root_logger": False,
}

#: What a speed-tuned worker changes (Celery's "Optimizing" guide: a large prefetch for many
#: short tasks, acknowledgement on receipt, no rate-limit bookkeeping, no heartbeats or events).
_FAST_CONF: dict[str, Any] = _NUBE_CONF | {
    "worker_prefetch_multiplier": 64,
    "task_acks_late": False,
    "worker_disable_rate_limits": True,
    "worker_send_task_events": False,
    "task_send_sent_event": False,
    "result_expires": None,
    "result_backend_always_retry": False,
}

_QUIET = ("--without-mingle", "--without-gossip", "-l", "WARNING")
_FAST_FLAGS = ("--without-heartbeat", *_QUIET)


@dataclass(frozen=True)
class Profile:
    name: str
    what: str
    conf: dict[str, Any] = field(repr=False)
    worker_args: tuple[str, ...]

    @property
    def queue(self) -> str:
        return f"bare.{self.name}"


#: Speed-tuned configurations tried by ``bench_message_path.py --tune``; the best became
#: ``fast``. Figures in docs/benchmarks.md ("Message path").
CANDIDATES: dict[str, Profile] = {
    p.name: p
    for p in [
        Profile(
            "prefork2", "prefork x2, prefetch 64, acks early", _FAST_CONF,
            ("--pool", "prefork", "--concurrency", "2", *_FAST_FLAGS),
        ),
        Profile(
            "prefork2-p4", "prefork x2, prefetch 4, acks early",
            _FAST_CONF | {"worker_prefetch_multiplier": 4},
            ("--pool", "prefork", "--concurrency", "2", *_FAST_FLAGS),
        ),
        Profile(
            "prefork2-p256", "prefork x2, prefetch 256, acks early",
            _FAST_CONF | {"worker_prefetch_multiplier": 256},
            ("--pool", "prefork", "--concurrency", "2", *_FAST_FLAGS),
        ),
        Profile(
            "prefork4", "prefork x4, prefetch 64, acks early", _FAST_CONF,
            ("--pool", "prefork", "--concurrency", "4", *_FAST_FLAGS),
        ),
        Profile(
            "solo", "solo pool, prefetch 64, acks early", _FAST_CONF,
            ("--pool", "solo", *_FAST_FLAGS),
        ),
        Profile(
            "threads2", "threads x2, prefetch 64, acks early", _FAST_CONF,
            ("--pool", "threads", "--concurrency", "2", *_FAST_FLAGS),
        ),
        Profile(
            "threads4", "threads x4, prefetch 64, acks early", _FAST_CONF,
            ("--pool", "threads", "--concurrency", "4", *_FAST_FLAGS),
        ),
        Profile(
            "threads8", "threads x8, prefetch 64, acks early", _FAST_CONF,
            ("--pool", "threads", "--concurrency", "8", *_FAST_FLAGS),
        ),
        Profile(
            "gevent32", "gevent x32, prefetch 64, acks early", _FAST_CONF,
            ("--pool", "gevent", "--concurrency", "32", *_FAST_FLAGS),
        ),
    ]
}  # fmt: skip

NUBE = Profile(
    "nube",
    "nube's delivery settings: acks late, prefetch 1, prefork x2",
    _NUBE_CONF,
    ("--pool", "prefork", "--concurrency", "2", *_QUIET),
)
#: The tuned baseline: the best of :data:`CANDIDATES` on the benchmark machine.
FAST = Profile("fast", CANDIDATES["threads8"].what, _FAST_CONF, CANDIDATES["threads8"].worker_args)

PROFILES: dict[str, Profile] = {NUBE.name: NUBE, FAST.name: FAST} | CANDIDATES


def make_app(profile: Profile, broker: str) -> Celery:
    """The profile's app on ``broker`` (Redis: also its result backend), with the no-op task."""
    app = Celery(f"bare-{profile.name}", broker=broker, backend=broker)
    app.conf.update(profile.conf)
    app.conf.task_default_queue = profile.queue

    @app.task(name=TASK)
    def noop(params: dict[str, Any]) -> dict[str, bool]:
        return {"ok": True}

    return app


def worker_argv(profile: Profile, concurrency: int | None = None) -> list[str]:
    """The command line of a worker for ``profile`` (``concurrency`` replaces its own)."""
    args = list(profile.worker_args)
    if concurrency is not None:
        if "--concurrency" in args:
            args[args.index("--concurrency") + 1] = str(concurrency)
        else:
            args += ["--concurrency", str(concurrency)]
    return [sys.executable, "-m", "celery", "-A", "bench.bare_celery", "worker",
            "-Q", profile.queue, *args]  # fmt: skip


#: The app ``celery -A bench.bare_celery worker`` runs (``BARE_PROFILE``, ``BARE_BROKER``).
app = make_app(
    PROFILES[os.environ.get("BARE_PROFILE", "nube")],
    os.environ.get("BARE_BROKER", "redis://127.0.0.1:6379/0"),
)
