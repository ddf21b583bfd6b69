"""JSON views of the fake engine's objects, in the shapes the Docker driver returns."""

from __future__ import annotations

from typing import Any

from workers.drivers.fake.container_store import (
    TENANT,
    FakeContainer,
    FakeImage,
    FakeNetwork,
    FakeVolume,
)
from workers.drivers.names import user_name


def shown(name: str, labels: dict[str, str]) -> str:
    """The user's name of what the engine calls ``name`` (its owner from its labels)."""
    return user_name(name, labels.get(TENANT))


_STATUS_TEXT = {
    "created": "Created",
    "running": "Up Less than a second",
    "paused": "Up Less than a second (Paused)",
}


def container_entry(c: FakeContainer) -> dict[str, Any]:
    """A list entry (the engine's list payload: ``created`` is Unix time there)."""
    exited = f"Exited ({c.exit_code}) Less than a second ago"
    return {
        "id": c.id,
        "name": shown(c.name, c.labels),
        "image": c.spec.image,
        "state": c.status,
        "status": _STATUS_TEXT.get(c.status, exited),
        "created": c.created_unix,
        "labels": dict(c.labels),
        "ports": [dict(p) for p in c.ports],
    }


def container_view(c: FakeContainer, image: FakeImage | None) -> dict[str, Any]:
    """``docker inspect``, curated; environment values are left out (names only)."""
    config = image.config if image else {}
    host = {k: v for k, v in c.host_config.items() if k in _HOST_CONFIG_KEYS}
    host["network_mode"] = shown(host["network_mode"], c.labels)
    return {
        "id": c.id,
        "name": shown(c.name, c.labels),
        "image": c.spec.image,
        "state": c.status,
        "created": c.created,
        "labels": dict(c.labels),
        "ports": [dict(p) for p in c.ports],
        "state_detail": {
            "status": c.status,
            "running": c.live,
            "paused": c.status == "paused",
            "restarting": False,
            "exit_code": c.exit_code,
            "oom_killed": False,
            "started_at": c.started_at,
            "finished_at": c.finished_at,
            "error": None,
        },
        "config": {
            "cmd": c.spec.command or (None if c.spec.entrypoint else config.get("Cmd")),
            "entrypoint": c.spec.entrypoint or config.get("Entrypoint"),
            "working_dir": c.spec.working_dir or config.get("WorkingDir") or "",
            "user": c.spec.user or config.get("User") or "",
            "env_names": list(c.env),
            "hostname": c.id[:12],
        },
        "host_config": host,
        "networks": {
            shown(name, c.labels): {
                "ipv4": ep.ipv4,
                "aliases": list(ep.aliases),
                "network_id": ep.network_id,
            }
            for name, ep in c.endpoints.items()
        },
        "mounts": [
            {
                "type": "volume",
                "volume": shown(m.volume, c.labels),
                "target": m.target,
                "read_only": m.read_only,
            }
            for m in c.spec.volumes
        ],
    }


_HOST_CONFIG_KEYS = (
    "memory",
    "nano_cpus",
    "pids_limit",
    "auto_remove",
    "restart_policy",
    "restart_max_retries",
    "network_mode",
)


def state(c: FakeContainer, removed: bool = False) -> dict[str, Any]:
    """``{"id", "name", "state", "exit_code"}`` after an action."""
    name = shown(c.name, c.labels)
    if removed:  # auto_remove took it away once it stopped
        return {"id": c.id, "name": name, "state": "removed", "exit_code": None}
    return {"id": c.id, "name": name, "state": c.status, "exit_code": c.exit_code}


def network_view(net: FakeNetwork, members: list[FakeContainer]) -> dict[str, Any]:
    """``docker network inspect``, curated; ``members`` are the running containers on it."""
    prefix = net.subnet.prefixlen
    return {
        "id": net.id,
        "name": shown(net.name, net.labels),
        "driver": "bridge",
        "internal": net.internal,
        "created": net.created,
        "labels": dict(net.labels),
        "subnets": [{"subnet": str(net.subnet), "gateway": str(net.gateway)}],
        "containers": {
            c.id: {
                "name": shown(c.name, c.labels),
                "ipv4": f"{c.endpoints[net.name].ipv4}/{prefix}",
            }
            for c in members
        },
    }


def volume_view(volume: FakeVolume) -> dict[str, Any]:
    """``docker volume inspect``, curated."""
    return {
        "name": shown(volume.name, volume.labels),
        "driver": "local",
        "created": volume.created,
        "labels": dict(volume.labels),
        "mountpoint": f"/var/lib/docker/volumes/{volume.name}/_data",
    }


def image_summary(image: FakeImage) -> dict[str, Any]:
    """A list entry."""
    return {
        "id": image.id,
        "tags": list(image.tags),
        "size": image.size,
        "created": image.created,
        "labels": dict(image.labels),
    }


def image_view(image: FakeImage) -> dict[str, Any]:
    """``docker image inspect``, curated."""
    config = image.config
    return image_summary(image) | {
        "digests": list(image.digests),
        "author": image.author or None,
        "comment": image.comment or None,
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "cmd": config.get("Cmd"),
            "entrypoint": config.get("Entrypoint"),
            "working_dir": config.get("WorkingDir") or "",
            "user": config.get("User") or "",
            "exposed_ports": sorted(config.get("ExposedPorts") or {}),
        },
    }


def history(image: FakeImage) -> dict[str, Any]:
    """``docker history``, newest layer first; only the top layer carries the id and tags."""
    layers = list(reversed(image.history))
    return {
        "layers": [
            {
                "id": image.id if i == 0 else "<missing>",
                "created": layer.get("created"),
                "created_by": layer.get("created_by", ""),
                "size": layer.get("size", 0),
                "comment": layer.get("comment", ""),
                "tags": list(image.tags) if i == 0 else [],
            }
            for i, layer in enumerate(layers)
        ]
    }
