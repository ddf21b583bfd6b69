"""The deploy files as docker-compose and docker stack read them (client side only, seconds):
the control and worker overrides of docker-compose.yml resolve to what the guide relies on, and
docker-stack.yml is a valid stack. Also the guide's blocks, as the other deploy tests read them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from tests.conftest import need
from tests.deploy.guide import ROOT, steps

CONTROL_ENV = {
    "NUBE_CONTROL_ADDR": "10.0.0.5",
    "NUBE_TLS_DIR": "/etc/nube/tls",
    "NUBE_REDIS_PASSWORD": "pw",
}
WORKER_ENV = {
    "NUBE_REDIS_URL": "rediss://10.0.0.5:6380/0",
    "NUBE_REDIS_PASSWORD": "pw",
    "NUBE_NODE": "worker1",
    "NUBE_KEYS_DIR": "/etc/nube/keys",
    "NUBE_TLS_DIR": "/etc/nube/tls",
}


def _env(**values: str) -> dict[str, str]:
    """The machine's environment without NUBE_*/COMPOSE_* (they would change the files), plus
    ``values``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUBE_", "COMPOSE_"))}
    return {**env, **values}


def _compose_config(override: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    need(shutil.which("docker-compose") is not None, "docker-compose")
    return subprocess.run(
        ["docker-compose", "-f", "docker-compose.yml", "-f", override, "config"],
        cwd=ROOT,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def _config(override: str, env: dict[str, str]) -> dict[str, Any]:
    proc = _compose_config(override, env)
    assert proc.returncode == 0, proc.stderr
    return dict(yaml.safe_load(proc.stdout))


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Target → ``source[:mode]`` of the service's volumes (docker-compose 1.29's short form)."""
    found = {}
    for volume in service["volumes"]:
        source, target, *mode = volume.split(":")
        found[target] = ":".join([source, *mode])
    return found


def test_the_control_node_publishes_only_redis_tls_on_its_address() -> None:
    services = _config("docker-compose.control.yml", CONTROL_ENV)["services"]
    assert services["worker-containers"]["scale"] == 0 and services["worker-vms"]["scale"] == 0
    assert services["redis"]["ports"] == ["10.0.0.5:6380:6380/tcp"]
    assert "--port 0 --tls-port 6380" in services["redis"]["command"][-1]
    assert "--tls-auth-clients yes" in services["redis"]["command"][-1]
    for name in ("api", "agent", "flower"):
        env = services[name]["environment"]
        assert env["NUBE_REDIS_URL"] == "rediss://redis:6380/0", name
        assert env["NUBE_TLS_CERT_FILE"] == "/etc/nube/tls/client.crt", name
        assert _mounts(services[name])["/etc/nube/tls"] == "/etc/nube/tls:ro", name
    assert services["api"]["ports"] == ["127.0.0.1:8080:8080/tcp"]


def test_a_worker_node_runs_only_its_workers_against_the_remote_redis() -> None:
    services = _config("docker-compose.worker.yml", WORKER_ENV)["services"]
    for name in ("keys-init", "redis", "api", "agent", "flower"):
        assert services[name]["scale"] == 0, name
    for name in ("worker-containers", "worker-vms"):
        env = services[name]["environment"]
        assert env["NUBE_REDIS_URL"] == "rediss://10.0.0.5:6380/0", name
        assert env["NUBE_NODE"] == "worker1", name
        mounts = _mounts(services[name])
        assert mounts["/var/lib/nube/keys"] == "/etc/nube/keys:ro", name
        assert mounts["/etc/nube/tls"] == "/etc/nube/tls:ro", name
        assert "ports" not in services[name], name


def test_a_worker_node_without_its_settings_is_refused() -> None:
    env = {k: v for k, v in WORKER_ENV.items() if k != "NUBE_NODE"}
    proc = _compose_config("docker-compose.worker.yml", env)
    assert proc.returncode != 0 and "set NUBE_NODE" in proc.stderr, proc.stderr


def test_the_stack_file_is_a_valid_stack() -> None:
    """As ``docker stack config`` reads it (Docker 25 and later; Debian's 20.10 CLI has no such
    command: tests/deploy/test_stack.py deploys the file with whichever CLI is installed)."""
    need(shutil.which("docker") is not None, "docker")
    proc = subprocess.run(
        ["docker", "stack", "config", "-c", "docker-stack.yml"],
        cwd=ROOT,
        env=_env(NUBE_DOCKER_GID="998"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    if proc.returncode != 0 and "unknown shorthand flag: 'c'" in proc.stderr:
        pytest.skip("this docker CLI has no `docker stack config`")
    assert proc.returncode == 0, proc.stderr
    services = yaml.safe_load(proc.stdout)["services"]
    assert set(services) == {"redis", "api", "agent", "containers-worker", "vms-worker", "flower"}
    assert services["containers-worker"]["user"] == "10001:998"
    assert services["containers-worker"]["environment"]["NUBE_NODE"] == "{{.Node.Hostname}}"
    for name, service in services.items():
        assert service["deploy"]["endpoint_mode"] == "dnsrr", name
        assert "build" not in service and service["image"].startswith("nube/"), name


@pytest.mark.parametrize("host", ["control", "worker", "copy", "swarm"])
def test_the_guide_has_blocks_for(host: str) -> None:
    assert any(s.host == host for s in steps()), host


def test_guide_blocks_are_read_as_written() -> None:
    text = (
        "x\n<!-- guide: worker -->\n```sh\necho a\n```\n"
        "  <!-- guide: control -->\n  ```sh\n  echo b\n    echo c\n  ```\n"
    )
    found = steps(text)
    assert [(s.host, s.script) for s in found] == [
        ("worker", "echo a\n"),
        ("control", "echo b\n  echo c\n"),
    ]
