"""The job store with a sealer, on a real Redis: a failed job's error message and details are
stored sealed (only the code, retryable and the error's title stay readable) and read back
whole; history entries carry codes, never messages. And what a worker raises through Celery is
the error's redacted copy."""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator

import pytest
import redis

from nube.errors import BackendFailed, BackendUnavailable, NotFound, NubeError
from nube.jobs import Job, JobStatus, JobStore, new_job_id, now_iso
from nube.sealing.setup import RecordSealer, load_security
from nube.settings import load_settings
from nube.tools.devstack import Stack

SECRET = "/nonexistent-MARKER1234/run"


@pytest.fixture
def client(redis_only: Stack) -> Iterator[redis.Redis]:
    r = redis_only.redis()
    r.flushdb()
    yield r


@pytest.fixture
def sealed(redis_only: Stack, client: redis.Redis) -> JobStore:
    security = load_security(load_settings(redis_only.env()), client)
    return JobStore(client, RecordSealer(security.sealer))


def new_job(store: JobStore) -> Job:
    job = Job(
        id=new_job_id(),
        operation="containers.run",
        tenant="acme",
        queue="containers",
        submitted_at=now_iso(),
    )
    return store.create(job)


def failure() -> BackendFailed:
    return BackendFailed(reason=f'exec: "{SECRET}": stat {SECRET}: no such file or directory')


def test_a_sealed_error_keeps_only_code_status_retryable_and_title_readable(
    sealed: JobStore,
) -> None:
    job = new_job(sealed)
    sealed.mark_running(job.id, "n1")
    error = failure()
    failed = sealed.fail(job.id, error.to_dict())
    assert failed is not None and failed.status == JobStatus.FAILED

    raw = str(sealed.redis.get(sealed.key(job.id)))
    assert "MARKER1234" not in raw
    stored = json.loads(raw)["error"]
    assert set(stored) == {"code", "status", "message", "retryable", "$sealed"}
    assert stored["code"] == "internal" and stored["retryable"] is False
    assert stored["status"] == 500
    assert stored["message"] == BackendFailed.title

    read = sealed.get(job.id)
    assert read.error is not None
    assert read.error.model_dump() == {
        "code": "internal",
        "status": 500,
        "message": error.message,
        "retryable": False,
        "details": {"reason": error.details["reason"]},
    }
    assert read.model_dump() == failed.model_dump()
    assert [(e.event, e.detail) for e in read.history][-1] == ("failed", "internal")


def test_a_retrying_entry_and_a_rewrite_keep_the_error_sealed(sealed: JobStore) -> None:
    job = new_job(sealed)
    sealed.mark_running(job.id, "n1")
    sealed.update(job.id, "retrying", "backend_unavailable; retry 1 in 1 s")
    sealed.fail(job.id, BackendUnavailable(backend="registry", reason=SECRET).to_dict())
    # a record read and written again (any later change) keeps the title readable, not the code
    again = sealed.get(job.id)
    sealed.redis.set(sealed.key(job.id), sealed._dump(again))
    raw = str(sealed.redis.get(sealed.key(job.id)))
    assert "MARKER1234" not in raw
    assert json.loads(raw)["error"]["message"] == BackendUnavailable.title
    assert sealed.get(job.id).error.details["reason"] == SECRET  # type: ignore[union-attr]


def test_a_refusals_error_without_a_title_keeps_its_code_readable(sealed: JobStore) -> None:
    job = new_job(sealed)
    refusal = {"code": "message_rejected", "message": "message refused: tampered"}
    sealed.fail(job.id, {**refusal, "retryable": False, "details": {"reason": "tampered"}})
    stored = json.loads(str(sealed.redis.get(sealed.key(job.id))))["error"]
    assert stored["message"] == "message_rejected" and "tampered" not in json.dumps(stored)
    assert sealed.get(job.id).error.message == refusal["message"]  # type: ignore[union-attr]


def test_without_a_sealer_the_record_is_plain_and_history_has_the_code(client: redis.Redis) -> None:
    store = JobStore(client)
    job = new_job(store)
    store.fail(job.id, NotFound(kind="container", id="web").to_dict())
    stored = json.loads(str(client.get(store.key(job.id))))
    assert stored["error"]["message"] == "container 'web' was not found"
    assert "title" not in stored["error"]  # the title is the store's, not the client's
    assert stored["history"][-1]["detail"] == "not_found"


def test_a_sealed_record_needs_a_sealer(sealed: JobStore, client: redis.Redis) -> None:
    job = new_job(sealed)
    sealed.fail(job.id, failure().to_dict())
    with pytest.raises(ValueError, match="no sealer"):
        JobStore(client).get(job.id)


def test_redacted_keeps_the_class_and_says_only_the_title() -> None:
    error = failure()
    error.__cause__ = RuntimeError(SECRET)
    copy = error.redacted()
    assert type(copy) is BackendFailed and copy.code == error.code
    assert copy.message == str(copy) == BackendFailed.title and copy.details == {}
    assert copy.args == (BackendFailed.title,) and copy.__cause__ is None
    assert "MARKER1234" not in repr(copy)
    # Celery rebuilds a stored exception from its class and args, and pickles it for events
    assert pickle.loads(pickle.dumps(copy)).message == BackendFailed.title
    assert type(copy)(*copy.args).message == BackendFailed.title
    assert isinstance(NubeError("x").redacted(), NubeError)


def test_peek_reads_what_a_job_is_without_opening_its_sealed_parts(sealed: JobStore) -> None:
    done, failed = new_job(sealed), new_job(sealed)
    sealed.finish(done.id, {"secret": SECRET})
    sealed.fail(failed.id, failure().to_dict())
    sealed.sealer = None  # a store that cannot open anything still peeks
    peeked = sealed.peek(done.id)
    assert peeked is not None and peeked.result is None
    assert (peeked.operation, peeked.tenant, peeked.status) == (
        "containers.run",
        "acme",
        JobStatus.SUCCEEDED,
    )
    error = sealed.peek(failed.id).error  # type: ignore[union-attr]
    assert error is not None and error.code == "internal"
    assert error.message == BackendFailed.title and error.details == {}
    assert sealed.peek(new_job_id()) is None
