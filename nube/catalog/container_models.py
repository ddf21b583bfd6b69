"""Parameter models of the container service (containers, images, networks, volumes).

Each state change has a model of its own, so every action has its own parameter schema. Network
and volume models are named ``ContainerNetwork*`` and ``ContainerVolume*``, as their collections
are (``/v1/container-networks``, ``/v1/container-volumes``): the VM service has networks and
volumes too, and the OpenAPI document names its schemas after the classes.

The create options are explicit on purpose: there is no privileged mode, host network, added
capability, device or host bind mount in any model; storage is named volumes and tmpfs only.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from typing import Any, Literal

from pydantic import Field, TypeAdapter, field_validator, model_validator

from nube.catalog import PAYLOAD_LIMIT, Params
from nube.catalog.validators import (
    BASE64_PATTERN,
    ContainerPath,
    ContainerUser,
    DockerName,
    EnvName,
    ImageKey,
    ImageRef,
    ImageTag,
    LabelKey,
    MemoryBytes,
    Port,
    RegistryAddress,
    RelativePath,
    RepositoryName,
    ResourceId,
    Signal,
)

#: Largest binary payload (build context, image archive, volume backup) in bytes, decoded.
ARCHIVE_LIMIT = PAYLOAD_LIMIT
_B64_LIMIT = (ARCHIVE_LIMIT + 2) // 3 * 4

#: Largest output (logs, run/exec output) returned in a result, in bytes; the rest is cut.
OUTPUT_LIMIT = 1024 * 1024

Base64Archive = Field(
    pattern=BASE64_PATTERN,
    max_length=_B64_LIMIT,
    min_length=4,
    description="A tar archive as base64, at most 16 MiB decoded",
    json_schema_extra={"contentEncoding": "base64", "contentMediaType": "application/x-tar"},
)

_PORT_RE = re.compile(
    r"^(?:(?P<ip>[0-9]{1,3}(?:\.[0-9]{1,3}){3}):)?(?:(?P<host>[0-9]*):)?(?P<container>[0-9]+)(?:/(?P<proto>tcp|udp))?$"
)
_LABEL_FILTER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_./-]{0,127}(=[^\x00-\x1f]{0,256})?")
_IMAGE_REF: TypeAdapter[str] = TypeAdapter(ImageRef)

ContainerStatus = Literal[
    "created", "restarting", "running", "removing", "paused", "exited", "dead"
]
_VOLUME_RE = re.compile(r"^(?P<volume>[^:]+):(?P<target>/[^:]*)(?::(?P<mode>ro|rw))?$")


# --- create options ------------------------------------------------------------------------------


class PortMapping(Params):
    """A published port. Short form: ``[ip:][host:]container[/proto]``; no host port = random."""

    container_port: Port
    protocol: Literal["tcp", "udp"] = "tcp"
    host_port: Port | None = Field(default=None, description="None picks a free port")
    host_ip: str = Field(default="0.0.0.0", description="Host address to bind (IPv4)")

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        match = _PORT_RE.match(value)
        if not match:
            raise ValueError("expected [ip:][host:]container[/tcp|udp], e.g. 8080:80/tcp")
        parts = {
            "container_port": match["container"],
            "protocol": match["proto"] or "tcp",
            "host_port": match["host"] or None,
        }
        return parts | ({"host_ip": match["ip"]} if match["ip"] else {})

    @field_validator("host_ip")
    @classmethod
    def _ipv4(cls, value: str) -> str:
        return str(ipaddress.IPv4Address(value))


class VolumeMount(Params):
    """A named volume mounted in the container. Short form: ``volume:/path[:ro]``.

    A volume that does not exist yet is created, labelled with the tenant; another tenant's
    volume is ``not_found``. Host paths cannot be mounted.
    """

    volume: DockerName
    target: ContainerPath
    read_only: bool = False

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        match = _VOLUME_RE.match(value)
        if not match:
            raise ValueError("expected volume:/path[:ro|rw], e.g. data:/data")
        return {
            "volume": match["volume"],
            "target": match["target"],
            "read_only": match["mode"] == "ro",
        }


class ContainerSpec(Params):
    """What a container is made of (``docker create`` options nube offers)."""

    image: ImageRef = Field(description="Image reference, e.g. `busybox:latest`")
    command: list[str] | None = Field(
        default=None, max_length=256, description="Command and arguments (exec form)"
    )
    entrypoint: list[str] | None = Field(default=None, max_length=64)
    name: DockerName | None = Field(default=None, description="Container name (unique per tenant)")
    env: dict[EnvName, str] = Field(
        default_factory=dict, description="Environment variables (values are never logged)"
    )
    labels: dict[LabelKey, str] = Field(default_factory=dict, description="`nube.*` is reserved")
    working_dir: ContainerPath | None = None
    user: ContainerUser | None = None
    ports: list[PortMapping] = Field(default_factory=list, max_length=64)
    volumes: list[VolumeMount] = Field(default_factory=list, max_length=32)
    tmpfs: list[ContainerPath] = Field(default_factory=list, max_length=16)
    network: DockerName | None = Field(
        default=None, description="A network of the caller, or `bridge` / `none`"
    )
    network_aliases: list[DockerName] = Field(default_factory=list, max_length=16)
    restart_policy: Literal["no", "on-failure", "always", "unless-stopped"] = "no"
    restart_max_retries: int = Field(default=0, ge=0, le=100, description="For on-failure")
    memory: MemoryBytes | None = Field(default=None, description="Bytes, or `64m`, `1g`")
    cpus: float | None = Field(default=None, gt=0, le=64)
    pids_limit: int | None = Field(default=None, ge=1, le=65536)
    auto_remove: bool = False

    @field_validator("network")
    @classmethod
    def _no_host_network(cls, value: str | None) -> str | None:
        if value == "host" or (value or "").startswith("container:"):
            raise ValueError("host and container network modes are not offered")
        return value


class ContainerRun(ContainerSpec):
    """Create and start a container. By default wait for it to exit and return its output."""

    detach: bool = Field(default=False, description="Return once started instead of waiting")
    wait_timeout: int = Field(default=240, ge=1, le=280, description="Seconds to wait for exit")


class ContainerCreate(ContainerSpec):
    """Create a container without starting it."""


# --- acting on one container ---------------------------------------------------------------------


class ContainerRef(Params):
    """Names one container by id or name."""

    id: ResourceId


class ContainerStop(ContainerRef):
    timeout: int = Field(default=10, ge=0, le=120, description="Seconds before SIGKILL")


class ContainerKill(ContainerRef):
    signal: Signal = Field(default="SIGKILL", description="Name (`SIGTERM`, `HUP`) or number")


class ContainerRemove(ContainerRef):
    force: bool = Field(default=False, description="Kill it first if running")
    volumes: bool = Field(default=False, description="Also remove its anonymous volumes")


class LabelFilter(Params):
    """Filters by label; only the caller's resources are ever listed."""

    label: list[str] = Field(
        default_factory=list, max_length=16, description="`key` or `key=value` filters"
    )

    @field_validator("label", mode="before")
    @classmethod
    def _one_label(cls, value: Any) -> Any:
        # A query string with one ``label=`` arrives as a plain string.
        return [value] if isinstance(value, str) else value

    @field_validator("label")
    @classmethod
    def _labels(cls, values: list[str]) -> list[str]:
        for value in values:
            if not _LABEL_FILTER_RE.fullmatch(value):
                raise ValueError(f"bad label filter {value!r}; expected key or key=value")
        return values


class ContainerList(LabelFilter):
    """List the caller's containers."""

    all: bool = Field(default=True, description="Include stopped containers")
    status: ContainerStatus | None = None
    name: DockerName | None = Field(default=None, description="Names containing this")


class ContainerLogs(ContainerRef):
    tail: int | None = Field(default=None, ge=0, le=100000, description="Last N lines")
    since: datetime | None = Field(default=None, description="RFC 3339 time or Unix seconds")
    timestamps: bool = False


class ContainerExec(ContainerRef):
    command: list[str] = Field(min_length=1, max_length=256)
    env: dict[EnvName, str] = Field(default_factory=dict)
    workdir: ContainerPath | None = None
    user: ContainerUser | None = None


class ContainerCommit(ContainerRef):
    repository: RepositoryName
    tag: ImageTag = "latest"
    author: str | None = Field(default=None, max_length=256)
    message: str | None = Field(default=None, max_length=4096)
    pause: bool = True


class ContainerRename(ContainerRef):
    name: DockerName


# --- networks ------------------------------------------------------------------------------------


class ContainerNetworkCreate(Params):
    """A user bridge network; containers on it reach each other by name."""

    name: DockerName
    subnet: ipaddress.IPv4Network | None = Field(default=None, description="e.g. 10.89.0.0/24")
    gateway: ipaddress.IPv4Address | None = None
    internal: bool = Field(default=False, description="No route outside the network")
    labels: dict[LabelKey, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _not_predefined(cls, value: str) -> str:
        if value in {"bridge", "host", "none"}:
            raise ValueError("bridge, host and none are predefined networks")
        return value

    @model_validator(mode="after")
    def _gateway_in_subnet(self) -> ContainerNetworkCreate:
        if self.gateway and (not self.subnet or self.gateway not in self.subnet):
            raise ValueError("gateway must lie inside subnet")
        return self


class ContainerNetworkRef(Params):
    id: ResourceId


class ContainerNetworkConnect(ContainerNetworkRef):
    container: ResourceId
    aliases: list[DockerName] = Field(default_factory=list, max_length=16)


class ContainerNetworkDisconnect(ContainerNetworkRef):
    container: ResourceId
    force: bool = False


# --- volumes -------------------------------------------------------------------------------------


class ContainerVolumeCreate(Params):
    name: DockerName | None = Field(default=None, description="None lets the engine pick one")
    labels: dict[LabelKey, str] = Field(default_factory=dict)


class ContainerVolumeRef(Params):
    name: DockerName


class ContainerVolumeRemove(ContainerVolumeRef):
    force: bool = False


class ContainerVolumeRestore(ContainerVolumeRef):
    """Unpack a tar archive (as made by backup) into a volume; a missing volume is created."""

    archive: str = Base64Archive


# --- images --------------------------------------------------------------------------------------


class ImagePull(Params):
    image: ImageRef = Field(description="`[registry/]name[:tag]`; no tag means `latest`")


class ImageList(Params):
    name: RepositoryName | None = Field(default=None, description="Only this repository")
    all: bool = False


class ImageRefParams(Params):
    id: ImageKey = Field(description="Image id or `name[:tag]`")


class ImageTagParams(ImageRefParams):
    repository: str = Field(description="`[registry[:port]/]name`, without tag", max_length=255)
    tag: ImageTag = "latest"

    @field_validator("repository")
    @classmethod
    def _reference(cls, value: str) -> str:
        if "@" in value or ":" in value.rsplit("/", 1)[-1]:
            raise ValueError("repository takes no tag or digest; use the tag field")
        return _IMAGE_REF.validate_python(value)


class ImageRemove(ImageRefParams):
    force: bool = False
    noprune: bool = False


class ImageBuild(Params):
    """Build from a Dockerfile and context files sent in the request (size-limited)."""

    dockerfile: str = Field(min_length=1, max_length=1024 * 1024)
    files: dict[RelativePath, str] = Field(
        default_factory=dict, max_length=1000, description="Context files: path → base64"
    )
    tag: str | None = Field(default=None, description="`name[:tag]` for the result")
    build_args: dict[EnvName, str] = Field(default_factory=dict)
    labels: dict[LabelKey, str] = Field(default_factory=dict)
    pull: bool = Field(default=False, description="Pull newer base images")
    nocache: bool = False

    @field_validator("tag")
    @classmethod
    def _tag(cls, value: str | None) -> str | None:
        return None if value is None else _IMAGE_REF.validate_python(value)

    @field_validator("files")
    @classmethod
    def _files(cls, files: dict[str, str]) -> dict[str, str]:
        total = 0
        for path, data in files.items():
            if not re.fullmatch(BASE64_PATTERN, data):
                raise ValueError(f"file {path!r} is not base64")
            total += len(data) * 3 // 4
        if total > ARCHIVE_LIMIT:
            raise ValueError(f"the context is larger than {ARCHIVE_LIMIT} bytes")
        return files


class ImageSave(ImageRefParams):
    """Export an image as a ``docker save`` tar archive (base64, size-limited)."""


class ImageLoad(Params):
    archive: str = Base64Archive


class ImagePush(ImageRefParams):
    """Tag the image as ``registry/repository:tag`` and push it there."""

    registry: RegistryAddress = Field(description="`host[:port]`, e.g. `127.0.0.1:5000`")
    repository: RepositoryName
    tag: ImageTag = "latest"
