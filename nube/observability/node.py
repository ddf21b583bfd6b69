"""The VM worker's node as metrics: libvirt's node CPU and memory statistics, read at scrape.

A VM worker serving ``/metrics`` (``NUBE_METRICS_PORT``) adds :class:`NodeStatsCollector`: at
each scrape it opens a read-only connection to the worker's libvirt URI and reports the node's
CPU time by mode (``virNodeGetCPUStats``), its memory (``virNodeGetMemoryStats``), its CPUs and
its running domains. Nothing is kept between scrapes; when libvirt cannot be reached the
scrape reports ``nube_node_libvirt_up 0`` and nothing else of that node.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import libvirt
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

#: libvirt reports node CPU times in nanoseconds and memory in KiB.
NS_PER_SECOND = 1e9
KIB = 1024


class NodeStatsCollector(Collector):
    """The node statistics of libvirt connection ``uri`` for worker node ``node``."""

    def __init__(self, uri: str, node: str) -> None:
        self.uri = uri
        self.node = node

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "nube_node_libvirt_up",
            "1 when the VM worker's libvirt answered this scrape",
            labels=["node"],
        )
        try:
            conn = libvirt.openReadOnly(self.uri)
        except libvirt.libvirtError:
            up.add_metric([self.node], 0)
            yield up
            return
        try:
            families = list(self._families(conn))
        except libvirt.libvirtError:
            families = []
        finally:
            with contextlib.suppress(libvirt.libvirtError):
                conn.close()
        up.add_metric([self.node], 1 if families else 0)
        yield up
        yield from families

    def _families(self, conn: libvirt.virConnect) -> Iterator[Metric]:
        cpu = conn.getCPUStats(libvirt.VIR_NODE_CPU_STATS_ALL_CPUS, 0)
        memory = conn.getMemoryStats(libvirt.VIR_NODE_MEMORY_STATS_ALL_CELLS, 0)
        info = conn.getInfo()
        running = conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)
        seconds = CounterMetricFamily(
            "nube_node_cpu_seconds_total",
            "CPU time of the VM worker's node, all CPUs, by mode (virNodeGetCPUStats)",
            labels=["node", "mode"],
        )
        for mode, ns in sorted(cpu.items()):
            seconds.add_metric([self.node, mode], ns / NS_PER_SECOND)
        yield seconds
        mem = GaugeMetricFamily(
            "nube_node_memory_bytes",
            "Memory of the VM worker's node by kind (virNodeGetMemoryStats)",
            labels=["node", "kind"],
        )
        for kind, kib in sorted(memory.items()):
            mem.add_metric([self.node, kind], kib * KIB)
        yield mem
        cpus = GaugeMetricFamily("nube_node_cpus", "CPUs of the VM worker's node", labels=["node"])
        cpus.add_metric([self.node], info[2])
        yield cpus
        doms = GaugeMetricFamily(
            "nube_node_running_domains",
            "Running domains on the VM worker's libvirt connection (every tenant's and others')",
            labels=["node"],
        )
        doms.add_metric([self.node], len(running))
        yield doms
