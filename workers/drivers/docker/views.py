"""JSON views of engine objects: what the driver returns, never raw engine payloads."""

from __future__ import annotations

from typing import Any

from docker.models.containers import Container
from docker.models.images import Image
from docker.models.networks import Network
from docker.models.volumes import Volume

from workers.drivers.names import user_name

_DIFF_KINDS = {0: "changed", 1: "added", 2: "deleted"}
_TENANT = "nube.tenant"


def shown(name: str, labels: dict[str, str] | None) -> str:
    """The user's name of a resource the engine calls ``name`` (its owner from its labels)."""
    return user_name(name, (labels or {}).get(_TENANT))


def ports(raw: dict[str, Any] | None) -> list[dict[str, Any]]:
    """``{"80/tcp": [{"HostIp", "HostPort"}]}`` as a flat list of mappings."""
    out = []
    for key, bindings in sorted((raw or {}).items()):
        port, _, proto = key.partition("/")
        for binding in bindings or []:
            out.append(
                {
                    "container_port": int(port),
                    "protocol": proto or "tcp",
                    "host_ip": binding.get("HostIp", ""),
                    "host_port": int(binding.get("HostPort") or 0),
                }
            )
    return out


def container_entry(raw: dict[str, Any]) -> dict[str, Any]:
    """A list entry from the engine's list payload (one call, no per-container inspect)."""
    mapped = [
        {
            "container_port": p.get("PrivatePort"),
            "protocol": p.get("Type", "tcp"),
            "host_ip": p.get("IP", ""),
            "host_port": p.get("PublicPort", 0),
        }
        for p in raw.get("Ports") or []
        if p.get("PublicPort")
    ]
    labels = raw.get("Labels") or {}
    return {
        "id": raw.get("Id"),
        "name": shown((raw.get("Names") or ["/"])[0].lstrip("/"), labels),
        "image": raw.get("Image"),
        "state": raw.get("State"),
        "status": raw.get("Status"),
        "created": raw.get("Created"),
        "labels": labels,
        "ports": mapped,
    }


def container_summary(container: Container) -> dict[str, Any]:
    """A list entry."""
    attrs = container.attrs
    return {
        "id": container.id,
        "name": shown(container.name, container.labels),
        "image": attrs.get("Config", {}).get("Image") or attrs.get("Image"),
        "state": container.status,
        "created": attrs.get("Created"),
        "labels": container.labels,
        "ports": ports(attrs.get("NetworkSettings", {}).get("Ports")),
    }


def container_view(container: Container) -> dict[str, Any]:
    """``docker inspect``, curated; environment values are left out (names only)."""
    attrs = container.attrs
    config, host = attrs.get("Config", {}), attrs.get("HostConfig", {})
    labels = container.labels  # its networks and volumes are its tenant's: the same prefix
    return container_summary(container) | {
        "state_detail": _state(attrs.get("State", {})),
        "config": _config(config),
        "host_config": _host_config(host, labels),
        "networks": _networks(attrs.get("NetworkSettings", {}).get("Networks"), labels),
        "mounts": [_mount(m, labels) for m in attrs.get("Mounts") or []],
    }


def _state(state: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": state.get("Status"),
        "running": state.get("Running"),
        "paused": state.get("Paused"),
        "restarting": state.get("Restarting"),
        "exit_code": state.get("ExitCode"),
        "oom_killed": state.get("OOMKilled"),
        "started_at": state.get("StartedAt"),
        "finished_at": state.get("FinishedAt"),
        "error": state.get("Error") or None,
    }


def _config(config: dict[str, Any]) -> dict[str, Any]:
    env = [item.partition("=")[0] for item in config.get("Env") or []]
    return {
        "cmd": config.get("Cmd"),
        "entrypoint": config.get("Entrypoint"),
        "working_dir": config.get("WorkingDir"),
        "user": config.get("User"),
        "env_names": env,
        "hostname": config.get("Hostname"),
    }


def _host_config(host: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
    policy = host.get("RestartPolicy") or {}
    return {
        "memory": host.get("Memory") or None,
        "nano_cpus": host.get("NanoCpus") or None,
        "pids_limit": host.get("PidsLimit") or None,
        "auto_remove": host.get("AutoRemove"),
        "restart_policy": policy.get("Name") or "no",
        "restart_max_retries": policy.get("MaximumRetryCount", 0),
        "network_mode": shown(host.get("NetworkMode") or "", labels) or None,
    }


def _networks(raw: dict[str, Any] | None, labels: dict[str, str]) -> dict[str, Any]:
    return {
        shown(name, labels): {
            "ipv4": net.get("IPAddress"),
            "aliases": net.get("Aliases") or [],
            "network_id": net.get("NetworkID"),
        }
        for name, net in (raw or {}).items()
    }


def _mount(mount: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
    name = mount.get("Name")
    return {
        "type": mount.get("Type"),
        "volume": shown(name, labels) if name else name,
        "target": mount.get("Destination"),
        "read_only": not mount.get("RW", True),
    }


def diff(changes: list[dict[str, Any]] | None) -> dict[str, Any]:
    """``docker diff`` with readable kinds."""
    return {
        "changes": [
            {"path": c["Path"], "kind": _DIFF_KINDS.get(c["Kind"], "changed")}
            for c in changes or []
        ]
    }


def network_view(network: Network) -> dict[str, Any]:
    """``docker network inspect``, curated."""
    attrs = network.attrs
    ipam = (attrs.get("IPAM") or {}).get("Config") or []
    labels = attrs.get("Labels") or {}  # its containers are its tenant's: the same prefix
    return {
        "id": network.id,
        "name": shown(network.name or "", labels),
        "driver": attrs.get("Driver"),
        "internal": attrs.get("Internal", False),
        "created": attrs.get("Created"),
        "labels": labels,
        "subnets": [{"subnet": c.get("Subnet"), "gateway": c.get("Gateway")} for c in ipam],
        "containers": {
            cid: {"name": shown(c.get("Name") or "", labels), "ipv4": c.get("IPv4Address")}
            for cid, c in (attrs.get("Containers") or {}).items()
        },
    }


def volume_view(volume: Volume) -> dict[str, Any]:
    """``docker volume inspect``, curated."""
    attrs = volume.attrs
    labels = attrs.get("Labels") or {}
    return {
        "name": shown(volume.name or "", labels),
        "driver": attrs.get("Driver"),
        "created": attrs.get("CreatedAt"),
        "labels": labels,
        "mountpoint": attrs.get("Mountpoint"),
    }


def image_summary(image: Image) -> dict[str, Any]:
    """A list entry."""
    attrs = image.attrs
    return {
        "id": image.id,
        "tags": image.tags,
        "size": attrs.get("Size"),
        "created": attrs.get("Created"),
        "labels": image.labels,
    }


def image_view(image: Image) -> dict[str, Any]:
    """``docker image inspect``, curated."""
    attrs, config = image.attrs, image.attrs.get("Config") or {}
    return image_summary(image) | {
        "digests": attrs.get("RepoDigests") or [],
        "author": attrs.get("Author") or None,
        "comment": attrs.get("Comment") or None,
        "architecture": attrs.get("Architecture"),
        "os": attrs.get("Os"),
        "config": {
            "cmd": config.get("Cmd"),
            "entrypoint": config.get("Entrypoint"),
            "working_dir": config.get("WorkingDir"),
            "user": config.get("User"),
            "exposed_ports": sorted(config.get("ExposedPorts") or {}),
        },
    }


def history(layers: list[dict[str, Any]]) -> dict[str, Any]:
    """``docker history``, newest layer first."""
    return {
        "layers": [
            {
                "id": layer.get("Id"),
                "created": layer.get("Created"),
                "created_by": layer.get("CreatedBy"),
                "size": layer.get("Size"),
                "comment": layer.get("Comment"),
                "tags": layer.get("Tags") or [],
            }
            for layer in layers
        ]
    }
