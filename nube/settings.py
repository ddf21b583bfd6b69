"""One settings object for every nube service, read from ``NUBE_*`` variables at start-up.

Secrets may come from files: ``NUBE_X_FILE=/run/secrets/x`` sets ``x`` to the file's content.
A bad value stops the service with one line naming the variable (:func:`load_settings_or_exit`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

PREFIX = "NUBE_"
#: The schemes of a RabbitMQ ``NUBE_BROKER_URL`` (kombu's py-amqp transport).
AMQP_SCHEMES = ("amqp://", "amqps://")


class Settings(BaseModel):
    """Every option, with its help text and default (read by :func:`load_settings`)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        description="Redis for the broker, results, jobs, tokens and audit",
    )
    redis_password: str | None = Field(default=None, description="Redis password (secret)")
    broker_url: str | None = Field(
        default=None,
        repr=False,
        description="The message broker (secret: it may hold a password). Unset: the Redis of "
        "`NUBE_REDIS_URL`. `amqp://user:password@host:5672/vhost` (or `amqps://`): RabbitMQ, "
        "with quorum queues and publisher confirms; job records, idempotency keys, results, "
        "tokens and the audit log stay on Redis",
    )
    redis_sentinels: str | None = Field(
        default=None,
        description="Redis Sentinel: the sentinels' addresses, `host:port,host:port,...`. Set, "
        "the job store, the results and (unless `NUBE_BROKER_URL`) the broker are the primary "
        "these sentinels name `NUBE_REDIS_SENTINEL_MASTER`, asked again after a failover; "
        "`NUBE_REDIS_URL` then gives only the database number (its host is not used)",
    )
    redis_sentinel_master: str = Field(
        default="nube",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description="The name the sentinels monitor the primary under",
    )
    redis_sentinel_password: str | None = Field(
        default=None,
        repr=False,
        description="The sentinels' own password (secret; their `requirepass`); unset: none. "
        "The primary and replicas take `NUBE_REDIS_PASSWORD`",
    )
    redis_wait_replicas: int = Field(
        default=0,
        ge=0,
        description="Replicas every write to the job store (job create and transitions, "
        "idempotency keys, audit, tokens) waits for (`WAIT`) before it counts as done, so a "
        "failover loses none of it; fewer within `NUBE_REDIS_WAIT_TIMEOUT_MS`: the write fails "
        "as Redis unavailable (`503`; it may still be on the primary). 0: no wait",
    )
    redis_wait_timeout_ms: int = Field(
        default=1000, ge=1, description="How long a write waits for its replicas (ms)"
    )
    node: str = Field(
        default_factory=lambda: os.uname().nodename,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description="This worker's node name; its pinned queues are `<service>.<node>`",
    )
    libvirt_uri: str = Field(default="test:///default", description="libvirt connection URI")
    vm_domain_type: Literal["kvm", "qemu", "test"] | None = Field(
        default=None, description="Domain type of new VMs (default: kvm where libvirt offers it)"
    )
    vm_pool_root: Path = Field(
        default=Path("/var/lib/nube/pools"), description="Where directory storage pools live"
    )
    libvirt_peers: str = Field(
        default="",
        pattern=r"^(?:[A-Za-z0-9][A-Za-z0-9_.-]{0,63}=[^,\s]+(?:,[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
        r"=[^,\s]+)*)?$",
        description="Where VMs may migrate to: `node=uri,...` (`n2=qemu+tcp://10.0.0.2/system`), "
        "the libvirt URI of each other node's hypervisor as this worker reaches it",
    )
    libvirt_migration_hosts: str = Field(
        default="",
        pattern=r"^(?:[A-Za-z0-9][A-Za-z0-9_.-]{0,63}=[A-Za-z0-9_.:-]+(?:,[A-Za-z0-9][A-Za-z0-9_.-]"
        r"{0,63}=[A-Za-z0-9_.:-]+)*)?$",
        description="Where each peer's QEMU receives a live migration's memory: `node=host,...` "
        "(default: the host of its `NUBE_LIBVIRT_PEERS` URI; for a URI without one, libvirt's "
        "choice, the destination's hostname)",
    )
    docker_host: str | None = Field(
        default=None, description="Docker engine address (default: DOCKER_HOST or the socket)"
    )
    container_driver: Literal["docker", "fake"] = Field(
        default="docker",
        description="Container driver: `docker` (the engine), or `fake` (in memory, per worker "
        "process: for tests and demos without Docker; run the worker with `--concurrency 1`)",
    )
    vm_driver: Literal["libvirt", "fake"] = Field(
        default="libvirt",
        description="VM driver: `libvirt` (`NUBE_LIBVIRT_URI`), or `fake` (in memory, per worker "
        "process: for tests and demos without libvirt; run the worker with `--concurrency 1`)",
    )
    max_body_bytes: int = Field(
        default=1 << 20,
        ge=1024,
        description="Largest JSON request body; an operation with a binary payload (image load "
        "and build, volume restore) also accepts its payload, up to 16 MiB decoded, as base64",
    )
    rate_limit: int = Field(
        default=1200, ge=0, description="Requests per minute per token (0: unlimited)"
    )
    max_wait_seconds: int = Field(default=60, ge=0, le=300, description="Longest long-poll")
    read_wait_seconds: int = Field(
        default=5,
        ge=0,
        le=300,
        description="How long a read of live infrastructure (a `GET` operation: list "
        "containers, VM info) waits for its job when the client sends no `Prefer: wait=N`: "
        "ended in time, the answer is `200` with the resource; else `202` with the job. At most "
        "`NUBE_MAX_WAIT_SECONDS`; 0: reads answer `202` at once, as `Prefer: respond-async` asks",
    )
    result_expires_days: int = Field(default=7, ge=1, description="How long results are kept")
    visibility_timeout: int = Field(
        default=3600, ge=60, description="Seconds before an unacked message is redelivered"
    )
    max_attempts: int = Field(
        default=5, ge=1, description="Deliveries of one job before it fails `worker_lost`"
    )
    reconcile_seconds: int = Field(
        default=30,
        ge=0,
        description="How often the agent looks for accepted jobs whose messages were lost "
        "(0: never)",
    )
    node_lost_seconds: int = Field(
        default=300,
        ge=0,
        description="How long a node's workers may all be silent (no heartbeat) before the agent "
        "declares the node lost and fails the jobs pinned to it `node_lost` (0: never)",
    )
    retry_backoff_max: int = Field(default=30, ge=1, description="Longest retry backoff (s)")
    publish_timeout: float = Field(default=5.0, gt=0, description="Broker publish timeout (s)")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    audit_file: Path | None = Field(default=None, description="JSON-lines mirror of the audit log")
    audit_retention_days: float = Field(
        default=90,
        ge=0,
        description="How long audit records stay in Redis (the JSON-lines mirror keeps every "
        "one); 0 keeps them all",
    )
    keys: str | None = Field(
        default=None,
        repr=False,
        description="Sealing keyring (secret): `kid:base64key` entries, newest first, separated "
        "by newlines or commas; make one with `nube keys generate`",
    )
    agent_mode: Literal["active", "passive"] = Field(
        default="active",
        description="`active` seals, checks policy and audits; `passive` (debugging only) signs "
        "messages but leaves them readable",
    )
    replay_window_seconds: int = Field(
        default=7 * 24 * 3600,
        ge=60,
        description="Oldest accepted message age; a job queued longer than this fails `expired`",
    )
    replay_skew_seconds: int = Field(default=300, ge=0, description="Tolerated clock skew")
    policy_file: Path | None = Field(
        default=None, description="Per-tenant policy (YAML or JSON); none: the built-in default"
    )
    tls_ca_file: Path | None = Field(
        default=None,
        description="The CA (PEM) that `rediss://` and `amqps://` servers must be signed by "
        "(hostname checked); unset: the system's CAs. Make one with `nube certs create`",
    )
    tls_cert_file: Path | None = Field(
        default=None,
        description="Client certificate (PEM) presented to `rediss://` and `amqps://` servers "
        "(with `NUBE_TLS_KEY_FILE`)",
    )
    tls_key_file: Path | None = Field(
        default=None, description="The client certificate's private key (PEM)"
    )

    @model_validator(mode="after")
    def _check_redis(self) -> Settings:
        if not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("NUBE_REDIS_URL must be a redis:// or rediss:// URL")
        if self.broker_url is not None and not self.broker_url.startswith(AMQP_SCHEMES):
            raise ValueError("NUBE_BROKER_URL must be an amqp:// or amqps:// URL (or unset)")
        return self

    @model_validator(mode="after")
    def _check_tls(self) -> Settings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("NUBE_TLS_CERT_FILE and NUBE_TLS_KEY_FILE go together: set both")
        for name in ("tls_ca_file", "tls_cert_file", "tls_key_file"):
            path = getattr(self, name)
            if path is not None and not os.access(path, os.R_OK):
                raise ValueError(f"{PREFIX}{name.upper()}: cannot read {path}")
        return self

    @model_validator(mode="after")
    def _check_replay_window(self) -> Settings:
        if self.replay_window_seconds <= self.visibility_timeout:
            raise ValueError(
                "NUBE_REPLAY_WINDOW_SECONDS must exceed NUBE_VISIBILITY_TIMEOUT, or a "
                "redelivered message would be refused as expired"
            )
        return self

    @model_validator(mode="after")
    def _check_sentinels(self) -> Settings:
        if self.redis_sentinels is not None:
            self.sentinel_addresses  # noqa: B018 - raises on a bad address
            if not self.redis_url.startswith(("redis://", "rediss://")):
                raise ValueError(
                    "NUBE_REDIS_SENTINELS needs a redis:// or rediss:// NUBE_REDIS_URL"
                )
        return self

    @property
    def sentinel_addresses(self) -> list[tuple[str, int]]:
        """``NUBE_REDIS_SENTINELS`` as ``(host, port)`` pairs (none: not on Sentinel)."""
        if self.redis_sentinels is None:
            return []
        found = []
        for entry in self.redis_sentinels.split(","):
            host, _, port = entry.strip().rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(
                    f"NUBE_REDIS_SENTINELS: {entry.strip()!r} is not host:port "
                    "(addresses separated by commas)"
                )
            found.append((host.strip("[]"), int(port)))
        return found

    @property
    def redis_db(self) -> int:
        """The database number of ``NUBE_REDIS_URL`` (its path; 0 when it has none)."""
        path = self.redis_url.split("://", 1)[1].partition("/")[2].partition("?")[0]
        return int(path) if path.isdigit() else 0

    @property
    def amqp(self) -> bool:
        """Whether the broker is RabbitMQ (``NUBE_BROKER_URL``) rather than Redis."""
        return self.broker_url is not None

    @property
    def broker(self) -> str:
        """The URL Celery's messages go through: ``NUBE_BROKER_URL``, else :attr:`redis_dsn`."""
        return self.broker_url or self.redis_dsn

    @property
    def redis_dsn(self) -> str:
        """The Redis URL with the password (if any) filled in."""
        if not self.redis_password or "@" in self.redis_url:
            return self.redis_url
        scheme, rest = self.redis_url.split("://", 1)
        return f"{scheme}://:{self.redis_password}@{rest}"


def _resolve_files(environ: Mapping[str, str]) -> dict[str, str]:
    """``NUBE_X_FILE`` → ``NUBE_X`` = the file's content (trailing newline stripped).

    A variable that names a setting itself (``NUBE_AUDIT_FILE``, ``NUBE_POLICY_FILE``) is a
    value, not a secret file.
    """
    env = {k: v for k, v in environ.items() if k.startswith(PREFIX)}
    for key, path in list(env.items()):
        if _field_of(key) in Settings.model_fields or not key.endswith("_FILE"):
            continue
        target = key[: -len("_FILE")]
        try:
            env[target] = Path(path).read_text().rstrip("\n")
        except OSError as e:
            raise SettingsError(f"{key}: cannot read {path}: {e.strerror}") from e
        del env[key]
    return env


def _field_of(variable: str) -> str:
    return variable[len(PREFIX) :].lower()


class SettingsError(Exception):
    """A setting is missing or invalid; the message names the variable."""


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the settings from ``environ`` (default: ``os.environ``)."""
    env = _resolve_files(os.environ if environ is None else environ)
    fields = {_field_of(name): value for name, value in env.items()}
    known = {k: v for k, v in fields.items() if k in Settings.model_fields}
    try:
        return Settings.model_validate(known)
    except ValidationError as e:
        err = e.errors()[0]
        if not err["loc"]:  # a check across fields: its message names the variables
            raise SettingsError(err["msg"].removeprefix("Value error, ")) from e
        raise SettingsError(f"{PREFIX}{str(err['loc'][0]).upper()}: {err['msg']}") from e


@contextmanager
def exit_on_bad_setting() -> Iterator[None]:
    """Turn a ``SettingsError`` into one line on stderr naming the variable, and exit 2."""
    try:
        yield
    except SettingsError as e:
        print(f"nube: invalid setting {e}", file=sys.stderr)
        raise SystemExit(2) from None


def load_settings_or_exit(environ: Mapping[str, str] | None = None) -> Settings:
    """:func:`load_settings`, or print one line naming the bad variable and exit 2."""
    with exit_on_bad_setting():
        return load_settings(environ)
    raise AssertionError("unreachable")
