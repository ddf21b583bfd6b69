"""Per-tenant policy: what a tenant may run, checked by the agent before routing.

The policy file (YAML or JSON) has a ``default`` section and optional per-tenant sections that
override it key by key (deep merge). It is validated at load (:func:`load_policy`); unknown
keys are errors. :meth:`Policy.check` returns a :class:`Decision` naming the first rule that
denies, or, for allowed container creates, the :class:`~nube.wire.Hardening` to apply (drop every
capability, no new privileges, default limits): backend-neutral, the Docker driver maps it to
docker-py's options.

Rules deny raw Docker options even though the catalog does not offer them (``privileged``,
``network_mode=host``, ``cap_add``, ``devices``, host bind mounts, the Docker socket...), so a
message that did not come through the API's models is still refused.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from nube.catalog import CATALOG
from nube.errors import PolicyDenied, PolicyInvalid
from nube.wire import Hardening

Counts = Callable[[str, str], int]
"""``counts(tenant, kind)`` → how many ``containers`` / ``vms`` the tenant has now."""

#: The operations that make one more container or VM: the count caps limit them, and allowed
#: container creates get the hardening defaults.
CONTAINER_CREATES = CATALOG.creating("containers")
VM_CREATES = CATALOG.creating("vms")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(value: int | float | str) -> int:
    """Bytes from an int or a Docker-style size (``512m``, ``1g``, ``64MiB``)."""
    if isinstance(value, (int, float)):
        return int(value)
    match = _SIZE.match(value)
    if not match:
        raise ValueError(f"not a size: {value!r}")
    return int(float(match[1]) * _UNITS[match[2].lower()])


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ContainerDefaults(_Model):
    """Hardening applied to every allowed container unless the policy turns it off."""

    cap_drop_all: bool = True
    no_new_privileges: bool = True
    memory: int | None = Field(default=None, description="Bytes when the request gives none")
    pids_limit: int | None = Field(default=256, ge=1)

    @field_validator("memory", mode="before")
    @classmethod
    def _size(cls, v: Any) -> Any:
        return None if v is None else parse_size(v)


class ContainerRules(_Model):
    images: list[str] = Field(default_factory=lambda: ["*"], description="fnmatch patterns")
    allow_privileged: bool = False
    allow_host_network: bool = False
    allow_host_pid: bool = False
    allow_host_ipc: bool = False
    allow_host_mounts: bool = False
    allow_docker_socket: bool = False
    allow_devices: bool = False
    allow_cap_add: list[str] = Field(default_factory=list, description="Capabilities allowed")
    max_memory: int | None = Field(default=None, ge=1, description="Bytes (or `512m`)")
    max_cpus: float | None = Field(default=None, gt=0)
    max_pids: int | None = Field(default=None, ge=1)
    max_containers: int | None = Field(default=None, ge=0)
    defaults: ContainerDefaults = Field(default_factory=ContainerDefaults)

    @field_validator("max_memory", mode="before")
    @classmethod
    def _size(cls, v: Any) -> Any:
        return None if v is None else parse_size(v)


class VmRules(_Model):
    max_vcpus: int | None = Field(default=None, ge=1)
    max_memory_mib: int | None = Field(default=None, ge=1)
    max_disk_mib: int | None = Field(default=None, ge=1, description="Sum of new disks")
    max_vms: int | None = Field(default=None, ge=0)


class TenantPolicy(_Model):
    containers: ContainerRules = Field(default_factory=ContainerRules)
    vms: VmRules = Field(default_factory=VmRules)


class PolicyFile(_Model):
    version: int = Field(default=1, ge=1, le=1)
    admin_bypass: bool = Field(default=True, description="Admin tokens skip every rule")
    default: dict[str, Any] = Field(default_factory=dict)
    tenants: dict[str, dict[str, Any]] = Field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """The outcome of a check: ``rule`` names the denying rule (or ``admin_bypass``)."""

    allowed: bool
    rule: str | None = None
    reason: str = ""
    hardening: Hardening = field(default_factory=Hardening)
    """What an allowed container create must get (nothing for every other operation)."""

    def raise_if_denied(self) -> None:
        """Raise ``PolicyDenied`` (code ``policy_denied``) naming the rule."""
        if not self.allowed:
            raise PolicyDenied(rule=self.rule, reason=self.reason)


def _deny(rule: str, reason: str) -> Decision:
    return Decision(False, rule, reason)


def _invalid(e: ValidationError, prefix: tuple[str, ...], source: str) -> PolicyInvalid:
    err = e.errors()[0]
    where = ".".join(str(p) for p in (*prefix, *err["loc"])) or "top level"
    return PolicyInvalid(path=source, why=f"{where}: {err['msg']}")


def _validated(data: dict[str, Any], prefix: tuple[str, ...], source: str) -> TenantPolicy:
    try:
        return TenantPolicy.model_validate(data)
    except ValidationError as e:
        raise _invalid(e, prefix, source) from None


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


class Policy:
    """A validated policy: the default rules and each tenant's (merged over the default)."""

    def __init__(self, spec: PolicyFile, source: str = "<policy>") -> None:
        self.admin_bypass = spec.admin_bypass
        self.default = _validated(spec.default, ("default",), source)
        self.tenants = {
            name: _validated(_merge(spec.default, over), ("tenants", name), source)
            for name, over in spec.tenants.items()
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "<policy>") -> Policy:
        """Validate ``data``; ``PolicyInvalid`` names the first bad key and why."""
        try:
            spec = PolicyFile.model_validate(data if data is not None else {})
        except ValidationError as e:
            raise _invalid(e, (), source) from None
        return cls(spec, source)

    def rules_for(self, tenant: str) -> TenantPolicy:
        return self.tenants.get(tenant, self.default)

    def check(
        self,
        operation: str,
        params: dict[str, Any],
        tenant: str,
        admin: bool = False,
        counts: Counts | None = None,
    ) -> Decision:
        """Decide whether ``tenant`` may run ``operation`` with ``params``.

        Guarantee: a denied decision names exactly one rule; an allowed container create
        carries the :class:`~nube.wire.Hardening` the tenant's ``defaults`` and limits require.
        """
        rules = self.rules_for(tenant)
        service = operation.split(".", 1)[0]
        if admin and self.admin_bypass:
            decision = Decision(True, "admin_bypass", "admin token")
        elif service == "containers":
            decision = _check_container(rules.containers, operation, params, tenant, counts)
        elif service == "vms":
            decision = _check_vm(rules.vms, operation, params, tenant, counts)
        else:
            decision = Decision(True)
        if decision.allowed and operation in CONTAINER_CREATES:
            return Decision(
                True, decision.rule, decision.reason, _container_hardening(rules.containers, params)
            )
        return decision


def load_policy(path: str | Path) -> Policy:
    """Read and validate a YAML or JSON policy file (start-up; raises ``PolicyInvalid``)."""
    path = Path(path)
    try:
        text = path.read_text()
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except OSError as e:
        raise PolicyInvalid(path=str(path), why=e.strerror or str(e)) from e
    except (ValueError, yaml.YAMLError) as e:
        raise PolicyInvalid(path=str(path), why=f"not valid YAML/JSON: {e}") from e
    return Policy.from_dict(data, str(path))


# --- containers --------------------------------------------------------------------------------

_NAMESPACES = (
    ("host_network", "allow_host_network", ("network_mode", "network")),
    ("host_pid", "allow_host_pid", ("pid_mode",)),
    ("host_ipc", "allow_host_ipc", ("ipc_mode",)),
    ("host_uts", None, ("uts_mode",)),
    ("host_userns", None, ("userns_mode",)),
    ("host_cgroupns", None, ("cgroupns", "cgroupns_mode")),
)


def _check_container(
    rules: ContainerRules, op: str, params: dict[str, Any], tenant: str, counts: Counts | None
) -> Decision:
    checks: Iterable[Callable[[], Decision | None]] = (
        lambda: _check_flags(rules, params),
        lambda: _check_mounts(rules, params),
        lambda: _check_image(rules, params),
        lambda: _check_limits(rules, params),
        lambda: _check_count(
            op in CONTAINER_CREATES,
            rules.max_containers,
            "max_containers",
            "containers",
            tenant,
            counts,
        ),
    )
    for check in checks:
        denied = check()
        if denied is not None:
            return denied
    return Decision(True)


def _check_flags(rules: ContainerRules, p: dict[str, Any]) -> Decision | None:
    if p.get("privileged") and not rules.allow_privileged:
        return _deny("privileged", "privileged containers are not allowed")
    for rule, allow, keys in _NAMESPACES:
        if any(_is_host(p.get(k)) for k in keys) and not (allow and getattr(rules, allow)):
            return _deny(rule, f"{rule.replace('_', ' ')} namespace is not allowed")
    added = {str(c).upper().removeprefix("CAP_") for c in p.get("cap_add") or []}
    allowed = {c.upper().removeprefix("CAP_") for c in rules.allow_cap_add}
    if added - allowed:
        extra = ", ".join(sorted(added - allowed))
        return _deny("cap_add", f"added capabilities not allowed: {extra}")
    if (p.get("devices") or p.get("device_requests") or p.get("device_cgroup_rules")) and not (
        rules.allow_devices
    ):
        return _deny("devices", "host devices are not allowed")
    if any(
        "unconfined" in str(o) or "no-new-privileges:false" in str(o)
        for o in p.get("security_opt") or []
    ):
        return _deny("security_opt", "weakening security options is not allowed")
    return None


def _is_host(value: Any) -> bool:
    return isinstance(value, str) and (value == "host" or value.startswith("container:"))


def mount_sources(p: dict[str, Any]) -> list[str]:
    """Every mount source named in ``params``, whatever shape the mounts take."""
    out: list[str] = []
    for key in ("volumes", "binds", "mounts"):
        value = p.get(key)
        if isinstance(value, dict):  # docker-py: {source: {"bind": ..., "mode": ...}}
            out += [str(k) for k in value]
        elif isinstance(value, list):
            out += [s for item in value if (s := _source_of(item))]
    return out


def _source_of(item: Any) -> str | None:
    if isinstance(item, str):
        return item.split(":", 1)[0] if ":" in item else None
    if isinstance(item, dict):
        for k in ("volume", "source", "Source", "src"):
            if item.get(k):
                return str(item[k])
    return None


def _check_mounts(rules: ContainerRules, p: dict[str, Any]) -> Decision | None:
    for src in mount_sources(p):
        if ("docker.sock" in src or src.rstrip("/") in {"/var/run", "/run"}) and not (
            rules.allow_docker_socket
        ):
            return _deny("docker_socket", f"mounting the Docker socket ({src}) is not allowed")
        host_path = src.startswith(("/", "~", ".")) or "/" in src
        if host_path and not rules.allow_host_mounts:
            return _deny("host_mounts", f"host bind mount {src!r} is not allowed")
    return None


def image_forms(image: str) -> list[str]:
    """The reference as given and with ``:latest`` when it has no tag or digest."""
    last = image.rsplit("/", 1)[-1]
    return [image] if (":" in last or "@" in image) else [image, f"{image}:latest"]


def _check_image(rules: ContainerRules, p: dict[str, Any]) -> Decision | None:
    image = p.get("image")
    if not isinstance(image, str):
        return None
    if any(fnmatch.fnmatchcase(f, pat) for f in image_forms(image) for pat in rules.images):
        return None
    return _deny("images", f"image {image!r} is not on the allow-list")


def _requested(p: dict[str, Any]) -> tuple[int | None, float | None, int | None]:
    mem = p.get("memory", p.get("mem_limit"))
    cpus = p.get("cpus")
    if cpus is None and p.get("nano_cpus"):
        cpus = p["nano_cpus"] / 1e9
    return (None if mem is None else parse_size(mem), cpus, p.get("pids_limit"))


def _check_limits(rules: ContainerRules, p: dict[str, Any]) -> Decision | None:
    mem, cpus, pids = _requested(p)
    if rules.max_memory and mem is not None and (mem > rules.max_memory or mem <= 0):
        return _deny("max_memory", f"memory {mem} bytes exceeds {rules.max_memory}")
    if rules.max_cpus and cpus is not None and cpus > rules.max_cpus:
        return _deny("max_cpus", f"{cpus} CPUs exceeds {rules.max_cpus}")
    if rules.max_pids and pids is not None and (pids > rules.max_pids or pids <= 0):
        return _deny("max_pids", f"pids limit {pids} exceeds {rules.max_pids}")
    return None


def _container_hardening(rules: ContainerRules, p: dict[str, Any]) -> Hardening:
    """Limits and hardening to add; never overrides what the request set within policy."""
    d = rules.defaults
    mem, cpus, pids = _requested(p)
    pids_limits = [x for x in (d.pids_limit, rules.max_pids) if x]
    return Hardening(
        drop_all_capabilities=d.cap_drop_all,
        no_new_privileges=d.no_new_privileges,
        memory=(d.memory or rules.max_memory) if mem is None else None,
        cpus=rules.max_cpus if cpus is None else None,
        pids_limit=min(pids_limits) if pids is None and pids_limits else None,
    )


def _check_count(
    creates: bool, cap: int | None, rule: str, kind: str, tenant: str, counts: Counts | None
) -> Decision | None:
    if not creates or cap is None:
        return None
    if counts is None:
        return _deny(rule, f"the {kind} count is unknown, so the cap of {cap} cannot be checked")
    have = counts(tenant, kind)
    if have >= cap:
        return _deny(rule, f"tenant has {have} {kind}; the cap is {cap}")
    return None


# --- virtual machines --------------------------------------------------------------------------


def _new_disk_mib(p: dict[str, Any]) -> int:
    disks = p.get("disks") or []
    total = sum(int(d.get("capacity_mib") or 0) for d in disks if isinstance(d, dict))
    return total + int(p.get("capacity_mib") or 0)


def _check_vm(
    rules: VmRules, op: str, p: dict[str, Any], tenant: str, counts: Counts | None
) -> Decision:
    vcpus, mem, disk = p.get("vcpus"), p.get("memory_mib"), _new_disk_mib(p)
    if rules.max_vcpus and vcpus is not None and vcpus > rules.max_vcpus:
        return _deny("max_vcpus", f"{vcpus} vCPUs exceeds {rules.max_vcpus}")
    if rules.max_memory_mib and mem is not None and mem > rules.max_memory_mib:
        return _deny("max_vm_memory", f"{mem} MiB exceeds {rules.max_memory_mib} MiB")
    if rules.max_disk_mib and disk > rules.max_disk_mib:
        return _deny("max_disk", f"{disk} MiB of new disk exceeds {rules.max_disk_mib} MiB")
    denied = _check_count(op in VM_CREATES, rules.max_vms, "max_vms", "vms", tenant, counts)
    return denied or Decision(True)
