"""Where a job's time goes on nube's message path: Redis commands, hops, and per-process profiles.

A private stack on 127.0.0.1 (its own Redis, the agent, one ``vms`` worker on the fake VM
driver, the API), and N cheap jobs through the HTTP API, one at a time: ``GET /v1/vms`` with
``Prefer: respond-async`` (a ``vms.list`` job; the fake driver answers from memory), each
waited for on its job record (``JobStore.wait``, as the API's waits do). Both the agent and
the worker run with ``--pool solo``, so that a task runs in the process that is profiled (the
default prefork pool would run it in a child).

Phase 1 (services unprofiled): N jobs, and

1. Redis commands per job, by command: ``INFO commandstats`` before and after, calls / N;
   the benchmark's own commands (submitting is HTTP, but waiting subscribes and reads the job
   record) counted on its client and shown apart, and the idle background (heartbeats,
   Celery's polling) over the same time measured beforehand;
2. the hops from each job record's history: queued (the API's ``submitted_at``) → relayed
   (agent) → running (worker) → succeeded, p50/p95 each, and end to end (the record's queued
   → succeeded, and the client's submit → wait returned);
3. CPU time per job of each process (Redis, agent, worker, API with its gunicorn workers) from
   ``/proc``: unlike wall time, it holds on a busy machine, and its sum bounds the job rate.

Phase 2: the agent and the worker restarted under ``bench._profiler`` (cProfile, all threads,
only between two ``SIGUSR2``), N more jobs inside the window, and for each process the top 15
functions by cumulative time and the time of each function itself (``tottime``, which adds
up) grouped: serialization (json), sealing, Redis I/O, Celery/kombu dispatch, events, result
backend, job store, waiting, other. Profiles are wall time, so a blocked call counts its wait.

    .venv/bin/python bench/profile_message_path.py [--n 200] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import pstats
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import redis
from redis.connection import Connection

from nube.jobs import Job, JobStore
from nube.sealing.setup import RecordSealer, load_security
from nube.settings import load_settings
from nube.tokens import Scope, TokenStore
from nube.tools.client import NubeClient
from nube.tools.devstack import PY, ROOT, Stack

PATH = "/v1/vms"
TENANT = "bench"
HOPS = [("queued", "relayed"), ("relayed", "running"), ("running", "succeeded")]
JOB_TIMEOUT = 30.0
IDLE_SECONDS = 5.0
#: Redis commands with subcommands, as ``INFO commandstats`` names them (``client|setinfo``).
CONTAINERS = {"client", "config", "command", "object", "memory", "script", "xinfo", "pubsub"}


# --- the benchmark's own Redis commands -------------------------------------------------------
BENCH_COMMANDS: Counter[str] = Counter()


def _name(args: Iterable[Any]) -> str:
    parts = [a.decode() if isinstance(a, bytes) else str(a) for a in list(args)[:2]]
    name = parts[0].lower()
    if name in CONTAINERS and len(parts) > 1:
        name = f"{name}|{parts[1].lower()}"
    return name


class CountingConnection(Connection):
    """Counts every command this client sends (connection set-up and pipelines included)."""

    def send_command(self, *args: Any, **kwargs: Any) -> None:
        BENCH_COMMANDS[_name(args)] += 1
        super().send_command(*args, **kwargs)

    def pack_commands(self, commands: Any) -> Any:
        for args in commands:
            BENCH_COMMANDS[_name(args)] += 1
        return super().pack_commands(commands)


def counting_client(stack: Stack) -> redis.Redis:
    pool = redis.ConnectionPool(
        connection_class=CountingConnection,
        host="127.0.0.1",
        port=stack.redis_port,
        password=stack.redis_password,
        decode_responses=True,
    )
    return redis.Redis(connection_pool=pool)


def commandstats(client: redis.Redis) -> Counter[str]:
    info: dict[str, Any] = client.info("commandstats")
    return Counter({k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in info.items()})


# --- the jobs ---------------------------------------------------------------------------------
class Runner:
    def __init__(self, stack: Stack) -> None:
        settings = load_settings(stack.env())
        plain = stack.redis()
        security = load_security(settings, plain)
        self.jobs = JobStore(counting_client(stack), RecordSealer(security.sealer))
        secret, _ = TokenStore(plain).create(TENANT, [Scope.READ])
        self.http = NubeClient(stack.api_url, secret)

    def one(self) -> tuple[Job, float]:
        started = time.perf_counter()
        job_id = str(self.http.submit("GET", PATH)["id"])
        job = self.jobs.wait(job_id, JOB_TIMEOUT)
        elapsed = (time.perf_counter() - started) * 1000
        if job is None or job.status != "succeeded":
            raise RuntimeError(f"job {job_id} did not succeed: {job}")
        return job, elapsed

    def run(self, n: int, budget: float) -> tuple[list[Job], list[float]]:
        """``n`` jobs one after the other; stops early (and says so) after ``budget`` seconds."""
        deadline = time.monotonic() + budget
        jobs: list[Job] = []
        elapsed: list[float] = []
        for _ in range(n):
            if time.monotonic() > deadline:
                print(f"(time budget of {budget:.0f} s spent after {len(jobs)} jobs)")
                break
            job, ms = self.one()
            jobs.append(job)
            elapsed.append(ms)
        return jobs, elapsed


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


def _at(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000


def hops(jobs: list[Job]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {f"{a} → {b}": [] for a, b in HOPS}
    out["queued → succeeded (record)"] = []
    for job in jobs:
        at: dict[str, float] = {}
        for event in job.history:
            at.setdefault(event.event, _at(event.at))
        at["queued"] = _at(job.submitted_at)
        for a, b in HOPS:
            out[f"{a} → {b}"].append(at[b] - at[a])
        out["queued → succeeded (record)"].append(at["succeeded"] - at["queued"])
    return out


# --- CPU time per process -----------------------------------------------------------------------
_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds of the process and its reaped children) from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    ppid = int(fields[1])
    ticks = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return ppid, ticks / _TICK


def cpu_by_process(stack: Stack) -> dict[str, float]:
    """CPU seconds used so far by each service with all its descendants (pool children,
    gunicorn workers): CPU time, not wall time, so a busy machine does not inflate it."""
    stats = {int(d.name): _stat(int(d.name)) for d in Path("/proc").iterdir() if d.name.isdigit()}
    children: dict[int, list[int]] = {}
    for pid, st in stats.items():
        if st is not None:
            children.setdefault(st[0], []).append(pid)
    out: dict[str, float] = {}
    for name, proc in stack.procs.items():
        todo, total = [proc.pid], 0.0
        while todo:
            pid = todo.pop()
            st = stats.get(pid)
            total += st[1] if st else 0.0
            todo.extend(children.get(pid, []))
        out[name] = total
    return out


def report_cpu(before: dict[str, float], after: dict[str, float], n: int, bench: float) -> None:
    print(f"\nCPU time per job by process (N = {n}; user + system, with children; ms)")
    total = 0.0
    for name in after:
        used = (after[name] - before.get(name, 0.0)) * 1000 / n
        total += used
        print(f"{name:24} {used:8.2f}")
    print(f"{'this benchmark (client)':24} {bench * 1000 / n:8.2f}")
    print(
        f"{'services in all':24} {total:8.2f}   (a job's CPU cost; 2 cores / this = a bound "
        f"on jobs/s: {2000 / total if total else 0:.0f})"
    )


# --- reports ----------------------------------------------------------------------------------
def report_redis(
    before: Counter[str],
    after: Counter[str],
    bench: Counter[str],
    idle: Counter[str],
    idle_seconds: float,
    run_seconds: float,
    n: int,
) -> None:
    total = after - before
    total["info"] -= 1  # the "after" INFO itself
    background = Counter(
        {k: v * run_seconds / idle_seconds for k, v in idle.items() if k != "info"}
    )
    rejected = {k: v for k, v in bench.items() if k not in after}
    bench = Counter({k: v for k, v in bench.items() if k in after})
    names = sorted(set(total) | set(bench), key=lambda k: -total[k])
    print(f"\n1. Redis commands per job (N = {n}, {run_seconds:.1f} s)")
    print(
        f"{'command':24} {'all':>8} {'bench':>8} {'services':>9} {'idle bg':>8}   "
        "(services = all - bench; idle bg = the idle rate over the same time, per job)"
    )
    for name in names:
        if total[name] <= 0 and not bench[name]:
            continue
        print(
            f"{name:24} {total[name] / n:8.2f} {bench[name] / n:8.2f} "
            f"{(total[name] - bench[name]) / n:9.2f} {background[name] / n:8.2f}"
        )
    all_, own = sum(v for v in total.values() if v > 0), sum(bench.values())
    print(
        f"{'total':24} {all_ / n:8.2f} {own / n:8.2f} {(all_ - own) / n:9.2f} "
        f"{sum(background.values()) / n:8.2f}"
    )
    print(f"idle background: {sum(idle.values()) / idle_seconds:.1f} commands/s")
    if rejected:
        print(
            "sent by the bench's client but not in commandstats' calls (this Redis rejects "
            "them): " + ", ".join(f"{k} {v / n:.2f}/job" for k, v in sorted(rejected.items()))
        )


def report_hops(jobs: list[Job], elapsed: list[float]) -> None:
    print(f"\n2. Hops from the job records (N = {len(jobs)}, ms)")
    print(f"{'hop':32} {'p50':>8} {'p95':>8}")
    rows = hops(jobs)
    rows["submit → wait returned (client)"] = elapsed
    for name, values in rows.items():
        print(f"{name:32} {pct(values, 50):8.1f} {pct(values, 95):8.1f}")


#: (group, substrings of "file:function"), first match wins; "waiting" before "Redis I/O".
GROUPS: list[tuple[str, tuple[str, ...]]] = [
    ("sealing", ("nube/sealing/", "cryptography/")),
    ("job store", ("nube/jobs.py",)),
    ("result backend", ("celery/backends/",)),
    ("events", ("celery/events/", "agents/outcomes.py", "kombu/pidbox", "celery/worker/heartbeat")),
    ("serialization (json)", ("/json/", "kombu/serialization", "kombu/utils/json", "pydantic")),
    (
        "waiting",
        (
            "method 'poll' of 'select.epoll'",
            "method 'poll' of 'select.poll'",
            "built-in method select.select",
            "built-in method time.sleep",
            "method 'acquire' of '_thread.lock'",
            "method 'acquire' of '_thread.RLock'",
            "threading.py:wait",
        ),
    ),
    ("Redis I/O", ("/redis/", "kombu/transport/redis", "socket", "method 'recv", "sendall")),
    ("Celery/kombu dispatch", ("celery/", "kombu/", "billiard/", "vine/")),
]


def group_of(func: tuple[str, int, str]) -> str:
    filename, _, name = func
    key = f"{filename}:{name}"
    for group, needles in GROUPS:
        if any(needle in key for needle in needles):
            return group
    return "other"


def short(func: tuple[str, int, str]) -> str:
    filename, line, name = func
    for root in (str(ROOT) + "/", "site-packages/", "/lib/python3.11/"):
        if root in filename:
            filename = filename.split(root, 1)[1]
    return f"{filename}:{line}({name})" if line else name


def report_profile(name: str, path: Path, n: int) -> None:
    stats = pstats.Stats(str(path))
    table: dict[tuple[str, int, str], tuple[int, int, float, float, Any]]
    table = stats.stats  # type: ignore[attr-defined]
    print(f"\n3. {name}: top 15 by cumulative time ({path.name}, {n} jobs, s)")
    print(f"{'ncalls':>9} {'tottime':>8} {'cumtime':>8}  {'group':22} function")
    top = sorted(table.items(), key=lambda kv: -kv[1][3])[:15]
    for func, (_, nc, tt, ct, _) in top:
        print(f"{nc:9d} {tt:8.3f} {ct:8.3f}  {group_of(func):22} {short(func)}")
    groups: dict[str, float] = {}
    for func, (_, _, tt, _, _) in table.items():
        groups[group_of(func)] = groups.get(group_of(func), 0.0) + tt
    total = sum(groups.values())
    print(f"   {name}: own time (tottime) by group, all threads, {total:.2f} s in all:")
    for group, seconds in sorted(groups.items(), key=lambda kv: -kv[1]):
        print(f"   {group:24} {seconds:8.3f} s {100 * seconds / total:5.1f} %")
    sends = sum(nc for (f, _, fn), (_, nc, _, _, _) in table.items() if fn == "send_packed_command")
    print(f"   Redis writes (send_packed_command calls) per job: {sends / n:.1f}")


# --- the stack --------------------------------------------------------------------------------
def start_services(stack: Stack, profile_dir: Path | None) -> None:
    argv = {
        "agent": ["-m", "agents", "--pool", "solo"],
        "worker-vms": ["-m", "workers", "vms", "--pool", "solo"],
    }
    for name, args in argv.items():
        if profile_dir is None:
            stack.spawn(name, [PY, *args])
        else:
            out = profile_dir / f"{name}.prof"
            stack.spawn(name, [PY, "-m", "bench._profiler", str(out), *args])


def signal_services(stack: Stack) -> None:
    for name in ("agent", "worker-vms"):
        os.kill(stack.procs[name].pid, signal.SIGUSR2)


def wait_for(paths: list[Path], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        if time.monotonic() > deadline:
            raise RuntimeError(f"no profile written: {[p for p in paths if not p.exists()]}")
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--budget", type=float, default=300, help="seconds per phase, at most")
    parser.add_argument("--out", type=Path, help="keep the profiles here (default: temporary)")
    parser.add_argument("--no-profile", action="store_true", help="phase 1 only (no cProfile)")
    args = parser.parse_args()
    print(
        f"{platform.node()}: {os.cpu_count()} CPUs, {platform.platform()}, Python "
        f"{platform.python_version()}, {datetime.now().astimezone():%Y-%m-%d %H:%M %Z}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        profile_dir = args.out or Path(tmp)
        profile_dir.mkdir(parents=True, exist_ok=True)
        stack = Stack(
            workdir=Path(tmp),
            extra_env={"NUBE_VM_DRIVER": "fake", "NUBE_VM_POOL_ROOT": str(Path(tmp) / "pools")},
        )
        try:
            stack.start_redis()
            start_services(stack, None)
            stack.start_api()
            stack.wait_ready(["nube.ingress", "vms"])
            runner = Runner(stack)
            runner.run(args.warmup, args.budget)

            # Phase 1: Redis commands and hops, services unprofiled.
            probe = stack.redis()
            idle0 = commandstats(probe)
            time.sleep(IDLE_SECONDS)
            idle = commandstats(probe) - idle0
            idle["info"] -= 1
            BENCH_COMMANDS.clear()
            before = commandstats(probe)
            cpu_before, own_before = cpu_by_process(stack), time.process_time()
            started = time.monotonic()
            jobs, elapsed = runner.run(args.n, args.budget)
            run_seconds = time.monotonic() - started
            cpu_after, own = cpu_by_process(stack), time.process_time() - own_before
            after = commandstats(probe)
            bench = Counter(BENCH_COMMANDS)
            report_redis(before, after, bench, idle, IDLE_SECONDS, run_seconds, len(jobs))
            report_hops(jobs, elapsed)
            report_cpu(cpu_before, cpu_after, len(jobs), own)

            if args.no_profile:
                return
            # Phase 2: the agent and the worker again, under the profiler.
            for name in ("agent", "worker-vms"):
                stack.stop(name)
            start_services(stack, profile_dir)
            runner.run(args.warmup, args.budget)  # waits for both to consume again
            signal_services(stack)  # open the window
            profiled, _ = runner.run(args.n, args.budget)
            signal_services(stack)  # close it: each writes its profile
            outs = [profile_dir / f"{name}.prof" for name in ("agent", "worker-vms")]
            wait_for([Path(f"{p}.done") for p in outs], 60)
            for name, out in zip(("agent", "worker (vms)"), outs, strict=True):
                report_profile(name, out, len(profiled))
        finally:
            stack.stop_all()


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
