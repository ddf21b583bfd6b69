"""Added latency of ``containers.run`` (busybox ``true``) through nube, in one run.

Three ways to run the same container to completion, interleaved so that they see the same
engine load:

- ``sdk``: the Docker SDK directly, ``client.containers.run(image, ["true"], remove=True)``
  (create, start, wait, logs, remove): the baseline;
- ``driver``: nube's ``DockerDriver.run`` in-process (adds the tenancy checks, job-label lookup
  and separate stdout/stderr);
- ``nube``: ``POST /v1/containers`` with ``Prefer: wait=60`` through a real stack (api →
  sealed message → agent → worker → driver → sealed result → long-poll answer).

Prints ms p50 / p95 per way, the ratio to the SDK and the added ms at p50.

    .venv/bin/python bench/bench_containers.py [--n 30] [--warmup 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import docker

from nube.catalog.container_models import ContainerRun
from nube.tokens import Scope, TokenStore
from nube.tools.client import NubeClient
from nube.tools.devstack import Stack
from workers.drivers import JobContext
from workers.drivers.docker import DockerDriver

IMAGE = "busybox:latest"
TENANT = f"bench-{uuid.uuid4().hex[:6]}"


def _ms(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000.0


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _ways(stack: Stack, engine: docker.DockerClient) -> dict[str, Callable[[], object]]:
    secret, _ = TokenStore(stack.redis()).create(TENANT, [Scope.READ, Scope.WRITE])
    api = NubeClient(stack.api_url, secret)
    driver = DockerDriver()
    body = {"image": IMAGE, "command": ["true"]}

    def via_driver() -> object:
        ctx = JobContext(job_id=uuid.uuid4().hex, tenant=TENANT, operation="containers.run")
        return driver.run(ContainerRun(image=IMAGE, command=["true"]), ctx)

    return {
        "sdk": lambda: engine.containers.run(IMAGE, ["true"], remove=True),
        "driver": via_driver,
        "nube": lambda: api.run("POST", "/v1/containers", body),
    }


def _report(samples: dict[str, list[float]]) -> None:
    base = statistics.median(samples["sdk"])
    print(f"{'way':>7} {'n':>4} {'p50 ms':>8} {'p95 ms':>8} {'ratio':>6} {'added ms':>9}")
    for way, values in samples.items():
        p50 = statistics.median(values)
        print(
            f"{way:>7} {len(values):>4} {p50:8.1f} {_pct(values, 0.95):8.1f} "
            f"{p50 / base:6.2f} {p50 - base:9.1f}"
        )


def _cleanup(engine: docker.DockerClient) -> None:
    for container in engine.containers.list(all=True, filters={"label": f"nube.tenant={TENANT}"}):
        container.remove(force=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    args = ap.parse_args()
    engine = docker.from_env()
    stack = Stack(workdir=Path(tempfile.mkdtemp(prefix="nube-bench-")))
    try:
        stack.start_redis()
        stack.start_agent()
        stack.start_worker("containers")
        stack.start_api()
        stack.wait_ready(["nube.ingress", "containers"], timeout=90)
        ways = _ways(stack, engine)
        samples: dict[str, list[float]] = {way: [] for way in ways}
        for i in range(args.warmup + args.n):
            for way, fn in ways.items():
                took = _ms(fn)
                if i >= args.warmup:
                    samples[way].append(took)
        _report(samples)
    finally:
        stack.stop_all()
        _cleanup(engine)


if __name__ == "__main__":
    main()
