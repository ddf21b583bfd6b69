"""Turn a :class:`ContainerSpec` into docker-py create arguments.

Only what the param model offers reaches the engine: no privileged mode, host namespaces,
capabilities, devices or host bind mounts can be expressed here.
"""

from __future__ import annotations

from typing import Any

from docker.types import Mount

from nube.catalog.containers import ContainerSpec, PortMapping

#: What the agent's policy may add to a create (docker-py argument names).
HARDENING_KEYS = frozenset({"cap_drop", "security_opt", "pids_limit", "mem_limit", "nano_cpus"})


def create_kwargs(
    spec: ContainerSpec, labels: dict[str, str], hardening: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Keyword arguments for ``client.containers.create`` (network handled separately).

    ``hardening`` (from the agent's policy: ``cap_drop``, ``security_opt`` and default limits)
    fills what the request left unset; it never loosens what the request asked.
    """
    kwargs: dict[str, Any] = {
        "image": spec.image,
        "command": spec.command,
        "entrypoint": spec.entrypoint,
        "name": spec.name,
        "environment": dict(spec.env),
        "labels": labels,
        "working_dir": spec.working_dir,
        "user": spec.user,
        "ports": port_bindings(spec.ports),
        "mounts": mounts(spec),
        "tmpfs": {path: "" for path in spec.tmpfs} or None,
        "auto_remove": spec.auto_remove,
        "detach": True,
    }
    given = {k: v for k, v in (kwargs | _limits(spec)).items() if v is not None}
    extra = {k: v for k, v in (hardening or {}).items() if k in HARDENING_KEYS}
    return extra | given


def _limits(spec: ContainerSpec) -> dict[str, Any]:
    policy = {"Name": "" if spec.restart_policy == "no" else spec.restart_policy}
    if spec.restart_policy == "on-failure":
        policy["MaximumRetryCount"] = spec.restart_max_retries  # type: ignore[assignment]
    return {
        "mem_limit": spec.memory,
        "nano_cpus": int(spec.cpus * 1e9) if spec.cpus else None,
        "pids_limit": spec.pids_limit,
        "restart_policy": policy,
    }


def port_bindings(mappings: list[PortMapping]) -> dict[str, list[tuple[str, int | None]]]:
    """``{"80/tcp": [(host_ip, host_port or None)]}``; None lets the engine pick a port."""
    out: dict[str, list[tuple[str, int | None]]] = {}
    for m in mappings:
        out.setdefault(f"{m.container_port}/{m.protocol}", []).append((m.host_ip, m.host_port))
    return out


def mounts(spec: ContainerSpec) -> list[Mount]:
    """Named volume mounts only."""
    return [
        Mount(target=v.target, source=v.volume, type="volume", read_only=v.read_only)
        for v in spec.volumes
    ]
