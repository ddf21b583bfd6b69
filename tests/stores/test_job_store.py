"""The job store on a real Redis: transitions, terminal finality, waiting, idempotency."""

from __future__ import annotations

import threading
import time

import pytest

from nube.errors import IdempotencyKeyReused
from nube.jobs import Job, JobStatus, JobStore, new_job_id, now_iso
from nube.tools.devstack import Stack


@pytest.fixture
def store(redis_only: Stack) -> JobStore:
    client = redis_only.redis()
    client.flushdb()
    return JobStore(client)


def new_job(store: JobStore, tenant: str = "acme") -> Job:
    job = Job(
        id=new_job_id(), operation="vms.list", tenant=tenant, queue="vms", submitted_at=now_iso()
    )
    return store.create(job)


def test_terminal_state_is_final(store: JobStore) -> None:
    job = new_job(store)
    assert store.mark_running(job.id, "n1").status == JobStatus.RUNNING  # type: ignore[union-attr]
    assert store.finish(job.id, {"ok": 1}) is not None
    assert store.fail(job.id, {"code": "internal", "message": "late"}) is None
    assert store.mark_running(job.id, "n2") is None
    final = store.get(job.id)
    assert final.status == JobStatus.SUCCEEDED and final.result == {"ok": 1} and final.attempts == 1
    assert [e.event for e in final.history] == ["queued", "running", "succeeded"]


def test_concurrent_updates_lose_nothing(store: JobStore) -> None:
    job = new_job(store)
    threads = [
        threading.Thread(target=store.mark_running, args=(job.id, f"n{i}")) for i in range(20)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.get(job.id).attempts == 20


def test_wait_wakes_on_completion(store: JobStore) -> None:
    job = new_job(store)
    threading.Timer(0.3, store.finish, args=(job.id, None)).start()
    started = time.monotonic()
    done = store.wait(job.id, 10)
    assert done is not None and done.status == JobStatus.SUCCEEDED
    assert time.monotonic() - started < 2


def test_wait_times_out_on_a_running_job(store: JobStore) -> None:
    job = new_job(store)
    started = time.monotonic()
    assert store.wait(job.id, 1).status == JobStatus.QUEUED  # type: ignore[union-attr]
    assert 0.9 < time.monotonic() - started < 3


def test_idempotency(store: JobStore) -> None:
    first, second = new_job(store), new_job(store)
    assert store.claim_idempotency_key("acme", "k", first, "fp1").id == first.id
    assert store.claim_idempotency_key("acme", "k", second, "fp1").id == first.id
    with pytest.raises(IdempotencyKeyReused):
        store.claim_idempotency_key("acme", "k", second, "fp2")
    assert store.claim_idempotency_key("other", "k", second, "fp2").id == second.id


def test_list_filters_and_pages(store: JobStore) -> None:
    jobs = [new_job(store) for _ in range(7)]
    store.finish(jobs[2].id, None)
    page, cursor = store.list("acme", limit=4)
    assert [j.id for j in page] == [j.id for j in jobs[::-1][:4]]
    rest, end = store.list("acme", limit=4, cursor=cursor)
    assert [j.id for j in rest] == [j.id for j in jobs[::-1][4:]] and end is None
    done, _ = store.list("acme", status="succeeded")
    assert [j.id for j in done] == [jobs[2].id]
    assert store.list("nobody") == ([], None)


def test_events_of_a_job_that_ended_before_subscribing(store: JobStore) -> None:
    job = new_job(store)
    store.finish(job.id, None)
    started = time.monotonic()
    assert list(store.events(job.id, timeout=30)) == [{"event": "succeeded", "status": "succeeded"}]
    assert time.monotonic() - started < 2


def test_a_transition_from_a_stale_copy_is_computed_again(store: JobStore) -> None:
    """A worker finishes from the record it marked running; a progress report in between
    changed the record, so the change is made again on the current one (nothing lost)."""
    job = new_job(store)
    running = store.mark_running(job.id, "n1")
    assert running is not None
    store.report_progress(job.id, {"step": 1})
    done = store.finish(job.id, {"ok": 1}, base=running)
    assert done is not None
    final = store.get(job.id)
    assert final.status == JobStatus.SUCCEEDED and final.progress == {"step": 1}
    assert [e.event for e in final.history] == ["queued", "running", "progress", "succeeded"]


def test_a_cancel_wins_over_a_transition_from_an_older_copy(store: JobStore) -> None:
    job = new_job(store)
    running = store.mark_running(job.id, "n1")
    assert running is not None
    assert store.cancel(job.id) is not None
    assert store.finish(job.id, {"ok": 1}, base=running) is None
    final = store.get(job.id)
    assert final.status == JobStatus.CANCELLED and final.result is None


def test_pending_ids_are_the_jobs_with_a_kept_request(store: JobStore) -> None:
    """Accepted and not ended, from a set (no walk over every record), and a request kept
    before the set existed is adopted."""
    from nube.wire import RelayRequest

    def request(job: Job) -> RelayRequest:
        return RelayRequest(job_id=job.id, operation=job.operation, tenant=job.tenant, params={})

    done, open_, discarded, plain = (new_job(store) for _ in range(4))
    for job in (done, open_, discarded):
        store.keep_request(job, request(job))
    legacy = new_job(store)
    store.redis.set(store.request_key(legacy.id), "x")  # kept by an older nube: no set entry
    store.finish(done.id, {"ok": 1})
    store.discard(discarded)
    assert set(store.pending_ids()) == {open_.id, legacy.id}
    assert plain.id not in set(store.pending_ids())
    created = Job(
        id=new_job_id(), operation="vms.list", tenant="acme", queue="vms", submitted_at=now_iso()
    )
    store.create(created, request(created))  # the API's way: kept in create's round trip
    assert created.id in set(store.pending_ids())
    store.cancel(created.id)
    assert created.id not in set(store.pending_ids())


def test_the_tenant_index_forgets_jobs_whose_records_expired(store: JobStore) -> None:
    """Index entries outlived their records (a leak found by the soak): a create drops the
    entries older than a record lives; places of older nubes (counters) are left to listing."""
    index = store.index("acme")
    now_ms = int(time.time() * 1000)
    stale = (now_ms - (30 * 24 * 3600 + 60) * 1000) * 1000  # a record's life ago, and a minute
    recent = (now_ms - 3600 * 1000) * 1000
    store.redis.zadd(index, {"stale": stale, "recent": recent, "legacy": 7})
    job = new_job(store)
    assert store.redis.zrange(index, 0, -1) == ["legacy", "recent", job.id]
    assert job.seq > recent  # newest first
    page, _ = store.list("acme", limit=10)
    assert [j.id for j in page] == [job.id]  # and listing drops the entries with no record
    assert store.redis.zrange(index, 0, -1) == [job.id]


def test_an_idle_tenants_index_expires_with_its_last_record(store: JobStore) -> None:
    """A tenant that stops creating jobs leaves no index behind (the 100,000-job soak found its
    index outliving every record): each create gives the index the record's lifetime."""
    new_job(store, tenant="idle")
    index = store.index("idle")
    assert 0 < store.redis.ttl(index) <= 30 * 24 * 3600
    store.redis.expire(index, 5)  # as if the last create were a record's life ago, less 5 s
    new_job(store, tenant="idle")
    assert store.redis.ttl(index) > 30 * 24 * 3600 - 60  # renewed by the newer create


def test_status_counts_follow_every_transition(store: JobStore) -> None:
    a, b, c, d = (new_job(store) for _ in range(4))
    store.mark_running(a.id, "n1")
    store.mark_running(b.id, "n1")
    store.finish(b.id, {"ok": 1})
    store.fail(c.id, {"code": "internal", "message": "x"})
    store.cancel(c.id)  # terminal already: no change
    store.discard(d)
    assert store.status_counts() == {
        "queued": 0,
        "running": 1,
        "succeeded": 1,
        "failed": 1,
        "cancelled": 0,
    }
