"""One subscriber connection wakes every waiter of a process (the API's waits)."""

from __future__ import annotations

import threading
import time

import redis

from nube.job_waiters import JobWaiters
from nube.jobs import Job, JobStatus, JobStore, new_job_id, now_iso
from nube.tools.devstack import Stack


def new_job(store: JobStore) -> Job:
    job = Job(
        id=new_job_id(), operation="vms.list", tenant="acme", queue="vms", submitted_at=now_iso()
    )
    return store.create(job)


def subscribed_connections(client: redis.Redis) -> int:
    return sum(1 for c in client.client_list() if int(c.get("sub", 0)) > 0)


def test_many_waits_share_one_connection_and_all_wake(redis_only: Stack) -> None:
    client = redis_only.redis()
    client.flushdb()
    store = JobStore(client)
    store.waiters = JobWaiters(client)
    jobs = [new_job(store) for _ in range(12)]
    waited = [*jobs, jobs[0]]  # two waiters on one job
    results: dict[int, Job | None] = {}

    def wait(i: int, job: Job) -> None:
        results[i] = store.wait(job.id, 20)

    threads = [threading.Thread(target=wait, args=(i, j)) for i, j in enumerate(waited)]
    for t in threads:
        t.start()
    channels = [store.channel(j.id) for j in jobs]
    deadline = time.monotonic() + 10
    while sum(n for _, n in client.pubsub_numsub(*channels)) < len(jobs):
        assert time.monotonic() < deadline, client.pubsub_numsub(*channels)
        time.sleep(0.05)
    assert subscribed_connections(client) == 1  # not one per waiter
    started = time.monotonic()
    for job in jobs:
        store.finish(job.id, {"ok": job.id})
    for t in threads:
        t.join(20)
    assert time.monotonic() - started < 5  # woken by the events, not by the re-check timer
    assert [r.status if r else None for r in results.values()] == [JobStatus.SUCCEEDED] * 13
    assert {i: r.result for i, r in results.items() if r} == {
        i: {"ok": j.id} for i, j in enumerate(waited)
    }
    numsub = client.pubsub_numsub(*channels)
    assert [n for _, n in numsub] == [0] * len(jobs)  # every channel left once its waits ended
    store.waiters.close()


def test_a_wait_that_runs_out_returns_the_job_as_it_is(redis_only: Stack) -> None:
    client = redis_only.redis()
    client.flushdb()
    store = JobStore(client)
    store.waiters = JobWaiters(client)
    job = new_job(store)
    store.mark_running(job.id, "n1")
    started = time.monotonic()
    waited = store.wait(job.id, 1)
    assert waited is not None and waited.status == JobStatus.RUNNING
    assert 0.9 < time.monotonic() - started < 3
    assert store.wait(new_job_id(), 1) is None  # unknown: at once
    store.waiters.close()
    deadline = time.monotonic() + 5
    while subscribed_connections(client):  # the reader closes it within a second
        assert time.monotonic() < deadline
        time.sleep(0.1)
