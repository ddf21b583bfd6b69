"""The VM worker's node as metrics: libvirt's node CPU and memory statistics, read at scrape
(:mod:`nube.observability.node`), checked against libvirt itself, and served by a real VM
worker on its ``NUBE_METRICS_PORT``."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import libvirt
import requests
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from nube.observability.node import NodeStatsCollector
from nube.tools.devstack import Stack
from tests.conftest import libvirt_available, need

QEMU = "qemu:///system"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    """``{(sample name, sorted labels): value}`` of an exposition."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scrape(collector: NodeStatsCollector) -> Samples:
    registry = CollectorRegistry()
    registry.register(collector)
    return samples(generate_latest(registry).decode())


def test_node_stats_agree_with_libvirt() -> None:
    need(libvirt_available(), f"libvirtd ({QEMU})")
    first = scrape(NodeStatsCollector(QEMU, "n1"))
    conn = libvirt.openReadOnly(QEMU)
    try:
        cpus = conn.getInfo()[2]
        total = conn.getMemoryStats(libvirt.VIR_NODE_MEMORY_STATS_ALL_CELLS, 0)["total"]
    finally:
        conn.close()
    node = (("node", "n1"),)
    assert first[("nube_node_libvirt_up", node)] == 1
    assert first[("nube_node_cpus", node)] == cpus
    assert first[("nube_node_memory_bytes", (("kind", "total"), *node))] == total * 1024
    free = first[("nube_node_memory_bytes", (("kind", "free"), *node))]
    assert 0 < free < total * 1024
    assert first[("nube_node_running_domains", node)] >= 0
    time.sleep(0.2)
    second = scrape(NodeStatsCollector(QEMU, "n1"))
    for mode in ("idle", "kernel", "user"):
        key = ("nube_node_cpu_seconds_total", (("mode", mode), *node))
        assert 0 < first[key] <= second[key]  # a counter: the node's CPU time only grows
    assert sum(v for (n, _), v in second.items() if n == "nube_node_cpu_seconds_total") > sum(
        v for (n, _), v in first.items() if n == "nube_node_cpu_seconds_total"
    )


def test_unreachable_libvirt_is_reported_down() -> None:
    gone = NodeStatsCollector("qemu+unix:///system?socket=/nonexistent/libvirt-sock", "n2")
    assert scrape(gone) == {("nube_node_libvirt_up", (("node", "n2"),)): 0}


def test_a_vm_worker_serves_its_node_stats(tmp_path: Path) -> None:
    need(shutil.which("redis-server") is not None, "redis-server")
    need(libvirt_available(), f"libvirtd ({QEMU})")
    stack = Stack(workdir=tmp_path, libvirt_uri=QEMU, metrics=True)
    try:
        stack.start_redis()
        stack.start_worker("vms", concurrency=1)
        url = f"http://127.0.0.1:{stack.metrics_ports['worker-vms']}/metrics"
        deadline, text = time.monotonic() + 60, ""
        while time.monotonic() < deadline:
            try:
                text = requests.get(url, timeout=5).text
                break
            except requests.ConnectionError:
                time.sleep(0.3)
        seen = samples(text)
        node = next(dict(k[1])["node"] for k in seen if k[0] == "nube_node_libvirt_up")
        assert seen[("nube_node_libvirt_up", (("node", node),))] == 1
        assert seen[("nube_node_cpus", (("node", node),))] >= 1
        assert ("nube_node_cpu_seconds_total", (("mode", "idle"), ("node", node))) in seen
    finally:
        stack.stop_all()
