"""The container driver interface. Tasks speak only to this; Docker lives behind it.

Each method is the handler of the catalog operation ``containers.<method name>`` and states its
contract in its docstring, like Nova's ``ComputeDriver``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from nube.catalog import container_models as m
from workers.drivers.base import JobContext, Result


class ContainerDriver(ABC):
    """Runs container operations for one engine.

    Contract for every method: it returns JSON-able data; it raises only :mod:`nube.errors`
    (``NotFound``, ``Conflict``, ``BackendUnavailable`` for a transient engine fault, ...); it
    never lets the backend library's exception types escape. Creates are keyed by
    ``ctx.job_id`` (the ``nube.job`` label): called twice for one job they make one resource.
    Every resource a call creates carries the ``nube.tenant`` and ``nube.job`` labels. Reads
    show only resources labelled with ``ctx.tenant``; another tenant's resource, named by id or
    name, is ``NotFound`` exactly as a missing one is (``ctx.admin`` sees every tenant's).
    Images are the exception: images without a ``nube.tenant`` label (pulled, loaded) are shared
    and visible to every tenant; built or committed images belong to their tenant.
    """

    name: str = "abstract"

    @abstractmethod
    def version(self) -> str:
        """Backend version string, for the worker's heartbeat."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    # --- containers ------------------------------------------------------------------------------

    @abstractmethod
    def run(self, params: m.ContainerRun, ctx: JobContext) -> Result:
        """Create and start a container.

        With ``detach`` it returns the container (as :meth:`inspect`) once started. Otherwise
        it waits up to ``wait_timeout`` s for the container to exit and returns ``{"id",
        "exit_code", "stdout", "stderr", "truncated"}``; the container is removed once that
        result is recorded (:meth:`~workers.drivers.base.JobContext.when_recorded`; a container
        still running at the timeout is killed, removed at once and reported as ``Timeout``).
        A redelivered call finds the container of an earlier attempt (by its ``nube.job``
        label): it starts it if it never started, else waits for it (running) or collects the
        result it ended with, and never makes a second one or runs its program twice.
        Missing image: ``NotFound``; name taken (:func:`~workers.drivers.base.name_taken`, which
        never says who holds it) or port already allocated: ``Conflict``; a container that
        failed to start is removed before the error is raised.
        """

    @abstractmethod
    def create(self, params: m.ContainerCreate, ctx: JobContext) -> Result:
        """Create a container (not started); return it as :meth:`inspect` does.

        Named volumes that do not exist are created with the tenant's labels; another
        tenant's volume or network is ``NotFound``. A redelivered call returns the container
        the first attempt made.
        """

    @abstractmethod
    def list(self, params: m.ContainerList, ctx: JobContext) -> Result:
        """The tenant's containers as ``{"containers": [summary, ...]}``, newest first.

        A summary holds ``id, name, image, state, status, created, labels, ports``.
        """

    @abstractmethod
    def inspect(self, params: m.ContainerRef, ctx: JobContext) -> Result:
        """One container: ``id, name, image, state{...}, config{...}, host_config{...},
        networks, ports, mounts, labels``. Environment values are not returned, only names."""

    @abstractmethod
    def start(self, params: m.ContainerRef, ctx: JobContext) -> Result:
        """Start a container; starting a running one succeeds. Returns ``{"id", "state"}``."""

    @abstractmethod
    def stop(self, params: m.ContainerStop, ctx: JobContext) -> Result:
        """SIGTERM, then SIGKILL after ``timeout`` s. Not running: ``Conflict``.
        Returns ``{"id", "state", "exit_code"}``."""

    @abstractmethod
    def restart(self, params: m.ContainerStop, ctx: JobContext) -> Result:
        """Stop (with ``timeout``) and start again. Returns ``{"id", "state"}``."""

    @abstractmethod
    def pause(self, params: m.ContainerRef, ctx: JobContext) -> Result:
        """Freeze every process. Not running or already paused: ``Conflict``."""

    @abstractmethod
    def unpause(self, params: m.ContainerRef, ctx: JobContext) -> Result:
        """Thaw a paused container. Not paused: ``Conflict``."""

    @abstractmethod
    def kill(self, params: m.ContainerKill, ctx: JobContext) -> Result:
        """Send ``signal`` to the main process. Not running: ``Conflict``."""

    @abstractmethod
    def remove(self, params: m.ContainerRemove, ctx: JobContext) -> Result:
        """Remove a container (``force`` kills a running one first; ``volumes`` also removes
        its anonymous volumes). Running without ``force``: ``Conflict``. Already gone:
        ``NotFound`` (a redelivered remove reports it too; the effect happened once).
        Returns ``{"id", "removed": true}``."""

    @abstractmethod
    def logs(self, params: m.ContainerLogs, ctx: JobContext) -> Result:
        """Output (stdout and stderr interleaved) as ``{"id", "logs", "truncated"}``; at most
        ``OUTPUT_LIMIT`` bytes, the newest kept."""

    @abstractmethod
    def exec(self, params: m.ContainerExec, ctx: JobContext) -> Result:
        """Run a command in a running container and wait for it: ``{"exit_code", "stdout",
        "stderr", "truncated"}``. Not running: ``Conflict``. A missing executable gives a
        non-zero exit code (126/127), not an error."""

    @abstractmethod
    def diff(self, params: m.ContainerRef, ctx: JobContext) -> Result:
        """Filesystem changes against the image: ``{"changes": [{"path", "kind"}]}`` where
        kind is ``added``, ``changed`` or ``deleted``."""

    @abstractmethod
    def commit(self, params: m.ContainerCommit, ctx: JobContext) -> Result:
        """Make an image ``repository:tag`` of the container, with author and message,
        labelled with the tenant and job. A redelivered call returns the image of the first
        attempt. Returns the image as :meth:`image_inspect` does."""

    @abstractmethod
    def stats(self, params: m.ContainerRef, ctx: JobContext) -> Result:
        """One sample of resource usage: ``cpu_percent, memory{usage, limit}, pids,
        network{rx_bytes, tx_bytes}, block_io{read_bytes, write_bytes}``. Not running gives
        zeros."""

    @abstractmethod
    def rename(self, params: m.ContainerRename, ctx: JobContext) -> Result:
        """Give the container a new name. Name in use: ``Conflict`` (``name_taken``)."""

    @abstractmethod
    def port(self, params: m.ContainerRef, ctx: JobContext) -> Result:
        """Published ports: ``{"ports": [{"container_port", "protocol", "host_ip",
        "host_port"}]}`` (empty while the container is not running)."""

    # --- networks --------------------------------------------------------------------------------

    @abstractmethod
    def network_create(self, params: m.ContainerNetworkCreate, ctx: JobContext) -> Result:
        """Create a user bridge network. Name in use: ``name_taken``; subnet overlapping another
        network: ``Conflict``. A redelivered call returns the first attempt's network."""

    @abstractmethod
    def network_list(self, params: m.LabelFilter, ctx: JobContext) -> Result:
        """The tenant's networks as ``{"networks": [...]}``."""

    @abstractmethod
    def network_inspect(self, params: m.ContainerNetworkRef, ctx: JobContext) -> Result:
        """``id, name, driver, internal, subnets, labels, containers{id: {name, ipv4}}``."""

    @abstractmethod
    def network_connect(self, params: m.ContainerNetworkConnect, ctx: JobContext) -> Result:
        """Attach one of the tenant's containers, reachable by its name and ``aliases``.
        Already attached: ``Conflict``."""

    @abstractmethod
    def network_disconnect(self, params: m.ContainerNetworkDisconnect, ctx: JobContext) -> Result:
        """Detach a container. Not attached: ``Conflict``."""

    @abstractmethod
    def network_remove(self, params: m.ContainerNetworkRef, ctx: JobContext) -> Result:
        """Remove a network. Containers still attached: ``Conflict``."""

    @abstractmethod
    def network_prune(self, params: m.LabelFilter, ctx: JobContext) -> Result:
        """Remove the tenant's networks no container uses: ``{"deleted": [names]}``."""

    # --- volumes ---------------------------------------------------------------------------------

    @abstractmethod
    def volume_create(self, params: m.ContainerVolumeCreate, ctx: JobContext) -> Result:
        """Create a local named volume. Name in use: ``name_taken`` (the engine itself would
        hand back the existing volume). A redelivered call returns the first attempt's."""

    @abstractmethod
    def volume_list(self, params: m.LabelFilter, ctx: JobContext) -> Result:
        """The tenant's volumes as ``{"volumes": [...]}``."""

    @abstractmethod
    def volume_inspect(self, params: m.ContainerVolumeRef, ctx: JobContext) -> Result:
        """``name, driver, created, labels, mountpoint``."""

    @abstractmethod
    def volume_remove(self, params: m.ContainerVolumeRemove, ctx: JobContext) -> Result:
        """Remove a volume. In use by a container: ``Conflict``."""

    @abstractmethod
    def volume_prune(self, params: m.LabelFilter, ctx: JobContext) -> Result:
        """Remove the tenant's unused volumes: ``{"deleted": [names], "space_reclaimed"}``."""

    @abstractmethod
    def volume_backup(self, params: m.ContainerVolumeRef, ctx: JobContext) -> Result:
        """The volume's content as a tar archive: ``{"name", "archive" (base64), "size"}``.
        Larger than ``ARCHIVE_LIMIT``: ``PayloadTooLarge``. Any helper container is removed."""

    @abstractmethod
    def volume_restore(self, params: m.ContainerVolumeRestore, ctx: JobContext) -> Result:
        """Unpack a backup archive into the volume (created with the tenant's labels if
        missing). Not a tar archive: ``InvalidRequest``. Returns ``{"name", "size"}``."""

    # --- images ----------------------------------------------------------------------------------

    @abstractmethod
    def image_pull(self, params: m.ImagePull, ctx: JobContext) -> Result:
        """Pull an image, reporting ``{"phase": "pull", "current", "total", "layers"}``
        progress. Unknown image: ``NotFound``; registry unreachable: ``BackendUnavailable``.
        Returns the image as :meth:`image_inspect` does."""

    @abstractmethod
    def image_list(self, params: m.ImageList, ctx: JobContext) -> Result:
        """Shared images and the tenant's as ``{"images": [{"id", "tags", "size",
        "created", "labels"}]}``."""

    @abstractmethod
    def image_inspect(self, params: m.ImageRefParams, ctx: JobContext) -> Result:
        """``id, tags, digests, created, size, author, comment, labels, config{cmd,
        entrypoint, working_dir, user, exposed_ports}, architecture, os``."""

    @abstractmethod
    def image_history(self, params: m.ImageRefParams, ctx: JobContext) -> Result:
        """Layers, newest first: ``{"layers": [{"id", "created", "created_by", "size",
        "comment", "tags"}]}``."""

    @abstractmethod
    def image_tag(self, params: m.ImageTagParams, ctx: JobContext) -> Result:
        """Add the tag ``repository:tag``; returns ``{"id", "reference"}``."""

    @abstractmethod
    def image_remove(self, params: m.ImageRemove, ctx: JobContext) -> Result:
        """Untag / remove an image. Used by a container without ``force``: ``Conflict``.
        A shared (untenanted) image can be removed by an admin only (``Forbidden``)."""

    @abstractmethod
    def image_build(self, params: m.ImageBuild, ctx: JobContext) -> Result:
        """Build from the Dockerfile and context files, reporting ``{"phase": "build",
        "step", "steps"}`` progress; the image carries the tenant and job labels. A failing
        step is ``InvalidRequest`` with the build's message. A redelivered call returns the
        first attempt's image. Returns the image as :meth:`image_inspect` plus ``log``."""

    @abstractmethod
    def image_save(self, params: m.ImageSave, ctx: JobContext) -> Result:
        """``docker save`` of the image: ``{"id", "archive" (base64), "size"}``. Larger than
        ``ARCHIVE_LIMIT``: ``PayloadTooLarge``."""

    @abstractmethod
    def image_load(self, params: m.ImageLoad, ctx: JobContext) -> Result:
        """``docker load`` of an archive: ``{"images": [{"id", "tags"}]}``. Not an image
        archive: ``InvalidRequest``."""

    @abstractmethod
    def image_push(self, params: m.ImagePush, ctx: JobContext) -> Result:
        """Tag as ``registry/repository:tag`` and push, reporting ``{"phase": "push", ...}``
        progress. Registry unreachable: ``BackendUnavailable``. Returns ``{"reference",
        "digest"}``."""
