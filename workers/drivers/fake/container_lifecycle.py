"""Fake container lifecycle: run, create, list, inspect, start, stop, restart, pause, kill, remove.

A started container runs its program (:mod:`.programs`) at once: it either ends (``exited``,
with its exit code and output in the logs) or reaches a long ``sleep`` and stays ``running``.
Programs run as PID 1 without signal handlers, as ``sleep`` and ``sh`` do in a real container:
``stop`` ends them with SIGKILL (exit code 137), ``kill`` ends them only with SIGKILL.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from nube.catalog.container_models import (
    OUTPUT_LIMIT,
    ContainerCreate,
    ContainerKill,
    ContainerList,
    ContainerRef,
    ContainerRemove,
    ContainerRename,
    ContainerRun,
    ContainerSpec,
    ContainerStop,
)
from nube.errors import Conflict, InvalidRequest, NotFound, NubeError, Timeout
from nube.wire import Hardening
from workers.drivers.base import JobContext, Result, name_taken
from workers.drivers.fake import container_views as views
from workers.drivers.fake import effects
from workers.drivers.fake.common import hex_id, now_iso
from workers.drivers.fake.container_store import (
    PREDEFINED_NETWORKS,
    Endpoint,
    FakeContainer,
    FakeEngineBase,
)
from workers.drivers.fake.programs import FileSystem, Mount, NotExecutable, Outcome, run
from workers.drivers.names import backend_name

_KILLED = 137
_FIRST_HOST_PORT = 32768


class FakeLifecycleMixin(FakeEngineBase):
    """The container lifecycle operations of the fake container driver."""

    def run(self, params: ContainerRun, ctx: JobContext) -> Result:
        """See :meth:`ContainerDriver.run`."""
        spec = params if params.detach else params.model_copy(update={"auto_remove": False})
        container = self.created_by_job(ctx) or self.create_container(spec, ctx)
        if params.detach:
            self._start_or_remove(container)
            return self._view(container)
        return self._run_to_completion(container, params.wait_timeout, ctx)

    def create(self, params: ContainerCreate, ctx: JobContext) -> Result:
        """See :meth:`ContainerDriver.create`."""
        return self._view(self.created_by_job(ctx) or self.create_container(params, ctx))

    def list(self, params: ContainerList, ctx: JobContext) -> Result:
        """See :meth:`ContainerDriver.list`."""
        found = [
            c
            for c in reversed(self.containers.values())
            if self.mine(c.labels, ctx, params.label)
            and (params.all or c.live)
            and params.status in (None, c.status)
            and (params.name is None or params.name in views.shown(c.name, c.labels))
        ]
        return {"containers": [views.container_entry(c) for c in found]}

    def inspect(self, params: ContainerRef, ctx: JobContext) -> Result:
        """See :meth:`ContainerDriver.inspect`."""
        return self._view(self.container(params.id, ctx))

    def start(self, params: ContainerRef, ctx: JobContext) -> Result:
        """See :meth:`ContainerDriver.start`."""
        container = self.container(params.id, ctx)
        if container.status in ("created", "exited"):
            self._start(container)
        return self._state(container)

    def stop(self, params: ContainerStop, ctx: JobContext) -> Result:
        """See :meth:`ContainerDriver.stop`."""
        container = self.container(params.id, ctx)
        if not container.live:
            raise Conflict(f"container {params.id} is not running")
        self._exit(container, _KILLED)
        return self._state(container)

    def restart(self, params: ContainerStop, ctx: JobContext) -> Result:
        """See :meth:`ContainerDriver.restart`."""
        container = self.container(params.id, ctx)
        if container.live:
            self._exit(container, _KILLED, restarting=True)
        self._start(container)
        return self._state(container)

    def pause(self, params: ContainerRef, ctx: JobContext) -> Result:
        """See :meth:`ContainerDriver.pause`."""
        container = self.container(params.id, ctx)
        if container.status == "paused":
            raise Conflict(f"Container {container.id} is already paused")
        self._require_running(container)
        container.status = "paused"
        return self._state(container)

    def unpause(self, params: ContainerRef, ctx: JobContext) -> Result:
        """See :meth:`ContainerDriver.unpause`."""
        container = self.container(params.id, ctx)
        if container.status != "paused":
            raise Conflict(f"Container {container.id} is not paused")
        container.status = "running"
        return self._state(container)

    def kill(self, params: ContainerKill, ctx: JobContext) -> Result:
        """See :meth:`ContainerDriver.kill`."""
        container = self.container(params.id, ctx)
        if not container.live:
            raise Conflict(f"Container {container.id} is not running")
        if params.signal in ("SIGKILL", "9"):
            self._exit(container, _KILLED)
        return self._state(container)

    def remove(self, params: ContainerRemove, ctx: JobContext) -> Result:
        """See :meth:`ContainerDriver.remove`."""
        container = self.container(params.id, ctx)
        if container.live and not params.force:
            raise Conflict(
                f"You cannot remove a running container {container.id}. Stop the container "
                "before attempting removal or force remove"
            )
        del self.containers[container.id]
        return {"id": container.id, "removed": True}

    def rename(self, params: ContainerRename, ctx: JobContext) -> Result:
        """See :meth:`ContainerDriver.rename`."""
        container = self.container(params.id, ctx)
        self._require_free_name(params.name, ctx, container.id)
        old = views.shown(container.name, container.labels)
        container.name = backend_name(ctx.tenant, params.name)
        for endpoint in container.endpoints.values():  # the alias moves with the name
            endpoint.aliases = [params.name if a == old else a for a in endpoint.aliases]
        return self._state(container) | {"name": params.name}

    # --- helpers ---------------------------------------------------------------------------------

    def created_by_job(self, ctx: JobContext) -> FakeContainer | None:
        """The container an earlier attempt of this job made, if any."""
        return next((c for c in self.containers.values() if self.made_by_job(c.labels, ctx)), None)

    def create_container(self, spec: ContainerSpec, ctx: JobContext) -> FakeContainer:
        """A new container of ``spec`` (not started), labelled with the tenant and job."""
        image = self.image(spec.image, ctx)
        user = spec.name
        spec = self._in_backend_names(spec, ctx)
        if user:
            self._require_free_name(user, ctx)
        network = spec.network or "bridge"
        entrypoint = spec.entrypoint or image.config.get("Entrypoint") or []
        command = spec.command or ([] if spec.entrypoint else image.config.get("Cmd") or [])
        image_env = dict(e.partition("=")[::2] for e in image.config.get("Env") or [])
        container = FakeContainer(
            id=hex_id(),
            name=spec.name or f"fake_{hex_id(8)}",
            spec=spec,
            image_id=image.id,
            labels=image.labels | self.new_labels(ctx, spec.labels),
            argv=[*entrypoint, *command],
            env=image_env | dict(spec.env),
            host_config=_host_config(spec, network, ctx.hardening),
            endpoints={network: Endpoint(self._network_id(network), _aliases(network, user, spec))},
        )
        self.containers[container.id] = container
        effects.container_made(container.labels)
        return container

    def _in_backend_names(self, spec: ContainerSpec, ctx: JobContext) -> ContainerSpec:
        """``spec`` with the container, its volumes and its network in backend names (as the
        Docker driver gives them to the engine). Each named volume must be the tenant's;
        missing ones are created, labelled."""
        mounts = []
        for mount in spec.volumes:
            try:
                volume = self.volume(mount.volume, ctx)
            except NotFound:
                name = backend_name(ctx.tenant, mount.volume)
                if name in self.volumes:
                    raise
                volume = self.make_volume(name, self.new_labels(ctx))
            mounts.append(mount.model_copy(update={"volume": volume.name}))
        update: dict[str, Any] = {"volumes": mounts}
        if spec.name:
            update["name"] = backend_name(ctx.tenant, spec.name)
        if spec.network is not None and spec.network not in PREDEFINED_NETWORKS:
            update["network"] = self.network(spec.network, ctx).name
        return spec.model_copy(update=update)

    def _network_id(self, name: str) -> str:
        found = [n.id for n in self.networks.values() if n.name == name]
        return found[0] if found else name

    def _require_free_name(self, name: str, ctx: JobContext, owner: str | None = None) -> None:
        """The tenant's ``name`` is free (or held by ``owner``), else ``name_taken``."""
        scoped = backend_name(ctx.tenant, name)
        taken = next((c for c in self.containers.values() if c.name == scoped), None)
        if taken is not None and taken.id != owner:
            raise name_taken("container", name)

    @staticmethod
    def _require_running(container: FakeContainer) -> None:
        if container.status != "running":
            raise Conflict(f"Container {container.id} is not running")

    def _start_or_remove(self, container: FakeContainer) -> None:
        """Start a container never started (one an earlier attempt started is left as it is);
        a container that cannot start is removed before the error is raised."""
        if container.status != "created":
            return
        try:
            self._start(container)
        except NubeError:
            self.containers.pop(container.id, None)
            raise

    def _start(self, container: FakeContainer) -> None:
        """Bind its ports, give it addresses and run its program."""
        container.ports = _bind_ports(self.containers.values(), container)
        outcome = self.execute(container, container.argv, container.env, _workdir(container))
        container.status, container.started_at = "running", now_iso()
        for name, endpoint in container.endpoints.items():
            endpoint.ipv4 = self.address_for(name, container)
        append_log(container, outcome)
        if outcome.exit_code is not None:
            self._exit(container, outcome.exit_code)

    def execute(
        self, container: FakeContainer, argv: Sequence[str], env: dict[str, str], workdir: str
    ) -> Outcome:
        """Run ``argv`` in the container's file system (its volumes mounted)."""
        image = self.images.get(container.image_id)
        mounts = [
            Mount(m.target, self.volumes[m.volume].files, m.read_only)
            for m in container.spec.volumes
            if m.volume in self.volumes
        ]
        fs = FileSystem(image.files if image else {}, container.layer, mounts)
        try:
            return run(argv, fs, env, workdir)
        except NotExecutable as e:
            container.ports = []
            raise InvalidRequest(
                "failed to create shim task: OCI runtime create failed: "
                f'exec: "{e}": executable file not found in $PATH'
            ) from e

    def _exit(self, container: FakeContainer, code: int, restarting: bool = False) -> None:
        container.status, container.exit_code = "exited", code
        container.finished_at, container.ports = now_iso(), []
        for endpoint in container.endpoints.values():
            endpoint.ipv4 = ""
        if container.spec.auto_remove and not restarting:
            self.containers.pop(container.id, None)

    def _run_to_completion(self, container: FakeContainer, timeout: int, ctx: JobContext) -> Result:
        """As the Docker driver's: the ended container is removed once the result is recorded
        (:meth:`JobContext.when_recorded`), so that a redelivery until then returns its result."""
        try:
            self._start_or_remove(container)
            if container.status != "exited":
                raise Timeout(f"the container ran longer than {timeout} s", limit=timeout)
        except BaseException:
            self.containers.pop(container.id, None)
            raise
        stdout, stderr = _streams(container)
        ctx.when_recorded(lambda: self._forget(container.id))
        return {"id": container.id, "exit_code": container.exit_code} | _capped(stdout, stderr)

    def _forget(self, container_id: str) -> None:
        with self._lock:
            self.containers.pop(container_id, None)

    def _view(self, container: FakeContainer) -> Result:
        if container.id not in self.containers:
            raise NotFound(kind="container", id=container.id)
        return views.container_view(container, self.images.get(container.image_id))

    def _state(self, container: FakeContainer) -> Result:
        return views.state(container, removed=container.id not in self.containers)


def append_log(container: FakeContainer, outcome: Outcome) -> None:
    """Add a program's output to the container's log, one entry per line."""
    for stream, data in outcome.chunks:
        for line in data.decode("utf-8", errors="replace").splitlines(keepends=True):
            container.log.append((now_iso(), time.time(), stream, line))


def _streams(container: FakeContainer) -> tuple[bytes, bytes]:
    out = "".join(line for _, _, stream, line in container.log if stream == "stdout")
    err = "".join(line for _, _, stream, line in container.log if stream == "stderr")
    return out.encode(), err.encode()


def capped(data: bytes, limit: int = OUTPUT_LIMIT) -> tuple[str, bool]:
    """The newest ``limit`` bytes as text, and whether anything was cut."""
    return data[-limit:].decode("utf-8", errors="replace"), len(data) > limit


def _capped(stdout: bytes, stderr: bytes) -> dict[str, Any]:
    out, cut_out = capped(stdout)
    err, cut_err = capped(stderr)
    return {"stdout": out, "stderr": err, "truncated": cut_out or cut_err}


def _bind_ports(
    containers: Iterable[FakeContainer], container: FakeContainer
) -> list[dict[str, Any]]:
    """Publish the container's ports; a host port another live container holds is taken."""
    taken = {
        (p["host_port"], p["protocol"]): p["host_ip"] for c in containers if c.live for p in c.ports
    }
    bound = []
    for m in container.spec.ports:
        port = m.host_port or next(
            p for p in range(_FIRST_HOST_PORT, 65536) if (p, m.protocol) not in taken
        )
        held = taken.get((port, m.protocol))
        if held is not None and (held == m.host_ip or "0.0.0.0" in (held, m.host_ip)):
            raise Conflict(f"Bind for {m.host_ip}:{port} failed: port is already allocated")
        taken[(port, m.protocol)] = m.host_ip
        bound.append(_port(m.container_port, m.protocol, m.host_ip, port))
    return bound


def _workdir(container: FakeContainer) -> str:
    return container.spec.working_dir or "/"


def _port(container_port: int, protocol: str, host_ip: str, host_port: int) -> dict[str, Any]:
    return {
        "container_port": container_port,
        "protocol": protocol,
        "host_ip": host_ip,
        "host_port": host_port,
    }


def _aliases(network: str, name: str | None, spec: ContainerSpec) -> list[str]:
    """On a user network a container is reachable by its user name too (as on the engine)."""
    named = [name] if name and network not in PREDEFINED_NETWORKS else []
    return list(dict.fromkeys([*named, *spec.network_aliases]))


def _host_config(spec: ContainerSpec, network: str, hardening: Hardening) -> dict[str, Any]:
    """The limits asked for; the policy's hardening fills what the request left unset."""
    cpus = spec.cpus or hardening.cpus
    return {
        "memory": spec.memory if spec.memory is not None else hardening.memory,
        "nano_cpus": int(cpus * 1e9) if cpus else None,
        "pids_limit": spec.pids_limit if spec.pids_limit is not None else hardening.pids_limit,
        "auto_remove": spec.auto_remove,
        "restart_policy": spec.restart_policy,
        "restart_max_retries": spec.restart_max_retries if spec.restart_policy != "no" else 0,
        "network_mode": network,
    }
