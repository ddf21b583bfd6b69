"""Throughput against concurrent clients and worker processes: nube through its HTTP API and
bare Celery side by side, on one private Redis.

Systems (each point measures them one after the other, so they share the machine's noise):

- ``nube``: ``GET /v1/vms`` (a ``vms.list`` job on the fake VM driver, ``NUBE_VM_DRIVER=fake``:
  the driver answers from memory) with ``Prefer: respond-async``, then waited for on the job
  record (``JobStore.wait``); the API (gunicorn, 2 gevent workers), the agent (prefork x2) and
  one ``vms`` worker;
- ``celery``: a bare Celery no-op with nube's delivery settings (``bench/bare_celery.py``
  profile ``nube``), ``send_task(...).get()``;
- ``fast``: the same no-op on the speed-tuned bare Celery (profile ``fast``).

Clients are threads of this process, each submitting a job and waiting for it in a loop for
``--seconds``; jobs/s is the jobs completed over the time until the last one ended. Worker
processes: the ``vms`` worker's and the bare worker's ``--concurrency`` (a pool of one process
per unit: for a ``solo`` or ``threads`` profile, that many worker processes). The agent and the
API keep their own processes. The client's CPU share is printed too: past about 90 % of one
core, the client is the limit, not the path.

Prints a table and draws ``docs/scaling.png`` (``--plot``).

    .venv/bin/python bench/bench_scaling.py [--clients 1,2,4,8,16,32,64] [--procs 1,2,4]
        [--seconds 2] [--plot docs/scaling.png]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nube.jobs import JobStore
from nube.sealing.setup import RecordSealer, load_security
from nube.settings import load_settings
from nube.tokens import Scope, TokenStore
from nube.tools.client import NubeClient
from nube.tools.devstack import ROOT, Stack

sys.path.insert(0, str(ROOT))
from bench.bare_celery import FAST, NUBE, TASK, Profile, make_app, worker_argv

TENANT = "bench"
PATH = "/v1/vms"
SYSTEMS = {"nube": None, "celery": NUBE, "fast": FAST}
JOB_TIMEOUT = 60


@dataclass
class Point:
    system: str
    procs: int
    clients: int
    rate: float
    client_cpu: float  # this process's CPU time / wall time, 1.0 = one core


class Load:
    """One submit-and-wait round trip per system, safe to call from many threads."""

    def __init__(self, stack: Stack) -> None:
        settings = load_settings(stack.env())
        client = stack.redis()
        self.jobs = JobStore(client, RecordSealer(load_security(settings, client).sealer))
        self.secret, _ = TokenStore(client).create(TENANT, [Scope.READ])
        self.url = stack.api_url
        self.apps: dict[str, Any] = {
            name: make_app(profile, stack.broker_url)
            for name, profile in SYSTEMS.items()
            if profile is not None
        }
        self._local = threading.local()

    def nube(self) -> None:
        http = getattr(self._local, "http", None)
        if http is None:
            http = self._local.http = NubeClient(self.url, self.secret)
        job_id = str(http.submit("GET", PATH)["id"])
        job = self.jobs.wait(job_id, JOB_TIMEOUT)
        if job is None or job.status != "succeeded":
            raise RuntimeError(f"job {job_id} did not succeed: {job}")

    def caller(self, system: str) -> Callable[[], None]:
        if system == "nube":
            return self.nube
        app = self.apps[system]
        return lambda: app.send_task(TASK, args=({},)).get(timeout=JOB_TIMEOUT)


def run_clients(call: Callable[[], None], clients: int, seconds: float) -> tuple[float, float]:
    """``clients`` threads calling ``call`` in a loop for ``seconds``: (jobs/s, client CPU)."""
    done = [0] * clients
    errors: list[BaseException] = []
    start = threading.Barrier(clients + 1)
    deadline = 0.0

    def client(i: int) -> None:
        start.wait()
        try:
            while time.perf_counter() < deadline:
                call()
                done[i] += 1
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    cpu0 = time.process_time()
    began = time.perf_counter()
    deadline = began + seconds
    start.wait()
    for t in threads:
        t.join(JOB_TIMEOUT + seconds)
    wall = time.perf_counter() - began
    if errors:
        raise errors[0]
    return sum(done) / wall, (time.process_time() - cpu0) / wall


def start_workers(stack: Stack, procs: int) -> None:
    """The ``vms`` worker and each bare profile's workers with ``procs`` worker processes."""
    stack.start_worker("vms", concurrency=procs)
    for profile in (p for p in SYSTEMS.values() if p is not None):
        env = {"BARE_BROKER": stack.broker_url, "BARE_PROFILE": profile.name}
        if pool_of(profile) in ("solo", "threads"):
            for i in range(procs):
                stack.spawn(f"bare-{profile.name}-{i}", worker_argv(profile), **env)
        else:
            stack.spawn(f"bare-{profile.name}", worker_argv(profile, procs), **env)
    stack.wait_ready(["nube.ingress", "vms"])


def stop_workers(stack: Stack) -> None:
    for name in [n for n in stack.procs if n == "worker-vms" or n.startswith("bare-")]:
        stack.stop(name)


def pool_of(profile: Profile) -> str:
    args = list(profile.worker_args)
    return args[args.index("--pool") + 1] if "--pool" in args else "prefork"


def measure(
    stack: Stack, load: Load, procs: list[int], clients: list[int], seconds: float
) -> list[Point]:
    points: list[Point] = []
    print(f"{'procs':>5} {'clients':>7} " + " ".join(f"{s:>14}" for s in SYSTEMS), flush=True)
    for n in procs:
        start_workers(stack, n)
        try:
            for system in SYSTEMS:  # warm-up: every pool child and connection used once
                run_clients(load.caller(system), max(clients), 0.5)
            for c in clients:
                row = []
                for system in SYSTEMS:
                    rate, cpu = run_clients(load.caller(system), c, seconds)
                    points.append(Point(system, n, c, rate, cpu))
                    row.append(f"{rate:8.1f} ({cpu:3.0%})")
                print(f"{n:5} {c:7} " + " ".join(f"{r:>14}" for r in row), flush=True)
        finally:
            stop_workers(stack)
    return points


def plot(points: list[Point], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    procs = sorted({p.procs for p in points})
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    colors = {"nube": "tab:blue", "celery": "tab:orange", "fast": "tab:green"}
    styles = {1: ":", 2: "-", 4: "--"}
    label = {
        "nube": "nube (HTTP API)",
        "celery": "bare Celery, nube's settings",
        "fast": "bare Celery, tuned",
    }
    left, right = axes
    for system in SYSTEMS:
        for n in procs:
            line = sorted((p for p in points if p.system == system and p.procs == n),
                          key=lambda p: p.clients)  # fmt: skip
            left.plot(
                [p.clients for p in line],
                [p.rate for p in line],
                styles.get(n, "-."),
                color=colors[system],
                marker="o",
                markersize=3,
                label=f"{label[system]}, {n} proc",
            )
        most = max(p.clients for p in points)
        line = sorted((p for p in points if p.system == system and p.clients == most),
                      key=lambda p: p.procs)  # fmt: skip
        right.plot(
            [p.procs for p in line],
            [p.rate for p in line],
            "-",
            color=colors[system],
            marker="o",
            label=f"{label[system]}, {most} clients",
        )
    left.set_xscale("log", base=2)
    left.set_xticks(sorted({p.clients for p in points}))
    left.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    left.set_xlabel("concurrent clients (each submits and waits in a loop)")
    left.set_ylabel("jobs/s")
    left.set_title("jobs/s against clients, per worker processes")
    left.grid(True, alpha=0.3)
    left.legend(fontsize=7, ncol=1)
    right.set_xticks(procs)
    right.set_xlabel("worker processes (the worker's --concurrency)")
    right.set_ylabel("jobs/s")
    right.set_title("jobs/s against worker processes")
    right.grid(True, alpha=0.3)
    right.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=ints, default=[1, 2, 4, 8, 16, 32, 64])
    parser.add_argument("--procs", type=ints, default=[1, 2, 4])
    parser.add_argument("--seconds", type=float, default=2.0, help="per point and system")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "scaling.png")
    args = parser.parse_args()
    machine = (
        f"{platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )
    machine += f", load average {load_average()}"
    print(machine)
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(
            workdir=Path(tmp),
            extra_env={"NUBE_VM_DRIVER": "fake", "NUBE_VM_POOL_ROOT": str(Path(tmp) / "pools")},
        )
        try:
            stack.start_redis()
            stack.start_agent()
            stack.start_api()
            load = Load(stack)
            points = measure(stack, load, args.procs, args.clients, args.seconds)
        finally:
            stack.stop_all()
    print("jobs/s (client CPU, 100 % = one core)")
    print(f"load average at the end: {load_average()}")
    title = f"{machine}; nube: GET /v1/vms (fake driver) via the API; bare: no-op .get()"
    plot(points, args.plot, title)
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
