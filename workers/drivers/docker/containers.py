"""Container lifecycle: run, create, list, inspect, start, stop, restart, pause, kill, remove."""

from __future__ import annotations

from typing import Any, TypeVar

import requests.exceptions
from docker.models.containers import Container

from nube.catalog import container_models as m
from nube.errors import Conflict, NotFound, NubeError, Timeout
from workers.drivers.base import JobContext, name_taken
from workers.drivers.docker import output, views
from workers.drivers.docker.base import HELPER, DockerBase
from workers.drivers.docker.errors import translated
from workers.drivers.docker.specs import create_kwargs
from workers.drivers.names import backend_name

S = TypeVar("S", bound=m.ContainerSpec)

_PREDEFINED_NETWORKS = {"bridge", "none"}
#: States ``stop`` acts on; the engine answers any other with "304 Not Modified", no error.
_STOPPABLE = {"running", "paused", "restarting"}


class ContainersMixin(DockerBase):
    """The container lifecycle operations of :class:`ContainerDriver`."""

    def run(self, params: m.ContainerRun, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`ContainerDriver.run`."""
        spec = params if params.detach else params.model_copy(update={"auto_remove": False})
        earlier = self._created_by_job(ctx)
        container = earlier or self._create(spec, ctx)
        if params.detach:
            self._start_or_remove(container, fresh=earlier is None)
            return self._view(container)
        return self._run_to_completion(container, params.wait_timeout, ctx, fresh=earlier is None)

    def create(self, params: m.ContainerCreate, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`ContainerDriver.create`."""
        return self._view(self._created_by_job(ctx) or self._create(params, ctx))

    def list(self, params: m.ContainerList, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`ContainerDriver.list`."""
        filters = self.label_filter(ctx, params.label)
        if params.status:
            filters["status"] = params.status
        # The list payload itself: inspecting each one would race with removals.
        found = self.client.api.containers(all=params.all, filters=filters)
        entries = [views.container_entry(c) for c in found if HELPER not in (c.get("Labels") or {})]
        if params.name:  # on the user's names (the engine's filter would see the prefix)
            entries = [e for e in entries if params.name in e["name"]]
        return {"containers": entries}

    def inspect(self, params: m.ContainerRef, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`ContainerDriver.inspect`."""
        return views.container_view(self.container(params.id, ctx))

    def start(self, params: m.ContainerRef, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`ContainerDriver.start`."""
        container = self.container(params.id, ctx)
        container.start()
        return self._state(container)

    def stop(self, params: m.ContainerStop, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`ContainerDriver.stop`."""
        container = self.container(params.id, ctx)
        if container.status not in _STOPPABLE:
            raise Conflict(f"container {params.id} is not running")
        container.stop(timeout=params.timeout)
        return self._state(container)

    def restart(self, params: m.ContainerStop, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`ContainerDriver.restart`."""
        container = self.container(params.id, ctx)
        container.restart(timeout=params.timeout)
        return self._state(container)

    def pause(self, params: m.ContainerRef, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`ContainerDriver.pause`."""
        container = self.container(params.id, ctx)
        container.pause()
        return self._state(container)

    def unpause(self, params: m.ContainerRef, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`ContainerDriver.unpause`."""
        container = self.container(params.id, ctx)
        container.unpause()
        return self._state(container)

    def kill(self, params: m.ContainerKill, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`ContainerDriver.kill`."""
        container = self.container(params.id, ctx)
        container.kill(signal=params.signal)
        return self._state(container)

    def remove(self, params: m.ContainerRemove, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`ContainerDriver.remove`."""
        container = self.container(params.id, ctx)
        container.remove(force=params.force, v=params.volumes)
        return {"id": container.id, "removed": True}

    def rename(self, params: m.ContainerRename, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`ContainerDriver.rename`."""
        container = self.container(params.id, ctx)
        old = views.shown(container.name, container.labels)
        try:
            with translated("container", params.id):
                container.rename(backend_name(ctx.tenant, params.name))
        except Conflict:
            raise name_taken("container", params.name) from None
        self._move_alias(container, old, params.name)
        return self._state(container) | {"name": params.name}

    # --- helpers -------------------------------------------------------------------------------

    def _move_alias(self, container: Container, old: str, new: str) -> None:
        """After a rename, the container answers to ``new`` instead of ``old`` on each network
        where ``old`` was its alias (an endpoint's aliases are fixed: reconnect it)."""
        container.reload()
        networks = container.attrs.get("NetworkSettings", {}).get("Networks") or {}
        for endpoint in networks.values():
            aliases = endpoint.get("Aliases") or []
            if old not in aliases:
                continue
            kept = [new if a == old else a for a in aliases if a != container.id[:12]]
            network = self.client.networks.get(endpoint["NetworkID"])
            network.disconnect(container)
            network.connect(container, aliases=list(dict.fromkeys(kept)))

    def _created_by_job(self, ctx: JobContext) -> Container | None:
        """The container an earlier attempt of this job made, if any (none on a first
        delivery: the engine is not asked)."""
        if not ctx.may_have_made:
            return None
        found = self.client.containers.list(all=True, filters=self.job_filter(ctx))
        return next((c for c in found if HELPER not in c.labels), None)

    def _create(self, spec: m.ContainerSpec, ctx: JobContext) -> Container:
        self.image(spec.image, ctx)
        backend = self._in_backend_names(spec, ctx)
        kwargs = create_kwargs(backend, self.new_labels(ctx, spec.labels), ctx.hardening)
        kwargs |= self._network_kwargs(backend)
        try:
            with translated("image", spec.image):
                return self.client.containers.create(**kwargs)
        except Conflict:
            if spec.name is None:
                raise
            # the engine's message names the holder's id: say only that the name is taken
            raise name_taken("container", spec.name) from None

    def _in_backend_names(self, spec: S, ctx: JobContext) -> S:
        """``spec`` as the engine must see it: the container, its volumes and its network by
        their backend names (:mod:`workers.drivers.names`), the user's name an alias on a user
        network (so that its neighbours reach it as ``name`` through Docker's DNS). Each named
        volume must be the tenant's; missing ones are created, labelled."""
        update: dict[str, Any] = {"volumes": [self._volume_mount(v, ctx) for v in spec.volumes]}
        if spec.name is not None:
            update["name"] = backend_name(ctx.tenant, spec.name)
        if spec.network is not None and spec.network not in _PREDEFINED_NETWORKS:
            update["network"] = self.network(spec.network, ctx).name
            aliases = [spec.name] if spec.name is not None else []
            update["network_aliases"] = list(dict.fromkeys([*aliases, *spec.network_aliases]))
        return spec.model_copy(update=update)

    def _volume_mount(self, mount: m.VolumeMount, ctx: JobContext) -> m.VolumeMount:
        try:
            volume = self.volume(mount.volume, ctx)
        except NotFound:
            name = backend_name(ctx.tenant, mount.volume)
            if self.volume_exists(name):
                raise
            volume = self.client.volumes.create(name, labels=self.new_labels(ctx))
        return mount.model_copy(update={"volume": volume.name})

    def _network_kwargs(self, spec: m.ContainerSpec) -> dict[str, Any]:
        """``spec`` in backend names (:meth:`_in_backend_names`)."""
        if spec.network is None:
            return {}
        if not spec.network_aliases:
            return {"network": spec.network}
        endpoint = self.client.api.create_endpoint_config(aliases=spec.network_aliases)
        return {"network": spec.network, "networking_config": {spec.network: endpoint}}

    def _start_or_remove(self, container: Container, fresh: bool = False) -> None:
        """Start a container never started (one an earlier attempt started, running or ended,
        is left as it is: starting it again would run its program twice); a container that
        cannot start is removed before the error is raised. ``fresh``: just created here, so
        its state need not be read again."""
        if not fresh:
            container.reload()
            if container.status != "created":
                return
        try:
            with translated("container", container.id):
                container.start()
        except NubeError:
            self._discard(container)
            raise

    def _run_to_completion(
        self, container: Container, timeout: int, ctx: JobContext, fresh: bool = False
    ) -> dict[str, Any]:
        """Start (unless an earlier attempt did), wait, collect the exit code and output. The
        container is removed once the result is recorded (:meth:`JobContext.when_recorded`):
        until then a redelivery (this node cut off from Redis, its job given to another) finds
        it by its label and returns its result instead of running the program again."""
        kept = False
        try:
            self._start_or_remove(container, fresh)
            code = self._wait(container, timeout)
            result = {"id": container.id, "exit_code": code} | self._output(container)
            kept = True
            ctx.when_recorded(lambda: self._discard(container))
            return result
        except (SystemExit, KeyboardInterrupt):
            # The worker is shutting down (SIGTERM in the pool child): the message is requeued
            # and the redelivery finds this container by its label, so keep it.
            kept = True
            raise
        finally:
            if not kept:
                self._discard(container)

    def _wait(self, container: Container, timeout: int) -> int:
        try:
            status = container.wait(timeout=timeout)
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError) as err:
            if "timed out" not in str(err).lower():
                raise
            raise Timeout(f"the container ran longer than {timeout} s", limit=timeout) from err
        return int(status.get("StatusCode", -1))

    @staticmethod
    def _output(container: Container) -> dict[str, Any]:
        stdout = container.logs(stdout=True, stderr=False)
        stderr = container.logs(stdout=False, stderr=True)
        return output.streams(stdout, stderr)

    def _discard(self, container: Container) -> None:
        """Remove a container, ignoring that it is already gone."""
        try:
            with translated("container", container.id):
                container.remove(force=True)
        except NotFound:
            pass

    def _view(self, container: Container) -> dict[str, Any]:
        container.reload()
        return views.container_view(container)

    @staticmethod
    def _state(container: Container) -> dict[str, Any]:
        try:
            with translated("container", container.id):
                container.reload()
        except NotFound:  # auto_remove took it away once it stopped
            return {
                "id": container.id,
                "name": views.shown(container.name, container.labels),
                "state": "removed",
                "exit_code": None,
            }
        state = container.attrs.get("State", {})
        return {
            "id": container.id,
            "name": views.shown(container.name, container.labels),
            "state": container.status,
            "exit_code": state.get("ExitCode"),
        }
