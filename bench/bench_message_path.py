"""What nube's message path costs, measured against bare Celery in the same run.

One job is a cheap read (``vms.hypervisor_info`` on libvirt's ``test:///default``), so the
numbers are the path, not the backend. Four ways, each measured on the same private Redis:

- ``celery``: a bare Celery no-op task (JSON, acks late), ``apply_async().get()``: the baseline;
- ``direct``: a nube job published straight to the worker queue (sealed, job record, worker
  runtime), skipping the agent;
- ``agent``: the same job through the agent (``nube.ingress`` → unseal, validate, policy,
  audit, route, reseal → worker): ``agent - direct`` is the agent hop;
- ``api``: ``GET /v1/hypervisors`` with ``Prefer: wait=30`` over HTTP (gunicorn + gevent).

Latency: sequential jobs, p50/p95 in ms. Throughput: a burst of jobs submitted at once,
completed jobs per second. Ratios are against ``celery``.

    .venv/bin/python bench/bench_message_path.py [--n 200] [--burst 300]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from nube.broker import INGRESS_QUEUE, RELAY_TASK, make_celery
from nube.jobs import Job, JobStore, new_job_id, now_iso
from nube.sealing.setup import RecordSealer, load_security, secure_app
from nube.settings import load_settings
from nube.tokens import Scope, TokenStore
from nube.tools.client import NubeClient
from nube.tools.devstack import PY, ROOT, Stack

OP = "vms.hypervisor_info"
TENANT = "bench"


class Paths:
    """Submit-and-wait functions for each way, sharing one stack."""

    def __init__(self, stack: Stack) -> None:
        settings = load_settings(stack.env())
        client = stack.redis()
        security = load_security(settings, client)
        self.app = make_celery(settings, "bench")
        secure_app(self.app, security)
        self.jobs = JobStore(client, RecordSealer(security.sealer))
        secret, _ = TokenStore(client).create(TENANT, [Scope.READ])
        self.http = NubeClient(stack.api_url, secret)
        os.environ["BARE_BROKER"] = stack.broker_url
        from bench.bare_celery import app as bare

        self.bare = bare

    def _job(self) -> Job:
        job = Job(id=new_job_id(), operation=OP, tenant=TENANT, queue="vms", submitted_at=now_iso())
        return self.jobs.create(job)

    def celery(self) -> str:
        return self.bare.send_task("bare.noop", args=({},), queue="bare").id

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
        if way == "celery":
            self.bare.AsyncResult(job_id).get(timeout=60)
            return
        job = self.jobs.wait(job_id, 60)
        assert job is not None and job.status == "succeeded", job


def latency(paths: Paths, ways: list[str], n: int) -> dict[str, list[float]]:
    """Sequential round trips, interleaved so every way sees the same load."""
    samples: dict[str, list[float]] = {w: [] for w in ways}
    for _ in range(n):
        for way in ways:
            started = time.perf_counter()
            paths.wait(way, getattr(paths, way)())
            samples[way].append((time.perf_counter() - started) * 1000)
    return samples


def throughput(paths: Paths, way: str, burst: int) -> float:
    submit: Callable[[], str] = getattr(paths, way)
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
    args = parser.parse_args()
    ways = ["celery", "direct", "agent", "api"]
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(workdir=Path(tmp), libvirt_uri="test:///default")
        try:
            stack.start_redis()
            stack.start_agent()
            stack.start_worker("vms")
            stack.start_api()
            env = {
                "BARE_BROKER": stack.broker_url,
                "PYTHONPATH": str(ROOT),
            }
            stack.spawn(
                "bare",
                [
                    PY,
                    "-m",
                    "celery",
                    "-A",
                    "bench.bare_celery",
                    "worker",
                    "-Q",
                    "bare",
                    "--concurrency",
                    "2",
                    "--without-mingle",
                    "--without-gossip",
                    "-l",
                    "WARNING",
                ],
                **env,
            )
            stack.wait_ready(["nube.ingress", "vms"])
            paths = Paths(stack)
            latency(paths, ways, 10)  # warm-up
            report(
                latency(paths, ways, args.n), {w: throughput(paths, w, args.burst) for w in ways}
            )
        finally:
            stack.stop_all()


def report(samples: dict[str, list[float]], rates: dict[str, float]) -> None:
    base50 = pct(samples["celery"], 50)
    base_rate = rates["celery"]
    print(
        f"{'way':8} {'p50 ms':>8} {'p95 ms':>8} {'p50 ratio':>10} {'jobs/s':>8} {'rate ratio':>11}"
    )
    for way, values in samples.items():
        p50, p95 = pct(values, 50), pct(values, 95)
        print(
            f"{way:8} {p50:8.1f} {p95:8.1f} {p50 / base50:10.2f} {rates[way]:8.1f} "
            f"{rates[way] / base_rate:11.2f}"
        )
    hop50 = pct(samples["agent"], 50) - pct(samples["direct"], 50)
    hop95 = pct(samples["agent"], 95) - pct(samples["direct"], 95)
    print(
        f"agent hop: +{hop50:.1f} ms p50, +{hop95:.1f} ms p95; "
        f"throughput {rates['agent'] / rates['direct']:.2f}x of direct"
    )


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
