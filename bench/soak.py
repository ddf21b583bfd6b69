"""Soak: N cheap jobs through the HTTP API; the memory of every process and of Redis over the run.

A private stack on 127.0.0.1 (its own Redis, the agent and one ``vms`` worker with their prefork
pools, the API under gunicorn) with the fake VM driver, and ``--clients`` threads, each sending
``GET /v1/vms`` with ``Prefer: wait=30`` (a ``vms.list`` job the API waits for; 200 when it
succeeded) until N jobs are done. Every ``--every`` seconds the sampler records the RSS of every
process of the stack (the gunicorn master and workers, the agent and its pool children, the
worker and its pool children, redis-server) and Redis' ``used_memory``.

After the run, expiry: nube keeps a job record (and its kept request) for 30 days
(``JOB_TTL``, :mod:`nube.jobs`; there is no setting to shorten it, and Celery's result expiry,
``NUBE_RESULT_EXPIRES_DAYS``, is at least a day), so the soak fast-forwards it: every key that
has a TTL gets one of 1 ms, and Redis' memory is read once they are gone. The audit stream's
retention is set short (``--audit-retention`` seconds, 60; ``NUBE_AUDIT_RETENTION_DAYS``): its
records leave the stream as the run goes. What stays is what nube never expires; the soak lists
those keys by pattern with how many and how much memory each pattern holds, before and after
the run.

Printed: a table of each process's RSS after 1,000 jobs and at the end (and the ratio), Redis'
``used_memory`` at the start, at its peak and after expiry, the keys that stay; a PNG plot
(``--plot``, default ``docs/soak.png``). ``--budget`` stops submitting after that many seconds
(the figures then say how many jobs were done); Ctrl-C does too.

    .venv/bin/python bench/soak.py [--n 100000] [--clients 8] [--budget SECONDS]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import redis
import requests

from nube.tokens import Scope, TokenStore
from nube.tools.devstack import ROOT, Stack

BASELINE_JOBS = 1000
MIB = 1024 * 1024


@dataclass
class Sample:
    at: float
    done: int
    rss: dict[str, int]
    """RSS in bytes by process label (``agent``, ``agent child 2``, ``api worker 1``, ...)."""
    redis_used: int


@dataclass
class Run:
    """The jobs' counters, shared by the clients and the sampler."""

    n: int
    deadline: float
    claimed: int = 0
    done: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> bool:
        """Claim the next job; False once N are claimed, the budget is spent or stop was set."""
        with self.lock:
            if self.stop.is_set() or self.claimed >= self.n:
                return False
            if time.monotonic() > self.deadline:
                self.stop.set()
                return False
            self.claimed += 1
            return True

    def count(self, outcome: str) -> None:
        with self.lock:
            if outcome == "ok":
                self.done += 1
            else:
                self.failed[outcome] += 1


def client(stack: Stack, token: str, run: Run) -> None:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    session.headers["Prefer"] = "wait=30"
    while run.take():
        try:
            r = session.get(stack.api_url + "/v1/vms", timeout=60)
            run.count("ok" if r.status_code == 200 else f"HTTP {r.status_code}")
        except requests.RequestException as e:
            run.count(type(e).__name__)


# --- sampling --------------------------------------------------------------------------------
def processes(stack: Stack) -> dict[str, psutil.Process]:
    """Every process of the stack by a stable label: the service, then its children in pid
    order (a replaced child takes the label of the one it replaced)."""
    roles = {"api": "api", "agent": "agent", "worker-vms": "worker", "redis": "redis"}
    found: dict[str, psutil.Process] = {}
    for name, role in roles.items():
        proc = stack.procs.get(name)
        if proc is None:
            continue
        try:
            main = psutil.Process(proc.pid)
            found[f"{role} master" if role == "api" else role] = main
            kids = sorted(main.children(recursive=True), key=lambda p: p.pid)
        except psutil.NoSuchProcess:
            continue
        for i, child in enumerate(kids, 1):
            found[f"{role} {'worker' if role == 'api' else 'child'} {i}"] = child
    return found


def rss(procs: dict[str, psutil.Process]) -> dict[str, int]:
    out: dict[str, int] = {}
    for label, proc in procs.items():
        try:
            out[label] = proc.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return out


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


class Sampler(threading.Thread):
    def __init__(self, stack: Stack, run: Run, every: float) -> None:
        super().__init__(name="sampler", daemon=True)
        self.stack, self.run_, self.every = stack, run, every
        self.redis = stack.redis()
        self.samples: list[Sample] = []
        self.started = time.monotonic()
        self.pids: dict[str, set[int]] = {}
        self.finished = threading.Event()

    def sample(self) -> Sample:
        procs = processes(self.stack)
        for label, proc in procs.items():
            self.pids.setdefault(label, set()).add(proc.pid)
        s = Sample(time.monotonic() - self.started, self.run_.done, rss(procs), 0)
        s.redis_used = used_memory(self.redis)
        self.samples.append(s)
        return s

    def run(self) -> None:
        while not self.finished.wait(self.every):
            self.sample()


# --- keys that stay --------------------------------------------------------------------------
_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{16,}|\d+")


def _batches(client: redis.Redis, size: int = 1000) -> Iterator[list[str]]:
    batch: list[str] = []
    for key in client.scan_iter(count=size):
        batch.append(str(key))
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _each(client: redis.Redis, command: str, keys: list[str], *args: Any) -> list[Any]:
    pipe = client.pipeline(transaction=False)
    for key in keys:
        getattr(pipe, command)(key, *args)
    return list(pipe.execute())


def key_patterns(client: redis.Redis) -> dict[str, tuple[int, int, int]]:
    """Keys by pattern (ids replaced by ``*``): (count, without a TTL, bytes by MEMORY USAGE)."""
    out: dict[str, list[int]] = {}
    for keys in _batches(client):
        ttls = _each(client, "pttl", keys)
        sizes = _each(client, "memory_usage", keys)
        for key, ttl, size in zip(keys, ttls, sizes, strict=True):
            entry = out.setdefault(_ID.sub("*", key), [0, 0, 0])
            entry[0] += 1
            entry[1] += ttl < 0
            entry[2] += int(size or 0)
    return {p: (c, t, b) for p, (c, t, b) in sorted(out.items())}


def fast_forward_expiry(client: redis.Redis) -> int:
    """Give every key that has a TTL one of 1 ms; read them so they go at once. How many."""
    expiring = 0
    for keys in _batches(client):
        ttls = _each(client, "pttl", keys)
        mortal = [k for k, ttl in zip(keys, ttls, strict=True) if ttl > 0]
        _each(client, "pexpire", mortal, 1)
        expiring += len(mortal)
    time.sleep(0.1)
    for keys in _batches(client):
        _each(client, "exists", keys)  # a read deletes an expired key at once
    return expiring


# --- report ----------------------------------------------------------------------------------
def at_jobs(samples: list[Sample], jobs: int) -> Sample:
    return next((s for s in samples if s.done >= jobs), samples[-1])


def report(
    samples: list[Sample],
    run: Run,
    elapsed: float,
    memory: tuple[int, int],
    keys_before: dict[str, tuple[int, int, int]],
    keys_after: dict[str, tuple[int, int, int]],
    replaced: dict[str, int],
) -> None:
    base, end = at_jobs(samples, BASELINE_JOBS), samples[-1]
    start_used, after_expiry = memory
    print(
        f"\n{run.done} jobs done (of {run.n} asked; failed: {dict(run.failed) or 0}) in "
        f"{elapsed:.0f} s, {run.done / elapsed:.1f} jobs/s"
    )
    first_col, last_col = f"RSS @{base.done}", f"RSS @{end.done}"
    print(f"\n{'process':18} {first_col:>12} {last_col:>12} {'ratio':>7}")
    for label in end.rss:
        first, last = base.rss.get(label), end.rss[label]
        ratio = f"{last / first:7.2f}" if first else "      -"
        note = f"  (replaced {replaced[label]}x)" if replaced.get(label) else ""
        shown = f"{first / MIB:9.1f} MiB" if first else "           -"
        print(f"{label:18} {shown} {last / MIB:8.1f} MiB {ratio}{note}")
    peak = max(s.redis_used for s in samples)
    print(
        f"\nRedis used_memory: start {start_used / MIB:.2f} MiB, peak {peak / MIB:.2f} MiB, "
        f"end {end.redis_used / MIB:.2f} MiB, after expiry {after_expiry / MIB:.2f} MiB "
        f"({after_expiry / start_used:.2f}x the start)"
    )
    print("\nkeys without a TTL (pattern: how many before the run -> after expiry, bytes after)")
    for pattern, (_, immortal, size) in keys_after.items():
        was = keys_before.get(pattern, (0, 0, 0))[1]
        print(f"  {pattern:40} {was:6} -> {immortal:6}  {size / 1024:9.1f} KiB")


def plot(samples: list[Sample], start_used: int, after_expiry: int, out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [s.done for s in samples]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 8), sharex=True)
    for label in samples[-1].rss:
        top.plot(done, [s.rss.get(label, float("nan")) / MIB for s in samples], label=label)
    top.set_ylabel("RSS (MiB)")
    top.legend(fontsize="small", ncol=3)
    top.set_title(title)
    top.grid(alpha=0.3)
    bottom.plot(done, [s.redis_used / MIB for s in samples], label="Redis used_memory")
    bottom.axhline(start_used / MIB, color="grey", linestyle=":", label="at start")
    bottom.axhline(after_expiry / MIB, color="green", linestyle="--", label="after expiry")
    bottom.set_xlabel("jobs done")
    bottom.set_ylabel("MiB")
    bottom.legend(fontsize="small")
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    print(f"\nplot: {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="jobs (default 100,000)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent HTTP clients")
    parser.add_argument("--every", type=float, default=2.0, help="seconds between samples")
    parser.add_argument("--budget", type=float, default=0, help="stop submitting after (s)")
    parser.add_argument("--audit-retention", type=float, default=60, help="seconds")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "soak.png")
    args = parser.parse_args()
    started_at = f"{datetime.now().astimezone():%Y-%m-%d %H:%M %Z}"
    print(
        f"{platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{started_at}; {args.n} jobs, {args.clients} clients"
    )
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(
            workdir=Path(tmp),
            extra_env={
                "NUBE_VM_DRIVER": "fake",
                "NUBE_VM_POOL_ROOT": str(Path(tmp) / "pools"),
                "NUBE_RATE_LIMIT": "0",
                "NUBE_AUDIT_RETENTION_DAYS": f"{args.audit_retention / 86400:.9f}",
            },
        )
        try:
            stack.start_redis()
            stack.start_agent()
            stack.start_worker("vms")
            stack.start_api()
            stack.wait_ready(["nube.ingress", "vms"])
            probe = stack.redis()
            token, _ = TokenStore(probe).create("soak", [Scope.READ])
            keys_before = key_patterns(probe)
            start_used = used_memory(probe)
            budget = args.budget or float("inf")
            run = Run(n=args.n, deadline=time.monotonic() + budget)
            signal.signal(signal.SIGINT, lambda *_: run.stop.set())
            sampler = Sampler(stack, run, args.every)
            sampler.sample()
            sampler.start()
            t0 = time.monotonic()
            clients = [
                threading.Thread(target=client, args=(stack, token, run), daemon=True)
                for _ in range(args.clients)
            ]
            for c in clients:
                c.start()
            last_print = 0.0
            while any(c.is_alive() for c in clients):
                time.sleep(1)
                if time.monotonic() - last_print > 60:
                    last_print = time.monotonic()
                    print(f"  {run.done} jobs after {last_print - t0:.0f} s", flush=True)
            elapsed = time.monotonic() - t0
            time.sleep(args.every)  # let the stack settle; one more sample
            sampler.finished.set()
            sampler.join()
            sampler.sample()
            expired = fast_forward_expiry(probe)
            after_expiry = used_memory(probe)
            keys_after = {p: v for p, v in key_patterns(probe).items() if v[1]}
            print(f"expiry fast-forwarded for {expired} keys")
            replaced = {label: len(pids) - 1 for label, pids in sampler.pids.items()}
            samples = sampler.samples
            memory = (start_used, after_expiry)
            report(samples, run, elapsed, memory, keys_before, keys_after, replaced)
            title = (
                f"soak: {run.done} jobs through the HTTP API, {args.clients} clients "
                f"({platform.node()}, {os.cpu_count()} CPUs, {started_at})"
            )
            plot(samples, start_used, after_expiry, args.plot, title)
        finally:
            stack.stop_all()


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
