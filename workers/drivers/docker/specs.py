"""Turn a :class:`ContainerSpec` into docker-py create arguments.

Only what the param model offers reaches the engine: no privileged mode, host namespaces,
capabilities, devices or host bind mounts can be expressed here.
"""

from __future__ import annotations

from typing import Any

from docker.types import Mount

from nube.catalog.container_models import ContainerSpec, PortMapping
from nube.wire import Hardening


def hardening_kwargs(hardening: Hardening) -> dict[str, Any]:
    """The policy's :class:`~nube.wire.Hardening` as docker-py ``containers.create`` arguments
    (the one place it meets Docker's names)."""
    kwargs: dict[str, Any] = {}
    if hardening.drop_all_capabilities:
        kwargs["cap_drop"] = ["ALL"]
    if hardening.no_new_privileges:
        kwargs["security_opt"] = ["no-new-privileges:true"]
    if hardening.memory is not None:
        kwargs["mem_limit"] = hardening.memory
    if hardening.cpus is not None:
        kwargs["nano_cpus"] = int(hardening.cpus * 1e9)
    if hardening.pids_limit is not None:
        kwargs["pids_limit"] = hardening.pids_limit
    return kwargs


def create_kwargs(
    spec: ContainerSpec, labels: dict[str, str], hardening: Hardening | None = None
) -> dict[str, Any]:
    """Keyword arguments for ``client.containers.create`` (network handled separately).

    ``hardening`` (from the agent's policy: no capabilities, no new privileges, default limits)
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
    return hardening_kwargs(hardening or Hardening()) | given


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
