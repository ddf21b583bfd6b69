"""Looking into fake containers: logs, exec, diff, commit, stats, port."""

from __future__ import annotations

from typing import Any

from nube.catalog.container_models import (
    ContainerCommit,
    ContainerExec,
    ContainerLogs,
    ContainerRef,
)
from nube.errors import Conflict, InvalidRequest
from workers.drivers.base import JobContext, Result
from workers.drivers.fake import container_views as views
from workers.drivers.fake.common import now_iso
from workers.drivers.fake.container_lifecycle import FakeLifecycleMixin, capped
from workers.drivers.fake.container_store import FakeContainer, FakeImage, image_id
from workers.drivers.fake.programs import Outcome

HOST_MEMORY = 8 << 30
"""The memory limit a container without one reports (the fake host's memory)."""


class FakeContainerIOMixin(FakeLifecycleMixin):
    """The operations that read from or snapshot a fake container."""

    def logs(self, params: ContainerLogs, ctx: JobContext) -> Result:
        """See :meth:`ContainerDriver.logs`."""
        container = self.container(params.id, ctx)
        since = params.since.timestamp() if params.since else None
        lines = [entry for entry in container.log if since is None or entry[1] >= since]
        if params.tail is not None:
            lines = lines[len(lines) - params.tail :] if params.tail else []
        text = "".join(f"{iso} {line}" if params.timestamps else line for iso, _, _, line in lines)
        logs, cut = capped(text.encode())
        return {"id": container.id, "logs": logs, "truncated": cut}

    def exec(self, params: ContainerExec, ctx: JobContext) -> Result:
        """See :meth:`ContainerDriver.exec`; a program that would run on counts as done."""
        container = self.container(params.id, ctx)
        if container.status == "paused":
            raise Conflict(f"Container {container.id} is paused, unpause the container first")
        self._require_running(container)
        workdir = params.workdir or container.spec.working_dir or "/"
        try:
            outcome = self.execute(container, params.command, container.env | params.env, workdir)
        except InvalidRequest:
            message = f"OCI runtime exec failed: exec: {params.command[0]!r}: not found\r\n"
            outcome = Outcome(127, [("stdout", message.encode())])
        out, cut_out = capped(outcome.stdout)
        err, cut_err = capped(outcome.stderr)
        return {
            "id": container.id,
            "exit_code": outcome.exit_code or 0,
            "stdout": out,
            "stderr": err,
            "truncated": cut_out or cut_err,
        }

    def diff(self, params: ContainerRef, ctx: JobContext) -> Result:
        """See :meth:`ContainerDriver.diff`; files the container wrote outside its volumes."""
        container = self.container(params.id, ctx)
        image = self.images.get(container.image_id)
        base = image.files if image else {}
        return {
            "changes": [
                {"path": path, "kind": "changed" if path in base else "added"}
                for path in sorted(container.layer)
            ]
        }

    def commit(self, params: ContainerCommit, ctx: JobContext) -> Result:
        """See :meth:`ContainerDriver.commit`."""
        container = self.container(params.id, ctx)
        earlier = [i for i in self.images.values() if self.made_by_job(i.labels, ctx)]
        if earlier:
            return views.image_view(earlier[0])
        reference = f"{params.repository}:{params.tag}"
        self.guard_reference(reference, ctx)
        image = _committed(container, self.images.get(container.image_id))
        image.labels = container.labels | ctx.labels
        image.author, image.comment = params.author, params.message
        self.images[image.id] = image
        self.add_tag(image, reference)
        return views.image_view(image)

    def stats(self, params: ContainerRef, ctx: JobContext) -> Result:
        """See :meth:`ContainerDriver.stats`; a live fake container uses 1 MiB and one PID."""
        container = self.container(params.id, ctx)
        live = container.live
        return {
            "id": container.id,
            "cpu_percent": 0.0,
            "memory": {
                "usage": (1 << 20) if live else 0,
                "limit": (container.host_config.get("memory") or HOST_MEMORY) if live else 0,
            },
            "pids": 1 if live else 0,
            "network": {"rx_bytes": 0, "tx_bytes": 0},
            "block_io": {"read_bytes": 0, "write_bytes": 0},
        }

    def port(self, params: ContainerRef, ctx: JobContext) -> Result:
        """See :meth:`ContainerDriver.port`."""
        container = self.container(params.id, ctx)
        return {"id": container.id, "ports": [dict(p) for p in container.ports]}


def _committed(container: FakeContainer, base: FakeImage | None) -> FakeImage:
    """A new image of the container: its image's files plus what it wrote."""
    config: dict[str, Any] = dict(base.config) if base else {}
    config["Env"] = [f"{k}={v}" for k, v in container.env.items()]
    config["Cmd"] = container.spec.command or config.get("Cmd")
    layer = {"created": now_iso(), "created_by": " ".join(container.argv), "size": 0}
    return FakeImage(
        id=image_id(),
        tags=[],
        labels={},
        config=config,
        files={**(base.files if base else {}), **container.layer},
        history=[*(base.history if base else []), layer],
    )
