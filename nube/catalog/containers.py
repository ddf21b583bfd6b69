"""Container operations (Docker Engine), served by the ``containers`` queue.

REST scheme: collections ``/v1/containers``, ``/v1/images``, ``/v1/container-networks`` and
``/v1/container-volumes``; each state change is a sub-resource of its own,
``POST /v1/<collection>/<id>/<action>``, so every action has its own parameter schema (the
models are in :mod:`nube.catalog.container_models`).
"""

from __future__ import annotations

from typing import Any

from nube.catalog import Operation, Params
from nube.catalog import container_models as m

__all__ = ["OPERATIONS"]


def _op(
    name: str, params: type[Params], method: str, path: str, summary: str, **kw: Any
) -> Operation:
    """An operation of this service; its handler is the action's name."""
    kw.setdefault("scope", "read" if method == "GET" else "write")
    kw.setdefault("time_limit", 30 if method == "GET" else 60)
    return Operation(
        name=f"containers.{name}",
        params=params,
        method=method,
        path=path,
        summary=summary,
        handler=name,
        **kw,
    )


_C = "/v1/containers"
_N = "/v1/container-networks"
_V = "/v1/container-volumes"
_I = "/v1/images"

CONTAINER_OPERATIONS = [
    _op(
        "run",
        m.ContainerRun,
        "POST",
        _C,
        "Run a container (create + start); by default wait "
        "for it to exit and return its exit code and output",
        time_limit=300,
        creates=True,
        counted_kind="containers",
        target="image",
    ),
    _op(
        "create",
        m.ContainerCreate,
        "POST",
        f"{_C}/create",
        "Create a container without starting it",
        creates=True,
        counted_kind="containers",
        target="image",
    ),
    _op(
        "list",
        m.ContainerList,
        "GET",
        _C,
        "List the caller's containers",
        counted_kind="containers",
        lists_all=m.ContainerList(all=True),
    ),
    _op("inspect", m.ContainerRef, "GET", f"{_C}/<id>", "Inspect a container", target="id"),
    _op("start", m.ContainerRef, "POST", f"{_C}/<id>/start", "Start a container", target="id"),
    _op(
        "stop",
        m.ContainerStop,
        "POST",
        f"{_C}/<id>/stop",
        "Stop a container (SIGTERM, then SIGKILL after the timeout)",
        target="id",
        time_limit=180,
    ),
    _op(
        "restart",
        m.ContainerStop,
        "POST",
        f"{_C}/<id>/restart",
        "Restart a container",
        target="id",
        time_limit=180,
    ),
    _op("pause", m.ContainerRef, "POST", f"{_C}/<id>/pause", "Pause a container", target="id"),
    _op(
        "unpause", m.ContainerRef, "POST", f"{_C}/<id>/unpause", "Unpause a container", target="id"
    ),
    _op(
        "kill",
        m.ContainerKill,
        "POST",
        f"{_C}/<id>/kill",
        "Send a signal to a container",
        target="id",
    ),
    _op("remove", m.ContainerRemove, "DELETE", f"{_C}/<id>", "Remove a container", target="id"),
    _op("logs", m.ContainerLogs, "GET", f"{_C}/<id>/logs", "A container's output", target="id"),
    _op(
        "exec",
        m.ContainerExec,
        "POST",
        f"{_C}/<id>/exec",
        "Run a command in a running container; returns exit code and output",
        target="id",
        time_limit=300,
    ),
    _op(
        "diff",
        m.ContainerRef,
        "GET",
        f"{_C}/<id>/diff",
        "Filesystem changes of a container",
        target="id",
    ),
    _op(
        "commit",
        m.ContainerCommit,
        "POST",
        f"{_C}/<id>/commit",
        "Make an image of a container",
        target="id",
        creates=True,
        time_limit=300,
    ),
    _op("stats", m.ContainerRef, "GET", f"{_C}/<id>/stats", "One-shot resource usage", target="id"),
    _op(
        "rename", m.ContainerRename, "POST", f"{_C}/<id>/rename", "Rename a container", target="id"
    ),
    _op("port", m.ContainerRef, "GET", f"{_C}/<id>/port", "Published port mappings", target="id"),
]

NETWORK_OPERATIONS = [
    _op(
        "network_create",
        m.ContainerNetworkCreate,
        "POST",
        _N,
        "Create a user bridge network",
        creates=True,
        target="name",
    ),
    _op("network_list", m.LabelFilter, "GET", _N, "List the caller's networks"),
    _op(
        "network_inspect",
        m.ContainerNetworkRef,
        "GET",
        f"{_N}/<id>",
        "Inspect a network",
        target="id",
    ),
    _op(
        "network_connect",
        m.ContainerNetworkConnect,
        "POST",
        f"{_N}/<id>/connect",
        "Connect a container to a network (with aliases)",
        target="id",
    ),
    _op(
        "network_disconnect",
        m.ContainerNetworkDisconnect,
        "POST",
        f"{_N}/<id>/disconnect",
        "Disconnect a container from a network",
        target="id",
    ),
    _op(
        "network_remove",
        m.ContainerNetworkRef,
        "DELETE",
        f"{_N}/<id>",
        "Remove a network",
        target="id",
    ),
    _op(
        "network_prune", m.LabelFilter, "POST", f"{_N}/prune", "Remove the caller's unused networks"
    ),
]

VOLUME_OPERATIONS = [
    _op(
        "volume_create",
        m.ContainerVolumeCreate,
        "POST",
        _V,
        "Create a named volume",
        creates=True,
        target="name",
    ),
    _op("volume_list", m.LabelFilter, "GET", _V, "List the caller's volumes"),
    _op(
        "volume_inspect",
        m.ContainerVolumeRef,
        "GET",
        f"{_V}/<name>",
        "Inspect a volume",
        target="name",
    ),
    _op(
        "volume_remove",
        m.ContainerVolumeRemove,
        "DELETE",
        f"{_V}/<name>",
        "Remove a volume",
        target="name",
    ),
    _op(
        "volume_prune",
        m.LabelFilter,
        "POST",
        f"{_V}/prune",
        "Remove the caller's unused volumes",
        time_limit=120,
    ),
    _op(
        "volume_backup",
        m.ContainerVolumeRef,
        "POST",
        f"{_V}/<name>/backup",
        "Archive a volume's content as a tar (base64, size-limited)",
        target="name",
        time_limit=300,
    ),
    _op(
        "volume_restore",
        m.ContainerVolumeRestore,
        "POST",
        f"{_V}/<name>/restore",
        "Unpack a backup archive into a volume",
        target="name",
        time_limit=300,
        binary=("archive",),
    ),
]

IMAGE_OPERATIONS = [
    _op(
        "image_pull",
        m.ImagePull,
        "POST",
        f"{_I}/pull",
        "Pull an image (progress on the job)",
        creates=True,
        target="image",
        time_limit=900,
    ),
    _op("image_list", m.ImageList, "GET", _I, "List images (shared ones and the caller's)"),
    _op("image_inspect", m.ImageRefParams, "GET", f"{_I}/<id>", "Inspect an image", target="id"),
    _op(
        "image_history",
        m.ImageRefParams,
        "GET",
        f"{_I}/<id>/history",
        "An image's layers",
        target="id",
    ),
    _op("image_tag", m.ImageTagParams, "POST", f"{_I}/<id>/tag", "Tag an image", target="id"),
    _op(
        "image_remove",
        m.ImageRemove,
        "DELETE",
        f"{_I}/<id>",
        "Remove (untag) an image",
        target="id",
    ),
    _op(
        "image_build",
        m.ImageBuild,
        "POST",
        f"{_I}/build",
        "Build an image from a Dockerfile and context files in the request (progress on the job)",
        creates=True,
        target="tag",
        time_limit=900,
        binary=("files",),
    ),
    _op(
        "image_save",
        m.ImageSave,
        "POST",
        f"{_I}/<id>/save",
        "Export an image as a tar archive (base64, size-limited)",
        target="id",
        time_limit=300,
    ),
    _op(
        "image_load",
        m.ImageLoad,
        "POST",
        f"{_I}/load",
        "Import images from a tar archive",
        creates=True,
        time_limit=300,
        binary=("archive",),
    ),
    _op(
        "image_push",
        m.ImagePush,
        "POST",
        f"{_I}/<id>/push",
        "Push an image to a registry (progress on the job)",
        target="id",
        time_limit=900,
    ),
]

OPERATIONS = CONTAINER_OPERATIONS + NETWORK_OPERATIONS + VOLUME_OPERATIONS + IMAGE_OPERATIONS
