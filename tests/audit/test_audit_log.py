"""The audit chain: append, query, concurrent appenders, and detection of edit/delete/insert."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from nube.audit.log import STREAM, AuditEvent, AuditLog, Query, canonical, record_hash
from nube.audit.verifier import Problem, verify_file
from tests.redis_replies import entries


def _fill(log: AuditLog, n: int = 6) -> list[dict[str, Any]]:
    return [
        log.append(
            AuditEvent(
                operation="containers.run" if i % 2 else "vms.list",
                outcome="succeeded",
                tenant="acme" if i < 4 else "beta",
                job_id=f"job-{i}",
                decision="accepted",
                actor="agent",
            )
        )
        for i in range(n)
    ]


def _records(r: redis.Redis) -> list[dict[str, Any]]:
    return [json.loads(f[b"r"]) for _, f in entries(r.xrange(STREAM), bytes)]


def _rewrite(r: redis.Redis, records: list[dict[str, Any]]) -> None:
    """What an attacker with Redis access does: rebuild the stream (entries are immutable)."""
    r.delete(STREAM)
    for i, rec in enumerate(records, 1):
        r.xadd(STREAM, {"r": canonical(rec)}, id=f"{i}-0")


def test_chain_links_and_verifies(r: redis.Redis) -> None:
    log = AuditLog(r)
    recs = _fill(log)
    assert [x["seq"] for x in recs] == [1, 2, 3, 4, 5, 6]
    assert recs[1]["prev"] == recs[0]["hash"]
    report = log.verify()
    assert report.ok and report.checked == 6


def test_query_filters(r: redis.Redis) -> None:
    log = AuditLog(r)
    _fill(log)
    assert [x["job_id"] for x in log.query(Query(tenant="beta"))[0]] == ["job-4", "job-5"]
    assert [x["job_id"] for x in log.query(Query(job_id="job-3"))[0]] == ["job-3"]
    ops = log.query(Query(operation="vms.list"))[0]
    assert [x["seq"] for x in ops] == [1, 3, 5]
    page, cursor = log.query(Query(limit=4))
    assert len(page) == 4 and cursor
    rest, end = log.query(Query(limit=4, after=cursor))
    assert [x["seq"] for x in rest] == [5, 6] and end is None
    assert log.query(Query(until=1))[0] == []


def test_concurrent_appenders_keep_one_chain(redis_url: str) -> None:
    def work(k: int) -> None:
        log = AuditLog(redis.Redis.from_url(redis_url))
        for i in range(25):
            log.append(AuditEvent(operation="op", outcome="ok", job_id=f"{k}-{i}"))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = AuditLog(redis.Redis.from_url(redis_url)).verify()
    assert report.ok and report.checked == 100


def test_edit_without_rehash_is_named(r: redis.Redis) -> None:
    log = AuditLog(r)
    _fill(log)
    recs = _records(r)
    recs[2]["decision"] = "denied"
    _rewrite(r, recs)
    report = log.verify()
    assert (report.problem, report.seq) == (Problem.ALTERED, 3)
    assert "seq 3" in report.message


def test_edit_with_rehash_is_named_by_the_broken_link(r: redis.Redis) -> None:
    log = AuditLog(r)
    _fill(log)
    recs = _records(r)
    recs[2]["tenant"] = "someone-else"
    recs[2]["hash"] = record_hash(recs[2])
    _rewrite(r, recs)
    report = log.verify()
    assert (report.problem, report.seq) == (Problem.ALTERED, 3)


@pytest.mark.parametrize("index, seq", [(0, 1), (3, 4)])
def test_delete_is_named(r: redis.Redis, index: int, seq: int) -> None:
    log = AuditLog(r)
    _fill(log)
    entry_ids = [eid for eid, _ in entries(r.xrange(STREAM), bytes)]
    r.xdel(STREAM, entry_ids[index])
    report = log.verify()
    assert (report.problem, report.seq) == (Problem.DELETED, seq)


def test_delete_of_the_last_record_is_named_via_the_head(r: redis.Redis) -> None:
    log = AuditLog(r)
    _fill(log)
    r.xdel(STREAM, entries(r.xrevrange(STREAM, count=1), bytes)[0][0])
    report = log.verify()
    assert (report.problem, report.seq) == (Problem.DELETED, 6)


def test_inserted_copy_is_named(r: redis.Redis) -> None:
    log = AuditLog(r)
    _fill(log)
    recs = _records(r)
    recs.insert(4, dict(recs[1]))  # replay an old record further down
    _rewrite(r, recs)
    report = log.verify()
    assert (report.problem, report.seq, report.entry) == (Problem.INSERTED, 2, "5-0")


def test_inserted_forgery_with_a_valid_hash_is_named(r: redis.Redis) -> None:
    log = AuditLog(r)
    _fill(log)
    recs = _records(r)
    forged = {**recs[2], "outcome": "succeeded", "job_id": "job-forged"}
    forged["hash"] = record_hash(forged)  # links correctly to seq 2, claims seq 3
    recs.insert(2, forged)
    _rewrite(r, recs)
    report = log.verify()
    assert (report.problem, report.entry) == (Problem.INSERTED, "3-0")


def test_garbage_entry_is_altered(r: redis.Redis) -> None:
    log = AuditLog(r)
    _fill(log, 3)
    recs: list[Any] = _records(r)
    _rewrite(r, recs)
    r.xadd(STREAM, {"r": b"not json"})
    assert log.verify().problem is Problem.ALTERED


def test_mirror_file_is_complete_ordered_and_verifiable(redis_url: str, tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    logs = [AuditLog(redis.Redis.from_url(redis_url), mirror=path) for _ in range(3)]

    def work(log: AuditLog) -> None:
        for i in range(10):
            log.append(AuditEvent(operation="op", outcome="ok", job_id=str(i)))

    threads = [threading.Thread(target=work, args=(log,)) for log in logs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = path.read_text().splitlines()
    assert [json.loads(x)["seq"] for x in lines] == list(range(1, 31))
    assert verify_file(path).ok
    edited = lines[:]
    rec = json.loads(edited[9])
    rec["outcome"] = "failed"
    edited[9] = json.dumps(rec)
    path.write_text("\n".join(edited) + "\n")
    report = verify_file(path)
    assert (report.problem, report.seq, report.entry) == (Problem.ALTERED, 10, "line 10")


def test_reads_through_a_decoding_client(redis_url: str) -> None:
    """The API and agent use ``decode_responses=True`` clients: reads must work with them too."""
    import redis as redis_lib

    from nube.audit.log import AuditEvent, AuditLog, Query

    client = redis_lib.Redis.from_url(redis_url, decode_responses=True)
    client.delete("nube:audit:decoding", "nube:audit:decoding:head")
    log = AuditLog(client, stream="nube:audit:decoding", head="nube:audit:decoding:head")
    log.append(AuditEvent(operation="vms.list", outcome="routed", tenant="acme"))
    records, _ = log.query(Query(tenant="acme"))
    assert [r["operation"] for r in records] == ["vms.list"]
    assert log.verify().ok


def test_query_times_before_the_epoch_are_clamped(redis_url: str) -> None:
    """Found by the schema fuzzer: a `since` before 1970 made an invalid stream id (a 500)."""
    import redis as redis_lib

    from nube.audit.log import AuditEvent, AuditLog, Query

    client = redis_lib.Redis.from_url(redis_url, decode_responses=True)
    client.delete("nube:audit:epoch", "nube:audit:epoch:head")
    log = AuditLog(client, stream="nube:audit:epoch", head="nube:audit:epoch:head")
    log.append(AuditEvent(operation="vms.list", outcome="routed", tenant="acme"))
    records, _ = log.query(Query(since=-86400.0, until=None))
    assert len(records) == 1
    assert log.query(Query(since=-2.0, until=-1.0)) == ([], None)


def test_an_appender_whose_cached_head_is_stale_chains_after_the_real_head(
    redis_url: str,
) -> None:
    """Each appender remembers the head it wrote last; another appender moves it on."""
    first, second = (AuditLog(redis.Redis.from_url(redis_url)) for _ in range(2))
    for log in (first, second, first, first, second):
        log.append(AuditEvent(operation="op", outcome="ok"))
    report = first.verify()
    assert report.ok and report.checked == 5
    assert [e.record["seq"] for e in first.entries() if e.record] == [1, 2, 3, 4, 5]


def test_mirror_catches_up_from_its_last_line(redis_url: str, tmp_path: Path) -> None:
    """Records appended without the mirror (another host's appender) reach it on the next
    append, read from after the mirror's last entry id, in order."""
    path = tmp_path / "audit.jsonl"
    mirrored = AuditLog(redis.Redis.from_url(redis_url), mirror=path)
    unmirrored = AuditLog(redis.Redis.from_url(redis_url))
    mirrored.append(AuditEvent(operation="op", outcome="ok"))
    for _ in range(3):
        unmirrored.append(AuditEvent(operation="op", outcome="ok"))
    mirrored.append(AuditEvent(operation="op", outcome="ok"))
    lines = path.read_text().splitlines()
    assert [json.loads(x)["seq"] for x in lines] == [1, 2, 3, 4, 5]
    assert verify_file(path).ok


def test_retention_trims_old_records_and_the_chain_verifies_from_its_anchor(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stream keeps ``retention_s`` of records (trimmed every TRIM_EVERY appends); the
    newest trimmed record becomes the anchor the verifier starts from; the mirror keeps all."""
    from nube.audit import log as audit_log

    path = tmp_path / "audit.jsonl"
    r = redis.Redis.from_url(redis_url)
    log = AuditLog(r, mirror=path, retention_s=1.0)
    monkeypatch.setattr(audit_log, "TRIM_EVERY", 26)  # the 26th append trims
    for i in range(25):
        log.append(AuditEvent(operation="op", outcome="ok", job_id=str(i)))
        time.sleep(0.003)  # one stream id millisecond each
    ids = [i.decode() for i, _ in entries(r.xrange(STREAM), bytes)]
    cut_ms = int(ids[12].split("-")[0])  # the cut-off falls just before seq 13
    log._clock = lambda: cut_ms / 1000 + log.retention_s
    log.append(AuditEvent(operation="op", outcome="ok"))
    assert [e.record["seq"] for e in log.entries() if e.record] == list(range(13, 27))
    anchor = log.anchor_state()
    assert anchor is not None and anchor[0] == 12
    report = log.verify()
    assert report.ok and report.checked == 14, report
    assert verify_file(path).ok and len(path.read_text().splitlines()) == 26  # all, in the mirror
    r.xdel(STREAM, ids[12])  # deleting the oldest kept record is still seen
    assert log.verify().problem is Problem.DELETED
