"""Added latency of VM start and stop through nube over the same libvirt calls, in one run.

Three ways to start and stop (destroy: a diskless guest has no OS to answer a shutdown) a
64 MiB diskless VM on ``qemu:///system``, interleaved so that they see the same host load:

- ``libvirt``: libvirt-python directly, ``dom.create()`` / ``dom.destroy()``: the baseline;
- ``driver``: nube's ``LibvirtDriver.start_domain`` / ``destroy_domain`` in-process (adds the
  tenancy check, the state table and the VM representation);
- ``nube``: ``POST /v1/vms/<name>/start`` and ``/destroy`` with ``Prefer: wait=60`` through a
  real stack (api → sealed message → agent → VM worker → driver → sealed result → answer).
  ``--no-stack`` leaves it out.

Prints ms p50 / p95 per way and action, the ratio to libvirt and the added ms at p50.

    .venv/bin/python bench/bench_vms.py [--n 30] [--warmup 3] [--uri qemu:///system] [--no-stack]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import libvirt

from nube.catalog.vm_models import VmDefine, VmRef
from workers.drivers import JobContext
from workers.drivers.libvirt import LibvirtDriver
from workers.drivers.names import backend_name, user_name

TENANT = f"bench-{uuid.uuid4().hex[:6]}"
Way = tuple[Callable[[], object], Callable[[], object]]


def _ms(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000.0


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _ctx() -> JobContext:
    return JobContext(job_id=uuid.uuid4().hex, tenant=TENANT, operation="vms.bench")


def _define(driver: LibvirtDriver, way: str) -> str:
    name = f"nubebench-{way}-{uuid.uuid4().hex[:6]}"
    driver.define_domain(VmDefine(name=name, memory_mib=64), _ctx())
    return name


def _local_ways(driver: LibvirtDriver, conn: libvirt.virConnect) -> dict[str, Way]:
    dom = conn.lookupByName(backend_name(TENANT, _define(driver, "libvirt")))
    ref = VmRef(name=_define(driver, "driver"))
    return {
        "libvirt": (dom.create, dom.destroy),
        "driver": (
            lambda: driver.start_domain(ref, _ctx()),
            lambda: driver.destroy_domain(ref, _ctx()),
        ),
    }


@contextlib.contextmanager
def _nube_way(driver: LibvirtDriver, uri: str) -> Iterator[Way]:
    """A real stack (Redis, agent, VM worker on ``uri``, API) and a token of the bench tenant."""
    from nube.tokens import Scope, TokenStore
    from nube.tools.client import NubeClient
    from nube.tools.devstack import Stack

    stack = Stack(workdir=Path(tempfile.mkdtemp(prefix="nube-bench-")), libvirt_uri=uri)
    try:
        stack.start_redis()
        stack.start_agent()
        stack.start_worker("vms")
        stack.start_api()
        stack.wait_ready(["nube.ingress", "vms"], timeout=90)
        secret, _ = TokenStore(stack.redis()).create(TENANT, [Scope.READ, Scope.WRITE])
        api, name = NubeClient(stack.api_url, secret), _define(driver, "nube")
        yield (
            lambda: api.run("POST", f"/v1/vms/{name}/start"),
            lambda: api.run("POST", f"/v1/vms/{name}/destroy"),
        )
    finally:
        stack.stop_all()


def _measure(ways: dict[str, Way], n: int, warmup: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {f"{w} {a}": [] for w in ways for a in ("start", "stop")}
    for i in range(warmup + n):
        for way, (start, stop) in ways.items():
            took = (_ms(start), _ms(stop))
            if i >= warmup:
                samples[f"{way} start"].append(took[0])
                samples[f"{way} stop"].append(took[1])
    return samples


def _report(samples: dict[str, list[float]], domain_type: str) -> None:
    print(f"VMs: 64 MiB, diskless, domain type {domain_type}")
    print(f"{'way':>15} {'n':>4} {'p50 ms':>8} {'p95 ms':>8} {'ratio':>6} {'added ms':>9}")
    for key, values in samples.items():
        base = statistics.median(samples[f"libvirt {key.split()[1]}"])
        p50 = statistics.median(values)
        print(
            f"{key:>15} {len(values):>4} {p50:8.1f} {_pct(values, 0.95):8.1f} "
            f"{p50 / base:6.2f} {p50 - base:9.1f}"
        )


def _cleanup(uri: str) -> None:
    conn = libvirt.open(uri)
    for dom in conn.listAllDomains(0):
        if user_name(dom.name(), TENANT).startswith("nubebench-"):
            with contextlib.suppress(libvirt.libvirtError):
                dom.destroy()
            with contextlib.suppress(libvirt.libvirtError):
                dom.undefine()
    conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--uri", default="qemu:///system")
    ap.add_argument("--no-stack", action="store_true", help="only libvirt and driver")
    args = ap.parse_args()
    driver, conn = LibvirtDriver(args.uri, node="bench"), libvirt.open(args.uri)
    try:
        ways = _local_ways(driver, conn)
        with contextlib.ExitStack() as stack:
            if not args.no_stack:
                ways["nube"] = stack.enter_context(_nube_way(driver, args.uri))
            samples = _measure(ways, args.n, args.warmup)
        _report(samples, driver.guest_type(conn)[0])
    finally:
        driver.close()
        conn.close()
        _cleanup(args.uri)


if __name__ == "__main__":
    main()
