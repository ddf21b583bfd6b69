"""The whole stack as local processes: Redis, api (gunicorn), agent, workers, Flower.

``python -m nube.tools.devstack`` is what ``make up`` runs; the tests start the same :class:`Stack`.

Settings (``make up``): every ``NUBE_*`` variable of its environment reaches every service it
starts, except those the stack itself must own, which it sets (:data:`OWNED`): the Redis it
starts (``NUBE_REDIS_URL``, ``NUBE_REDIS_PASSWORD``), its keyring (``NUBE_KEYS``, from
``.nube/keys``) and the API's address (``NUBE_API_BIND``, from ``NUBE_API_PORT``). The merged
settings, the keyring and the policy file are validated before anything starts.

No secret is put on a command line (``ps`` shows command lines to every user): Redis reads its
password from a mode-600 config file in the work directory, the services read theirs from the
environment, and Flower runs as ``python -m nube.tools.flower`` with ``FLOWER_BASIC_AUTH``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import requests

from nube.broker import check_visibility_timeout
from nube.errors import KeyringInvalid
from nube.sealing.keyring import Keyring, generate_key
from nube.settings import PREFIX, Settings, SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable

#: What the stack sets itself and the environment of ``make up`` cannot change (nor through
#: ``<NAME>_FILE``): its own Redis, its keyring (``<workdir>/keys``) and the API's address.
OWNED = ("NUBE_REDIS_URL", "NUBE_REDIS_PASSWORD", "NUBE_KEYS", "NUBE_API_BIND")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Stack:
    """Starts and stops nube's processes; each logs to ``<workdir>/<name>.log``.

    Every process gets :meth:`env`: this process's environment without its ``NUBE_*``
    variables, then what the stack owns (:data:`OWNED`, ``NUBE_LIBVIRT_URI``), then
    ``extra_env`` (which wins: tests set their knobs there, ``make up`` the ``NUBE_*``
    variables it passes through, from which it has removed the owned ones).
    """

    workdir: Path
    redis_port: int = field(default_factory=free_port)
    api_port: int = field(default_factory=free_port)
    flower_port: int = field(default_factory=free_port)
    redis_password: str = field(default_factory=lambda: secrets.token_hex(16), repr=False)
    flower_password: str = field(default_factory=lambda: secrets.token_hex(8), repr=False)
    libvirt_uri: str = "test:///default"
    keys: str = field(default_factory=lambda: generate_key().to_line(), repr=False)
    extra_env: dict[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    commands: dict[str, tuple[list[str], dict[str, str]]] = field(default_factory=dict)
    metrics: bool = False
    """Each agent and worker serves ``/metrics`` on a port of its own (:attr:`metrics_ports`)."""
    metrics_ports: dict[str, int] = field(default_factory=dict)
    prometheus_port: int = 0
    tls_dir: Path | None = None
    """Certificates from ``nube certs create`` (``ca.crt``, ``server.*``, ``client.*``): Redis
    then listens on TLS only and requires a client certificate; the services use ``rediss://``
    with ``NUBE_TLS_*`` (``NUBE_TLS=1 make up``)."""

    @property
    def scheme(self) -> str:
        return "rediss" if self.tls_dir else "redis"

    @property
    def redis_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.redis_port}/0"

    @property
    def broker_url(self) -> str:
        """The Redis URL with the password, as Celery clients outside nube's services need it
        (in-process only: never put it on a command line)."""
        return f"{self.scheme}://:{self.redis_password}@127.0.0.1:{self.redis_port}/0"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def flower_url(self) -> str:
        return f"http://127.0.0.1:{self.flower_port}"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
        env.update(
            NUBE_REDIS_URL=self.redis_url,
            NUBE_REDIS_PASSWORD=self.redis_password,
            NUBE_LIBVIRT_URI=self.libvirt_uri,
            NUBE_KEYS=self.keys,
            NUBE_API_BIND=f"127.0.0.1:{self.api_port}",
            PYTHONPATH=str(ROOT),
            PYTHONUNBUFFERED="1",
        )
        env.update(self.tls_env())
        env.update(self.extra_env)
        env.update(extra)
        return env

    def tls_env(self) -> dict[str, str]:
        """``NUBE_TLS_*`` of :attr:`tls_dir` (none without it)."""
        if self.tls_dir is None:
            return {}
        return {
            "NUBE_TLS_CA_FILE": str(self.tls_dir / "ca.crt"),
            "NUBE_TLS_CERT_FILE": str(self.tls_dir / "client.crt"),
            "NUBE_TLS_KEY_FILE": str(self.tls_dir / "client.key"),
        }

    def redis(self) -> redis.Redis:
        tls: dict[str, Any] = {}
        if self.tls_dir is not None:
            tls = {
                "ssl": True,
                "ssl_ca_certs": str(self.tls_dir / "ca.crt"),
                "ssl_certfile": str(self.tls_dir / "client.crt"),
                "ssl_keyfile": str(self.tls_dir / "client.key"),
            }
        return redis.Redis(
            port=self.redis_port, password=self.redis_password, decode_responses=True, **tls
        )

    # --- processes ----------------------------------------------------------------------------
    def spawn(self, name: str, argv: list[str], **env: str) -> subprocess.Popen[bytes]:
        """Start ``argv`` with :meth:`env` plus ``env``. Secrets go in ``env``, never ``argv``."""
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - lives with the process
        proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=self.env(**env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs[name] = proc
        self.commands[name] = (argv, env)
        return proc

    def revive(self) -> list[str]:
        """Start again every service that exited (what a supervisor, or compose's restart
        policy, does: Celery exits on some broker connection-loss races); returns their names."""
        dead = [n for n, p in self.procs.items() if n != "redis" and p.poll() is not None]
        for name in dead:
            argv, env = self.commands[name]
            self.spawn(name, argv, **env)
        return dead

    def redis_config(self) -> str:
        """redis.conf: AOF with fsync on every write, no eviction (a job or a queued message
        must never be dropped), the password, ``CONFIG`` renamed away."""
        options = [
            ("port", str(self.redis_port)),
            ("bind", "127.0.0.1"),
            ("dir", str(self.workdir)),
            ("save", ""),
            ("appendonly", "yes"),
            ("appendfsync", "always"),
            ("maxmemory-policy", "noeviction"),
            ("requirepass", self.redis_password),
        ]
        if self.tls_dir is not None:  # TLS only, client certificates required
            options[0] = ("port", "0")
            options += [
                ("tls-port", str(self.redis_port)),
                ("tls-cert-file", str(self.tls_dir / "server.crt")),
                ("tls-key-file", str(self.tls_dir / "server.key")),
                ("tls-ca-cert-file", str(self.tls_dir / "ca.crt")),
                ("tls-auth-clients", "yes"),
            ]
        lines = [f"{name} {_redis_quote(value)}" for name, value in options]
        lines.append('rename-command CONFIG ""')
        return "\n".join(lines) + "\n"

    def start_redis(self) -> None:
        """redis-server with its options, password included, in ``<workdir>/redis.conf``
        (mode 600), so that its command line is ``redis-server <that file>``."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "redis.conf"
        _write_private(config, self.redis_config())
        self.spawn("redis", ["redis-server", str(config)])
        _wait_until(lambda: self.redis().ping(), 20, "redis")

    def start_agent(self, name: str = "agent") -> subprocess.Popen[bytes]:
        return self.spawn(name, [PY, "-m", "agents"], **self._metrics_env(name))

    def start_worker(
        self, service: str, name: str | None = None, concurrency: int = 2, **env: str
    ) -> subprocess.Popen[bytes]:
        argv = [PY, "-m", "workers", service, "--concurrency", str(concurrency)]
        name = name or f"worker-{service}"
        return self.spawn(name, argv, **self._metrics_env(name), **env)

    def _metrics_env(self, name: str) -> dict[str, str]:
        """``NUBE_METRICS_PORT`` for service ``name`` when the stack serves metrics."""
        if not self.metrics:
            return {}
        port = self.metrics_ports.setdefault(name, free_port())
        return {"NUBE_METRICS_PORT": str(port)}

    def prometheus_config(self, interval: str = "5s") -> str:
        """A scrape configuration for the API and every agent and worker started so far, with
        nube's alert rules (``nube/observability/alerts.yml``)."""
        targets = [f"127.0.0.1:{port}" for port in self.metrics_ports.values()]
        config = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "rule_files": [str(ROOT / "nube" / "observability" / "alerts.yml")],
            "scrape_configs": [
                {"job_name": "nube-api", "static_configs": [{"targets": [self.api_url[7:]]}]},
                {"job_name": "nube-services", "static_configs": [{"targets": targets}]},
            ],
        }
        return json.dumps(config, indent=2) + "\n"  # JSON is YAML

    def start_prometheus(self, port: int = 0, interval: str = "5s") -> str:
        """Debian's ``prometheus`` scraping the stack; its URL."""
        self.prometheus_port = port or free_port()
        config = self.workdir / "prometheus.yml"
        config.write_text(self.prometheus_config(interval))
        url = f"http://127.0.0.1:{self.prometheus_port}"
        self.spawn(
            "prometheus",
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={self.workdir / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{self.prometheus_port}",
            ],
        )
        _wait_until(lambda: requests.get(url + "/-/ready", timeout=2).ok, 30, "prometheus")
        return url

    def start_api(self) -> None:
        self.spawn(
            "api", [PY, "-m", "gunicorn", "-c", "api/gunicorn_conf.py", "api.app:create_app()"]
        )
        _wait_until(lambda: requests.get(self.api_url + "/healthz", timeout=2).ok, 30, "api")

    def start_flower(self) -> None:
        """Flower on nube's Celery app (``nube.tools.flower``): the broker URL is made in-process
        from the settings; basic auth (user ``admin``) comes from ``FLOWER_BASIC_AUTH``."""
        self.spawn(
            "flower",
            [PY, "-m", "nube.tools.flower", "--address=127.0.0.1", f"--port={self.flower_port}"],
            FLOWER_BASIC_AUTH=f"admin:{self.flower_password}",
        )
        _wait_until(
            lambda: requests.get(self.flower_url + "/healthcheck", timeout=2).ok, 30, "flower"
        )

    def wait_ready(self, queues: list[str], timeout: float = 60) -> None:
        """Until ``/readyz`` shows a live consumer on each of ``queues``."""

        def ready() -> bool:
            body = requests.get(self.api_url + "/readyz", timeout=2).json()
            return all(body.get("queues", {}).get(q) for q in queues)

        _wait_until(ready, timeout, f"queues {queues}")

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)

    def stop_all(self) -> None:
        for name in [n for n in self.procs if n != "redis"]:
            self.stop(name)
        self.stop("redis")

    def start_all(self) -> None:
        self.start_redis()
        self.start_agent()
        self.start_worker("containers")
        self.start_worker("vms")
        self.start_api()
        self.start_flower()
        self.wait_ready(["nube.ingress", "containers", "vms"])


def _wait_until(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():  # type: ignore[operator]
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not become ready in {timeout:.0f} s")


def _redis_quote(value: str) -> str:
    """One redis.conf argument, double-quoted (``\\``, ``"`` and non-printables escaped)."""
    out = []
    for ch in value:
        if ch in '\\"':
            out.append("\\" + ch)
        elif ch.isascii() and ch.isprintable():
            out.append(ch)
        else:
            out.extend(f"\\x{b:02x}" for b in ch.encode())
    return '"' + "".join(out) + '"'


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (mode 600, also if it existed)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(fd, 0o600)
        f.write(text)


# --- make up -----------------------------------------------------------------------------------


def local_environment(env: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """The ``NUBE_*`` variables of ``env`` that ``make up`` passes to every service, and the
    names it ignores because the stack owns them (:data:`OWNED`, or their ``_FILE`` forms).

    ``*_FILE`` paths are made absolute: the services run in the project directory, which need
    not be the directory ``make up`` was started in.
    """
    passed: dict[str, str] = {}
    ignored: list[str] = []
    for name, value in sorted(env.items()):
        if not name.startswith(PREFIX):
            continue
        if name in OWNED or name.removesuffix("_FILE") in OWNED:
            ignored.append(name)
            continue
        passed[name] = os.path.abspath(value) if name.endswith("_FILE") and value else value
    return passed, ignored


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name) or str(default)
    port = int(value) if value.isdigit() else 0
    if not 0 < port < 65536:
        raise SettingsError(f"{name}: not a TCP port number: {value!r}")
    return port


def _local_stack(env: Mapping[str, str], workdir: Path) -> Stack:
    """The stack `make up` runs in ``workdir``, on the ports the environment names, with every
    ``NUBE_*`` variable of ``env`` that the stack does not own. Writes nothing (the keyring is
    ``<workdir>/keys`` if it exists, else a new one that :func:`_keep_keys` saves)."""
    passed, _ = local_environment(env)
    keys = workdir / "keys"
    return Stack(
        workdir=workdir,
        keys=keys.read_text().strip() if keys.exists() else generate_key().to_line(),
        redis_port=_port(env, "NUBE_REDIS_PORT", 6390),
        api_port=_port(env, "NUBE_API_PORT", 8080),
        flower_port=_port(env, "NUBE_FLOWER_PORT", 5555),
        flower_password=env.get("NUBE_FLOWER_PASSWORD") or secrets.token_hex(8),
        libvirt_uri=env.get("NUBE_LIBVIRT_URI") or "test:///default",
        extra_env=passed,
        tls_dir=workdir / "tls" if env.get("NUBE_TLS", "") not in ("", "0") else None,
    )


def check_settings(env: Mapping[str, str]) -> Settings:
    """What each service checks when it starts, checked once before anything starts: the
    settings, the keyring, the policy file, the audit file's directory. ``SettingsError``
    (naming the variable) when one is bad."""
    settings = load_settings(env)
    check_visibility_timeout(settings)
    if not settings.keys:
        raise SettingsError("NUBE_KEYS: required")
    try:
        Keyring.from_text(settings.keys)
    except KeyringInvalid as e:
        raise SettingsError(f"NUBE_KEYS: {e.message}") from e
    if settings.policy_file:
        check_agent(env)
    if settings.audit_file and not settings.audit_file.parent.is_dir():
        raise SettingsError(f"NUBE_AUDIT_FILE: {settings.audit_file.parent} is not a directory")
    return settings


#: How a service starts the line it prints when a setting stops it (``exit_on_bad_setting``).
BAD_SETTING = "nube: invalid setting "


def check_agent(env: Mapping[str, str]) -> None:
    """Run ``python -m agents --check`` with ``env``: the agent alone reads the policy file, so
    it checks it. ``SettingsError`` (its one line, naming the variable) when it refuses."""
    done = subprocess.run(
        [PY, "-m", "agents", "--check"],
        env={"PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"the agent's check exited {done.returncode}"]
        raise SettingsError(lines[-1].removeprefix(BAD_SETTING))


def prepare(env: Mapping[str, str], workdir: Path) -> tuple[Stack, Settings]:
    """The stack ``make up`` runs and the settings every service of it will have (checked).
    With ``NUBE_TLS=1``, the certificates in ``<workdir>/tls`` (made there on first use, as
    ``nube certs create <workdir>/tls --host 127.0.0.1 --host localhost`` does)."""
    stack = _local_stack(env, workdir)
    if stack.tls_dir is not None and not (stack.tls_dir / "server.crt").exists():
        from nube.certs import create

        create(stack.tls_dir, ["127.0.0.1", "localhost"])
    return stack, check_settings(stack.env())


def settings_lines(stack: Stack, settings: Settings) -> list[str]:
    """What the announcement says about the settings in force (never a secret's value)."""
    policy = settings.policy_file or "none (every image allowed)"
    lines = [f"  policy   {policy}"]
    if stack.tls_dir is not None:
        lines.append(f"  tls      redis on TLS only, client certificates from {stack.tls_dir}")
    if settings.audit_file:
        lines.append(f"  audit    {settings.audit_file}   (mirror of the audit log)")
    if settings.agent_mode != "active":
        lines.append("  mode     passive: messages are READABLE in Redis (debugging only)")
    if stack.extra_env:
        lines.append(f"  settings {' '.join(sorted(stack.extra_env))}   (from the environment)")
    return lines


def _first_job(stack: Stack, token: str) -> dict[str, object]:
    from nube.tools.client import ApiError, NubeClient

    client = NubeClient(stack.api_url, token)
    body = {"image": "busybox:latest", "command": ["echo", "hello from nube"]}
    try:
        return client.submit("POST", "/v1/containers", body, wait=60)
    except ApiError as e:
        return {"id": None, "status": f"refused ({e.status})", "result": None, "error": e.problem}


def _write_env(path: Path, values: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_private(path, "".join(f"{k}={v}\n" for k, v in values.items()))


def _keep_keys(stack: Stack) -> None:
    """Save the local stack's keyring once (so queued messages survive a restart)."""
    path = stack.workdir / "keys"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_private(path, stack.keys + "\n")


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _admin_token(stack: Stack, given: str | None) -> str:
    """An admin token of tenant `local`, written to `<workdir>/local.env` (mode 600) with the
    URLs, and the stack's Redis settings, which the CLI's Redis commands read from it
    (``nube audit verify``, ``nube tokens --redis``)."""
    from nube.tokens import Scope, TokenStore

    token, _ = TokenStore(stack.redis()).create("local", [Scope.ADMIN], "make up", secret=given)
    _write_env(
        stack.workdir / "local.env",
        {
            "NUBE_URL": stack.api_url,
            "NUBE_TOKEN": token,
            "NUBE_FLOWER_URL": stack.flower_url,
            "NUBE_FLOWER_USER": "admin",
            "NUBE_FLOWER_PASSWORD": stack.flower_password,
            "NUBE_REDIS_URL": stack.redis_url,
            "NUBE_REDIS_PASSWORD": stack.redis_password,
            **stack.tls_env(),
        },
    )
    return token


def _announce(stack: Stack, settings: Settings, token: str, job: dict[str, object]) -> None:
    print(f"\nnube is up.\n  API      {stack.api_url}   (docs: {stack.api_url}/docs)")
    print(f"  Flower   {stack.flower_url}   (admin / {stack.flower_password})")
    if stack.prometheus_port:
        print(f"  metrics  http://127.0.0.1:{stack.prometheus_port}   (Prometheus; API /metrics)")
    print(f"  token    {token}   (admin, tenant 'local')")
    print(f"  env      {stack.workdir / 'local.env'}   (source it to use curl or the CLI)")
    print("\n".join(settings_lines(stack, settings)))
    print(f"\nfirst job: POST /v1/containers → {job['status']}")
    print(json.dumps({k: job[k] for k in ("id", "status", "result", "error")}, indent=2))
    print(
        f"\nlogs in {stack.workdir}/*.log (JSON lines; follow a job: grep <job id>)"
        " — press Ctrl-C to stop everything.",
        flush=True,
    )


def _fail(message: object) -> SystemExit:
    print(f"nube: {' '.join(str(message).split())}", file=sys.stderr)
    return SystemExit(2)


def main() -> None:
    """``make up``: check the settings, start everything, show a first job, stop everything on
    Ctrl-C. A bad setting stops it with one line naming the variable, before anything starts."""
    try:
        stack, settings = prepare(os.environ, ROOT / ".nube")
    except SettingsError as e:
        raise _fail(e) from None
    for name in local_environment(os.environ)[1]:
        print(
            f"nube: {name} is ignored: make up sets it (its own Redis, keyring "
            f"{stack.workdir / 'keys'} and API address)",
            file=sys.stderr,
        )
    _keep_keys(stack)
    stack.metrics = os.environ.get("NUBE_PROMETHEUS", "") not in ("", "0")
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        print("starting redis, agent, workers, api and flower ...", flush=True)
        print("\n".join(settings_lines(stack, settings)), flush=True)
        stack.start_all()
        if stack.metrics:  # NUBE_PROMETHEUS=1 make up
            stack.start_prometheus(_port(os.environ, "NUBE_PROMETHEUS_PORT", 9090))
        token = _admin_token(stack, os.environ.get("NUBE_TOKEN") or None)
        _announce(stack, settings, token, _first_job(stack, token))
        while stack.procs["redis"].poll() is None:
            for name in stack.revive():
                print(f"{name} exited; started it again (see {name}.log)", file=sys.stderr)
            time.sleep(1)
        print("redis exited; stopping the stack", file=sys.stderr)
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
    except RuntimeError as e:  # a service did not become ready
        print(f"nube: {e}; see {stack.workdir}/*.log", file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        stack.stop_all()


if __name__ == "__main__":
    main()
