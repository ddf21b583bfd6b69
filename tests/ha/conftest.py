"""The HA tests' stack: nube on a Sentinel-managed Redis group (:mod:`nube.tools.sentinel`).

Every process it starts (three Redis nodes, three sentinels, nube's services) is stopped
afterwards, also when a test fails; their logs are printed then.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

from nube.tools.sentinel import SentinelStack
from tests.conftest import TEST_POLICY, docker_available, logs_shown_on_failure, need


@contextlib.contextmanager
def sentinel_stack(tmp_path: Path, **env: str) -> Iterator[SentinelStack]:
    """The Redis group and the sentinels up; the test starts nube's services."""
    need(shutil.which("redis-server") is not None, "redis-server")
    need(shutil.which("redis-sentinel") is not None, "redis-sentinel (Debian's redis-sentinel)")
    need(docker_available(), "the Docker engine")
    workdir = tmp_path / "stack"
    workdir.mkdir()
    (workdir / "policy.yaml").write_text(TEST_POLICY)
    extra = {
        "NUBE_POLICY_FILE": str(workdir / "policy.yaml"),
        "NUBE_AUDIT_FILE": str(workdir / "audit.jsonl"),
        "NUBE_RATE_LIMIT": "0",
        **env,
    }
    stack = SentinelStack(workdir=workdir, extra_env=extra)
    try:
        with logs_shown_on_failure(workdir):
            stack.start_redis()
            yield stack
    finally:
        stack.stop_all()
