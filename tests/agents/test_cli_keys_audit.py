"""``nube keys`` and ``nube audit verify`` through typer's runner."""

from __future__ import annotations

import json
from pathlib import Path

import redis
from typer.testing import CliRunner

from agents.audit import STREAM, AuditEvent, AuditLog, canonical
from agents.keyring import Keyring
from nube.cli_audit import audit_app
from nube.cli_keys import keys_app

runner = CliRunner()


def test_generate_rotate_drop_list(tmp_path: Path) -> None:
    line = runner.invoke(keys_app, ["generate"]).output.strip()
    assert Keyring.from_text(line).current.kid.startswith("k")
    path = tmp_path / "keys"
    assert runner.invoke(keys_app, ["generate", "-f", str(path), "--kid", "k1"]).exit_code == 0
    assert runner.invoke(keys_app, ["generate", "-f", str(path)]).exit_code == 2
    res = runner.invoke(keys_app, ["rotate", "-f", str(path), "--kid", "k2"])
    assert res.exit_code == 0 and "sealing key is now k2" in res.output
    assert Keyring.from_files([path]).kids == ["k2", "k1"]
    assert runner.invoke(keys_app, ["list", "-f", str(path)]).output.split() == [
        "k2",
        "(seals)",
        "k1",
    ]
    assert runner.invoke(keys_app, ["drop", "-f", str(path), "k1"]).exit_code == 0
    assert runner.invoke(keys_app, ["drop", "-f", str(path), "k2"]).exit_code == 2


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
    entries = r.xrange(STREAM)
    rec = json.loads(entries[1][1][b"r"])
    rec["outcome"] = "failed"
    r.delete(STREAM)
    for i, (_, fields) in enumerate(entries, 1):
        r.xadd(STREAM, {"r": canonical(rec) if i == 2 else fields[b"r"]}, id=f"{i}-0")
    res = runner.invoke(audit_app, ["verify", "--redis-url", redis_url])
    assert res.exit_code == 1
    assert "ALTERED" in res.output and "seq 2" in res.output
