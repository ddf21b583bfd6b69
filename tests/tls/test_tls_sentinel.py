"""TLS with Redis Sentinel: the sentinels and the primary they name both speak TLS only; the job
store's client, Celery's broker (nube's per-channel transport over kombu's sentinel channel)
and its result backend reach them with the deployment's CA and client certificate, and a capture
of their ports shows neither the password nor a queue name."""

from __future__ import annotations

import contextlib
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis

from nube.broker import make_celery
from nube.redis_client import connect
from nube.settings import Settings, load_settings
from nube.tools.devstack import free_port
from tests.conftest import need
from tests.tls.harness import Capture, Certs


@dataclass
class TlsSentinel:
    """A TLS-only redis-server (client certificates required) and one TLS-only sentinel
    monitoring it as ``nube-primary``."""

    workdir: Path
    certs: Certs
    password: str
    port: int = 0
    sentinel_port: int = 0

    def tls_lines(self) -> list[str]:
        return [
            f"tls-cert-file {self.certs.server_crt}",
            f"tls-key-file {self.certs.server_key}",
            f"tls-ca-cert-file {self.certs.ca_crt}",
            "tls-auth-clients yes",
            "tls-replication yes",
            "bind 127.0.0.1",
            f"dir {self.workdir}",
        ]

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        self.port, self.sentinel_port = free_port(), free_port()
        primary = self.workdir / "primary.conf"
        primary.write_text(
            "\n".join(
                [
                    "port 0",
                    f"tls-port {self.port}",
                    f"requirepass {self.password}",
                    'save ""',
                    *self.tls_lines(),
                ]
            )
            + "\n"
        )
        sentinel = self.workdir / "sentinel.conf"
        sentinel.write_text(
            "\n".join(
                [
                    "port 0",
                    f"tls-port {self.sentinel_port}",
                    f"sentinel monitor nube-primary 127.0.0.1 {self.port} 1",
                    f"sentinel auth-pass nube-primary {self.password}",
                    *self.tls_lines(),
                ]
            )
            + "\n"
        )
        procs = [
            subprocess.Popen(["redis-server", str(primary)], stdout=subprocess.DEVNULL),
            subprocess.Popen(["redis-sentinel", str(sentinel)], stdout=subprocess.DEVNULL),
        ]
        try:
            yield
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(10)

    def settings(self) -> Settings:
        return load_settings(
            {
                "NUBE_REDIS_URL": "rediss://127.0.0.1/0",
                "NUBE_REDIS_PASSWORD": self.password,
                "NUBE_REDIS_SENTINELS": f"127.0.0.1:{self.sentinel_port}",
                "NUBE_REDIS_SENTINEL_MASTER": "nube-primary",
                **self.certs.env(),
            }
        )


def _wait_for_primary(settings: Settings, timeout: float = 20) -> redis.Redis:
    deadline = time.monotonic() + timeout
    while True:
        try:
            client = connect(settings)
            client.ping()
            return client
        except redis.RedisError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_sentinel_over_tls(tmp_path: Path) -> None:
    need(shutil.which("redis-sentinel") is not None, "redis-sentinel")
    need(shutil.which("tcpdump") is not None, "tcpdump")
    certs = Certs.make(tmp_path / "certs")
    setup = TlsSentinel(tmp_path, certs, secrets.token_hex(16))
    queue = f"queue{secrets.token_hex(6)}"
    with setup.running():
        settings = setup.settings()
        capture = Capture(tmp_path / "capture.pcap", [setup.port, setup.sentinel_port])
        try:
            client = _wait_for_primary(settings)
            client.set("tls-check", "ok")
            assert client.get("tls-check") == "ok"
            app = make_celery(settings, "tls-sentinel")
            with app.connection_for_write() as conn:
                simple = conn.SimpleQueue(queue)
                simple.put({"n": 1})
                message = simple.get(timeout=10)
                assert message.payload == {"n": 1}
                message.ack()
                client_class = conn.default_channel.client.connection_pool.connection_class
                assert issubclass(client_class, redis.SSLConnection)
                simple.close()
            app.backend.client.set("tls-backend", "ok")
            assert app.backend.client.get("tls-backend") in (b"ok", "ok")
            app.close()
        finally:
            data = capture.stop()
    assert len(data) > 5_000 and b"\x16\x03\x01" in data
    assert setup.password.encode() not in data
    assert queue.encode() not in data
