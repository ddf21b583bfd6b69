"""The whole stack as local processes: Redis, api (gunicorn), agent, workers, Flower.

``python -m nube.devstack`` is what ``make up`` runs; the tests start the same :class:`Stack`.
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

import redis
import requests

from agents.keyring import generate_key

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Stack:
    """Starts and stops nube's processes; each logs to ``<workdir>/<name>.log``."""

    workdir: Path
    redis_port: int = field(default_factory=free_port)
    api_port: int = field(default_factory=free_port)
    flower_port: int = field(default_factory=free_port)
    redis_password: str = field(default_factory=lambda: secrets.token_hex(16))
    flower_password: str = field(default_factory=lambda: secrets.token_hex(8))
    libvirt_uri: str = "test:///default"
    keys: str = field(default_factory=lambda: generate_key().to_line(), repr=False)
    extra_env: dict[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    commands: dict[str, tuple[list[str], dict[str, str]]] = field(default_factory=dict)

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def broker_url(self) -> str:
        """The Redis URL with the password, as Celery clients outside nube's services need it."""
        return f"redis://:{self.redis_password}@127.0.0.1:{self.redis_port}/0"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def flower_url(self) -> str:
        return f"http://127.0.0.1:{self.flower_port}"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NUBE_")}
        env.update(
            NUBE_REDIS_URL=self.redis_url,
            NUBE_REDIS_PASSWORD=self.redis_password,
            NUBE_LIBVIRT_URI=self.libvirt_uri,
            NUBE_KEYS=self.keys,
            NUBE_API_BIND=f"127.0.0.1:{self.api_port}",
            PYTHONPATH=str(ROOT),
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        env.update(extra)
        return env

    def redis(self) -> redis.Redis:
        return redis.Redis(
            port=self.redis_port, password=self.redis_password, decode_responses=True
        )

    # --- processes ----------------------------------------------------------------------------
    def spawn(self, name: str, argv: list[str], **env: str) -> subprocess.Popen[bytes]:
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

    def start_redis(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.spawn(
            "redis",
            [
                "redis-server",
                "--port",
                str(self.redis_port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.workdir),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--maxmemory-policy",
                "noeviction",
                "--requirepass",
                self.redis_password,
                "--rename-command",
                "CONFIG",
                "",
            ],
        )
        _wait_until(lambda: self.redis().ping(), 20, "redis")

    def start_agent(self, name: str = "agent") -> subprocess.Popen[bytes]:
        return self.spawn(name, [PY, "-m", "agents", "--concurrency", "2"])

    def start_worker(
        self, service: str, name: str | None = None, concurrency: int = 2, **env: str
    ) -> subprocess.Popen[bytes]:
        argv = [PY, "-m", "workers", service, "--concurrency", str(concurrency)]
        return self.spawn(name or f"worker-{service}", argv, **env)

    def start_api(self) -> None:
        self.spawn(
            "api", [PY, "-m", "gunicorn", "-c", "api/gunicorn_conf.py", "api.app:create_app()"]
        )
        _wait_until(lambda: requests.get(self.api_url + "/healthz", timeout=2).ok, 30, "api")

    def start_flower(self) -> None:
        self.spawn(
            "flower",
            [
                PY,
                "-m",
                "celery",
                "--broker",
                self.broker_url,
                "flower",
                "--address=127.0.0.1",
                f"--port={self.flower_port}",
                f"--basic-auth=admin:{self.flower_password}",
            ],
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


def _first_job(stack: Stack, token: str) -> dict[str, object]:
    from nube.client import NubeClient

    client = NubeClient(stack.api_url, token)
    body = {"image": "busybox:latest", "command": ["echo", "hello from nube"]}
    return client.submit("POST", "/v1/containers", body, wait=60)


def _write_env(path: Path, values: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    path.chmod(0o600)


def _local_keys(path: Path) -> str:
    """The local stack's keyring, made once and kept (so queued messages survive a restart)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(generate_key().to_line() + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _local_stack(env: Mapping[str, str]) -> Stack:
    """The stack `make up` runs, on the ports and URI the environment names."""
    return Stack(
        keys=_local_keys(ROOT / ".nube" / "keys"),
        workdir=ROOT / ".nube",
        redis_port=int(env.get("NUBE_REDIS_PORT", "6390")),
        api_port=int(env.get("NUBE_API_PORT", "8080")),
        flower_port=int(env.get("NUBE_FLOWER_PORT", "5555")),
        libvirt_uri=env.get("NUBE_LIBVIRT_URI", "test:///default"),
    )


def _admin_token(stack: Stack, given: str | None) -> str:
    """An admin token of tenant `local`, written to `.nube/local.env` with the URLs."""
    from nube.tokens import Scope, TokenStore

    token, _ = TokenStore(stack.redis()).create("local", [Scope.ADMIN], "make up", secret=given)
    _write_env(
        ROOT / ".nube" / "local.env",
        {
            "NUBE_URL": stack.api_url,
            "NUBE_TOKEN": token,
            "NUBE_FLOWER_URL": stack.flower_url,
            "NUBE_FLOWER_USER": "admin",
            "NUBE_FLOWER_PASSWORD": stack.flower_password,
        },
    )
    return token


def _announce(stack: Stack, token: str, job: dict[str, object]) -> None:
    print(f"\nnube is up.\n  API      {stack.api_url}   (docs: {stack.api_url}/docs)")
    print(f"  Flower   {stack.flower_url}   (admin / {stack.flower_password})")
    print(f"  token    {token}   (admin, tenant 'local')")
    print(f"  env      {ROOT / '.nube' / 'local.env'}   (source it to use curl or the CLI)")
    print(f"\nfirst job: POST /v1/containers → {job['status']}")
    print(json.dumps({k: job[k] for k in ("id", "status", "result", "error")}, indent=2))
    print(f"\nlogs in {stack.workdir}/*.log — press Ctrl-C to stop everything.", flush=True)


def main() -> None:
    """``make up``: start everything, show a first job, stop everything on Ctrl-C."""
    stack = _local_stack(os.environ)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        print("starting redis, agent, workers, api and flower ...", flush=True)
        stack.start_all()
        token = _admin_token(stack, os.environ.get("NUBE_TOKEN") or None)
        _announce(stack, token, _first_job(stack, token))
        while stack.procs["redis"].poll() is None:
            for name in stack.revive():
                print(f"{name} exited; started it again (see {name}.log)", file=sys.stderr)
            time.sleep(1)
        print("redis exited; stopping the stack", file=sys.stderr)
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
    finally:
        stack.stop_all()


if __name__ == "__main__":
    main()
