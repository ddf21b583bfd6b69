"""Fixtures for the ``nube`` command line: it runs as a real process (``python -m
nube.tools.cli``) against the session's ``stack``, with a token of a fresh tenant in its
environment, in a temporary directory with its own config file and ``HOME`` (nothing of the
user's config, nor the project's ``.nube/local.env``, is read).

Containers, networks and volumes of the tenants are removed by ``make_client``; images they
built or pulled (labelled with the tenant) here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from nube.tools.client import NubeClient
from tests.conftest import ClientFactory, docker_available, need, remove_docker_resources

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "busybox:latest"


def token_of(client: NubeClient) -> str:
    return str(client.session.headers["Authorization"]).removeprefix("Bearer ")


def unique(base: str) -> str:
    """``nubetest-cli-<base>-<hex>``: names that never clash with another run's."""
    return f"nubetest-cli-{base}-{uuid.uuid4().hex[:6]}"


@dataclass
class Cli:
    """Runs ``nube`` in ``cwd`` with ``env`` (``NUBE_*`` of this process left out)."""

    cwd: Path
    env: dict[str, str] = field(default_factory=dict)

    def __call__(
        self, *args: str, input: str | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        """``nube *args`` with ``env`` added; its output as text (it must end in 4 min)."""
        return subprocess.run(
            [sys.executable, "-m", "nube.tools.cli", *args],
            cwd=self.cwd,
            env={**self.env, **env},
            input=input,
            capture_output=True,
            text=True,
            timeout=240,
        )


def base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUBE_")}
    env.update(
        HOME=str(home),
        NUBE_CONFIG=str(home / ".config" / "nube" / "config.toml"),
        PYTHONPATH=str(ROOT),
    )
    env.pop("XDG_CONFIG_HOME", None)
    return env


@pytest.fixture
def bare(tmp_path: Path) -> Cli:
    """``nube`` with nothing configured."""
    (tmp_path / "home").mkdir()
    return Cli(tmp_path, base_env(tmp_path / "home"))


@pytest.fixture
def cli(bare: Cli, api: NubeClient) -> Cli:
    """``nube`` as a fresh tenant (read, write) of the stack: NUBE_URL and NUBE_TOKEN set."""
    bare.env.update(NUBE_URL=api.url, NUBE_TOKEN=token_of(api))
    return bare


@pytest.fixture(scope="session")
def engine_ready() -> None:
    need(docker_available(), "the Docker engine")
    need(docker("image", "inspect", IMAGE).returncode == 0, f"the {IMAGE} image")


@pytest.fixture
def engine_client(make_client: ClientFactory, engine_ready: None) -> Iterator[NubeClient]:
    """A fresh tenant for tests on the Docker engine; its images go at teardown."""
    client = make_client()
    yield client
    tenant = client.tenant  # type: ignore[attr-defined]
    remove_docker_resources(tenant)
    images = docker("images", "-q", "--filter", f"label=nube.tenant={tenant}").stdout.split()
    if images:
        docker("rmi", "-f", *set(images))


@pytest.fixture
def docker_cli(bare: Cli, engine_client: NubeClient) -> Cli:
    """``nube`` as the tenant of ``engine_client``."""
    bare.env.update(NUBE_URL=engine_client.url, NUBE_TOKEN=token_of(engine_client))
    return bare


def docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60)


def one_line(text: str) -> str:
    """The one line of ``text`` (an error is never more)."""
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


def parsed(done: subprocess.CompletedProcess[str]) -> Any:
    """The JSON a successful command printed."""
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
