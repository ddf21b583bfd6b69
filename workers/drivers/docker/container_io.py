"""Looking into containers: logs, exec, diff, commit, stats, port."""

from __future__ import annotations

import json
from typing import Any

from docker.models.containers import Container

from nube.catalog.container_models import (
    ContainerCommit,
    ContainerExec,
    ContainerLogs,
    ContainerRef,
)
from workers.drivers.base import JobContext
from workers.drivers.docker import output, views
from workers.drivers.docker.base import DockerBase
from workers.drivers.docker.images import guard_reference


class ContainerIOMixin(DockerBase):
    """The operations that read from or snapshot a container."""

    def logs(self, params: ContainerLogs, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`ContainerDriver.logs`."""
        container = self.container(params.id, ctx)
        raw = container.logs(
            stdout=True,
            stderr=True,
            timestamps=params.timestamps,
            tail="all" if params.tail is None else params.tail,
            since=params.since,
        )
        text, cut = output.text(raw)
        return {"id": container.id, "logs": text, "truncated": cut}

    def exec(self, params: ContainerExec, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`ContainerDriver.exec`."""
        container = self.container(params.id, ctx)
        code, (stdout, stderr) = container.exec_run(
            params.command,
            environment=dict(params.env),
            workdir=params.workdir,
            user=params.user or "",
            demux=True,
        )
        return {"id": container.id, "exit_code": code} | output.streams(stdout, stderr)

    def diff(self, params: ContainerRef, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`ContainerDriver.diff`."""
        return views.diff(self.container(params.id, ctx).diff())

    def commit(self, params: ContainerCommit, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`ContainerDriver.commit`."""
        container = self.container(params.id, ctx)
        earlier = self.client.images.list(filters=self.job_filter(ctx))
        if earlier:
            return views.image_view(earlier[0])
        reference = f"{params.repository}:{params.tag}"
        guard_reference(self, reference, ctx)
        image = container.commit(
            repository=params.repository,
            tag=params.tag,
            author=params.author,
            message=params.message,
            pause=params.pause,
            changes=_label_changes(ctx.labels),
        )
        return views.image_view(image)

    def stats(self, params: ContainerRef, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`ContainerDriver.stats`."""
        container = self.container(params.id, ctx)
        return {"id": container.id} | _usage(container.stats(stream=False))

    def port(self, params: ContainerRef, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`ContainerDriver.port`."""
        container: Container = self.container(params.id, ctx)
        raw = container.attrs.get("NetworkSettings", {}).get("Ports")
        return {"id": container.id, "ports": views.ports(raw)}


def _label_changes(labels: dict[str, str]) -> list[str]:
    """Dockerfile ``LABEL`` instructions (JSON-quoted) that stamp the tenant and job."""
    pairs = " ".join(f"{key}={json.dumps(value)}" for key, value in labels.items())
    return [f"LABEL {pairs}"]


def _usage(raw: dict[str, Any]) -> dict[str, Any]:
    memory = raw.get("memory_stats") or {}
    return {
        "cpu_percent": _cpu_percent(raw),
        "memory": {"usage": memory.get("usage", 0), "limit": memory.get("limit", 0)},
        "pids": (raw.get("pids_stats") or {}).get("current", 0),
        "network": _network_io(raw.get("networks") or {}),
        "block_io": _block_io(raw.get("blkio_stats") or {}),
    }


def _cpu_percent(raw: dict[str, Any]) -> float:
    cpu, pre = raw.get("cpu_stats") or {}, raw.get("precpu_stats") or {}
    used = cpu.get("cpu_usage", {}).get("total_usage", 0) - pre.get("cpu_usage", {}).get(
        "total_usage", 0
    )
    system = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    if used <= 0 or system <= 0:
        return 0.0
    return round(used / system * (cpu.get("online_cpus") or 1) * 100.0, 3)


def _network_io(networks: dict[str, Any]) -> dict[str, int]:
    return {
        "rx_bytes": sum(n.get("rx_bytes", 0) for n in networks.values()),
        "tx_bytes": sum(n.get("tx_bytes", 0) for n in networks.values()),
    }


def _block_io(blkio: dict[str, Any]) -> dict[str, int]:
    entries = blkio.get("io_service_bytes_recursive") or []
    return {
        "read_bytes": sum(e.get("value", 0) for e in entries if e.get("op") == "Read"),
        "write_bytes": sum(e.get("value", 0) for e in entries if e.get("op") == "Write"),
    }
