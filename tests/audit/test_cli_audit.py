"""``nube audit verify`` through typer's runner."""

from __future__ import annotations

import json
from pathlib import Path

import redis
from typer.testing import CliRunner

from nube.audit.log import STREAM, AuditEvent, AuditLog, canonical
from nube.tools.cli_audit import audit_app
from tests.redis_replies import entries

runner = CliRunner()


def test_audit_verify_ok_then_names_the_edit(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    mirror = tmp_path / "audit.jsonl"
    log = AuditLog(r, mirror=mirror)
    for i in range(4):
        log.append(AuditEvent(operation="containers.run", outcome="succeeded", job_id=str(i)))
    res = runner.invoke(audit_app, ["verify", "--redis-url", redis_url, "-f", str(mirror)])
    assert res.exit_code == 0, res.output
    assert "ok, 4 records" in res.output
    stream = entries(r.xrange(STREAM), bytes)
    rec = json.loads(stream[1][1][b"r"])
    rec["outcome"] = "failed"
    r.delete(STREAM)
    for i, (_, fields) in enumerate(stream, 1):
        r.xadd(STREAM, {"r": canonical(rec) if i == 2 else fields[b"r"]}, id=f"{i}-0")
    res = runner.invoke(audit_app, ["verify", "--redis-url", redis_url])
    assert res.exit_code == 1
    assert "ALTERED" in res.output and "seq 2" in res.output
