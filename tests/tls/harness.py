"""Real servers over TLS for the TLS tests: a RabbitMQ node with a TLS listener only (the
stack's redis-server has a TLS port only with ``Stack(tls_dir=...)``), and a packet capture
(tcpdump on ``lo``) of their ports.

Certificates come from :func:`nube.certs.create` (what ``nube certs create`` writes).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from kombu import Connection

from nube.certs import create
from tests.brokers import RabbitNode

HOSTS = ["127.0.0.1", "localhost"]


@dataclass(frozen=True)
class Certs:
    """One deployment's files (``nube certs create DIR --host 127.0.0.1 --host localhost``)."""

    dir: Path

    @classmethod
    def make(cls, directory: Path) -> Certs:
        create(directory, HOSTS)
        return cls(directory)

    def __getattr__(self, name: str) -> Path:  # ca_crt, server_key, client_crt, ...
        stem, _, ext = name.partition("_")
        if ext not in ("crt", "key"):
            raise AttributeError(name)
        return self.dir / f"{stem}.{ext}"

    def env(self) -> dict[str, str]:
        """The services' settings: verify against this CA, present this client certificate."""
        return {
            "NUBE_TLS_CA_FILE": str(self.ca_crt),
            "NUBE_TLS_CERT_FILE": str(self.client_crt),
            "NUBE_TLS_KEY_FILE": str(self.client_key),
        }


def amqp_ssl(certs: Certs) -> dict[str, object]:
    """py-amqp's TLS options with the deployment's CA and client certificate."""
    return {
        "ca_certs": str(certs.ca_crt),
        "certfile": str(certs.client_crt),
        "keyfile": str(certs.client_key),
        "cert_reqs": ssl.CERT_REQUIRED,
        "server_hostname": "127.0.0.1",
    }


@dataclass
class TlsRabbitNode(RabbitNode):
    """A private RabbitMQ node with one TLS listener (no plaintext one) that requires a client
    certificate signed by the deployment's CA."""

    certs: Certs | None = None

    def url(self, vhost: str) -> str:
        return f"amqps://{self.user}:{self.password}@127.0.0.1:{self.port}/{vhost}"

    def _write_config(self) -> None:
        assert self.certs is not None
        super()._write_config()
        conf = self.workdir / "rabbitmq.conf"
        text = conf.read_text().replace(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n",
            "listeners.tcp = none\n"
            f"listeners.ssl.default = {self.port}\n"
            f"ssl_options.cacertfile = {self.certs.ca_crt}\n"
            f"ssl_options.certfile = {self.certs.server_crt}\n"
            f"ssl_options.keyfile = {self.certs.server_key}\n"
            "ssl_options.verify = verify_peer\n"
            "ssl_options.fail_if_no_peer_cert = true\n",
        )
        conf.write_text(text)

    def start(self, timeout: float = 90) -> None:
        assert self.certs is not None
        self._write_config()
        log = open(self.workdir / "server.log", "ab")  # noqa: SIM115 - lives with the process
        self.proc = subprocess.Popen(
            [str(Path("/usr/lib/rabbitmq/bin/rabbitmq-server"))],
            env=self.env(),
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with Connection(self.url("t1"), ssl=amqp_ssl(self.certs), connect_timeout=2) as c:
                    c.connect()
                return
            except Exception:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    tail = (self.workdir / "server.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"rabbitmq-server did not start:\n{tail}") from None
                time.sleep(0.2)


class Capture:
    """``tcpdump -i lo`` of TCP ``ports`` into a pcap file while it runs; :meth:`stop` returns
    the file's bytes (packets whole: ``-s 0``; each handed over at once, ``--immediate-mode``:
    without it a capture stopped within a second of its traffic kept none of it)."""

    def __init__(self, path: Path, ports: list[int]) -> None:
        self.path = path
        exe = shutil.which("tcpdump")
        if exe is None:
            raise RuntimeError("tcpdump is not installed (scripts/setup.sh installs it)")
        expr = " or ".join(f"tcp port {p}" for p in ports)
        self.proc = subprocess.Popen(
            [exe, "-i", "lo", "-s", "0", "-U", "--immediate-mode", "-n", "-w", str(path), expr],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline().decode(errors="replace")  # "listening on lo, ..."
        if "listening" not in line:
            self.proc.kill()
            raise RuntimeError(f"tcpdump did not start: {line.strip()}")

    def stop(self) -> bytes:
        time.sleep(0.3)  # the last packets reach the file (-U: written per packet)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        return self.path.read_bytes()
