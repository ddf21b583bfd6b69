"""What nube's message path costs, measured against bare Celery in the same run.

One job is a cheap read (``vms.hypervisor_info`` on libvirt's ``test:///default``), so the
numbers are the path, not the backend. Five ways, each measured on the same private Redis:

- ``celery``: a bare Celery no-op task with nube's delivery settings (JSON, acks late, prefetch
  1, prefork x2; ``bench/bare_celery.py`` profile ``nube``), ``apply_async().get()``: baseline 1;
- ``fast``: the same no-op on a bare Celery tuned for speed (profile ``fast``: the best of
  ``bare_celery.CANDIDATES`` on the benchmark machine), still ``.get()`` on a Redis result:
  baseline 2;
- ``direct``: a nube job published straight to the worker queue (sealed, job record, worker
  runtime), skipping the agent;
- ``agent``: the same job through the agent (``nube.ingress`` → unseal, validate, policy,
  audit, route, reseal → worker): ``agent - direct`` is the agent hop;
- ``api``: ``GET /v1/hypervisors`` over HTTP (gunicorn + gevent) with ``Prefer:
  respond-async``, then waited for on the job record (``JobStore.wait``).

Latency: sequential jobs, p50/p95 in ms. Throughput: a burst of jobs submitted at once (8
submitting threads), completed jobs per second. Ratios are against both baselines.

``--tune`` measures every speed-tuned candidate of ``bench/bare_celery.py`` (and the ``nube``
profile for reference), all workers running, interleaved, and prints them: how ``fast`` was
chosen. Redis is the stack's (AOF, ``appendfsync always``, as nube runs it); ``--fsync
everysec`` runs everything on a Redis that fsyncs once a second instead.

    .venv/bin/python bench/bench_message_path.py [--n 200] [--burst 300] [--tune]
        [--fsync always|everysec]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nube.broker import INGRESS_QUEUE, RELAY_TASK, make_celery
from nube.jobs import Job, JobStore, new_job_id, now_iso
from nube.sealing.setup import RecordSealer, load_security, secure_app
from nube.settings import load_settings
from nube.tokens import Scope, TokenStore
from nube.tools.client import NubeClient
from nube.tools.devstack import ROOT, Stack

sys.path.insert(0, str(ROOT))
from bench.bare_celery import CANDIDATES, FAST, NUBE, TASK, Profile, make_app, worker_argv

OP = "vms.hypervisor_info"
TENANT = "bench"
#: The bare ways and their profiles; the others are nube's.
BARE = {"celery": NUBE, "fast": FAST}


class RelaxedStack(Stack):
    """The stack on a Redis that fsyncs its AOF once a second instead of on every write
    (``--fsync everysec``: not nube's setting; shows what the durable Redis costs)."""

    def redis_config(self) -> str:
        return super().redis_config().replace('appendfsync "always"', 'appendfsync "everysec"')


def start_bare(stack: Stack, profile: Profile) -> None:
    """A bare worker for ``profile`` on the stack's Redis, until it answers a no-op."""
    stack.spawn(f"bare-{profile.name}", worker_argv(profile), **bare_env(stack, profile))
    make_app(profile, stack.broker_url).send_task(TASK, args=({},)).get(timeout=60)


def bare_env(stack: Stack, profile: Profile) -> dict[str, str]:
    return {"BARE_BROKER": stack.broker_url, "BARE_PROFILE": profile.name}


class Paths:
    """Submit-and-wait functions for each way, sharing one stack."""

    def __init__(self, stack: Stack, bare: dict[str, Profile]) -> None:
        settings = load_settings(stack.env())
        client = stack.redis()
        security = load_security(settings, client)
        self.app = make_celery(settings, "bench")
        secure_app(self.app, security)
        self.jobs = JobStore(client, RecordSealer(security.sealer))
        secret, _ = TokenStore(client).create(TENANT, [Scope.READ])
        self.http = NubeClient(stack.api_url, secret)
        self.bare: dict[str, Any] = {w: make_app(p, stack.broker_url) for w, p in bare.items()}

    def submitter(self, way: str) -> Callable[[], str]:
        if way in self.bare:
            app = self.bare[way]
            return lambda: str(app.send_task(TASK, args=({},)).id)
        submit: Callable[[], str] = getattr(self, way)
        return submit

    def _job(self) -> Job:
        job = Job(id=new_job_id(), operation=OP, tenant=TENANT, queue="vms", submitted_at=now_iso())
        return self.jobs.create(job)

    def direct(self) -> str:
        job = self._job()
        self.app.send_task(
            OP,
            kwargs={"params": {}, "job": {"tenant": TENANT}},
            task_id=job.id,
            queue="vms",
            headers={"nube": {"tenant": TENANT, "job": job.id}},
        )
        return job.id

    def agent(self) -> str:
        job = self._job()
        request = {"job_id": job.id, "operation": OP, "tenant": TENANT, "params": {}}
        self.app.send_task(
            RELAY_TASK,
            args=(request,),
            task_id=f"relay-{job.id}",
            queue=INGRESS_QUEUE,
            headers={"nube": {"tenant": TENANT, "job": job.id, "op": OP}},
        )
        return job.id

    def api(self) -> str:
        return str(self.http.submit("GET", "/v1/hypervisors")["id"])

    def wait(self, way: str, job_id: str) -> None:
        if way in self.bare:
            self.bare[way].AsyncResult(job_id).get(timeout=60)
            return
        job = self.jobs.wait(job_id, 60)
        assert job is not None and job.status == "succeeded", job


def latency(paths: Paths, ways: list[str], n: int) -> dict[str, list[float]]:
    """Sequential round trips, interleaved so every way sees the same load."""
    samples: dict[str, list[float]] = {w: [] for w in ways}
    submit = {w: paths.submitter(w) for w in ways}
    for _ in range(n):
        for way in ways:
            started = time.perf_counter()
            paths.wait(way, submit[way]())
            samples[way].append((time.perf_counter() - started) * 1000)
    return samples


def throughput(paths: Paths, way: str, burst: int) -> float:
    submit = paths.submitter(way)
    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda _: submit(), range(burst)))
    for job_id in ids:
        paths.wait(way, job_id)
    return burst / (time.perf_counter() - started)


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--burst", type=int, default=300)
    parser.add_argument("--tune", action="store_true", help="measure the bare candidates")
    parser.add_argument(
        "--fsync", choices=["always", "everysec"], default="always", help="Redis appendfsync"
    )
    args = parser.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        kind = Stack if args.fsync == "always" else RelaxedStack
        stack = kind(workdir=Path(tmp), libvirt_uri="test:///default")
        try:
            stack.start_redis()
            if args.tune:
                tune(stack, args.n, args.burst)
                return
            stack.start_agent()
            stack.start_worker("vms")
            stack.start_api()
            for profile in BARE.values():
                start_bare(stack, profile)
            stack.wait_ready(["nube.ingress", "vms"])
            ways = ["celery", "fast", "direct", "agent", "api"]
            paths = Paths(stack, BARE)
            latency(paths, ways, 10)  # warm-up
            samples = latency(paths, ways, args.n)
            report(samples, {w: throughput(paths, w, args.burst) for w in ways})
        finally:
            stack.stop_all()
            print(f"load average at the end: {load_average()}")


def machine() -> str:
    return (
        f"{platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {load_average()}"
    )


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def tune(stack: Stack, n: int, burst: int, rounds: int = 3) -> None:
    """Every candidate's worker at once on the stack's Redis (each on its own queue), measured
    interleaved so they share the machine's noise: ``n`` round trips each, then ``rounds``
    bursts each in turn; the median and the best burst rate."""
    profiles = {p.name: p for p in [NUBE, *CANDIDATES.values()]}
    for profile in profiles.values():
        start_bare(stack, profile)
    paths = Paths(stack, profiles)
    latency(paths, list(profiles), 10)
    samples = latency(paths, list(profiles), n)
    rates: dict[str, list[float]] = {name: [] for name in profiles}
    for _ in range(rounds):
        for name in profiles:
            rates[name].append(throughput(paths, name, burst))
    print(f"{'profile':14} {'p50 ms':>7} {'p95 ms':>7} {'jobs/s med':>11} {'best':>7}  what")
    for name, profile in profiles.items():
        values = samples[name]
        print(
            f"{name:14} {pct(values, 50):7.2f} {pct(values, 95):7.2f} "
            f"{statistics.median(rates[name]):11.1f} {max(rates[name]):7.1f}  {profile.what}"
        )


def report(samples: dict[str, list[float]], rates: dict[str, float]) -> None:
    print(
        f"{'way':8} {'p50 ms':>7} {'p95 ms':>7} {'jobs/s':>8} "
        f"{'p50 x celery':>13} {'rate x celery':>14} {'p50 x fast':>11} {'rate x fast':>12}"
    )
    for way, values in samples.items():
        p50, p95 = pct(values, 50), pct(values, 95)
        ratios = [
            f"{p50 / pct(samples[base], 50):{w1}.2f} {rates[way] / rates[base]:{w2}.2f}"
            for base, w1, w2 in (("celery", 13, 14), ("fast", 11, 12))
        ]
        print(f"{way:8} {p50:7.1f} {p95:7.1f} {rates[way]:8.1f} " + " ".join(ratios))
    hop50 = pct(samples["agent"], 50) - pct(samples["direct"], 50)
    hop95 = pct(samples["agent"], 95) - pct(samples["direct"], 95)
    print(
        f"agent hop: +{hop50:.1f} ms p50, +{hop95:.1f} ms p95; "
        f"throughput {rates['agent'] / rates['direct']:.2f}x of direct"
    )
    print(f"celery = bare profile {NUBE.name!r} ({NUBE.what}); fast = {FAST.what}")


if __name__ == "__main__":
    main()
