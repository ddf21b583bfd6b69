"""Jobs: the record of every piece of asynchronous work, and the source of truth about it.

The API creates the record before anything is published, so an unknown id is ``404`` and never
"pending". The agent and the workers move it through its states; terminal states are final.
Every change is published on the job's channel so waiters wake on completion, not on a timer.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

import redis
from pydantic import BaseModel, Field, PrivateAttr

from nube.errors import IdempotencyKeyReused, NotFound
from nube.job_waiters import JobWaiters
from nube.wire import RelayRequest

JOB_TTL = 30 * 24 * 3600  # job records outlive results (7 days) so a finished job reads finished
IDEMPOTENCY_TTL = 24 * 3600
#: Jobs by status (a hash kept by the create and transition scripts).
STATUS_COUNTS = "nube:jobs-by-status"
#: Ids of the jobs whose relay request is kept (accepted, not ended): the reconciler's list.
PENDING = "nube:jobs-pending"


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})


class JobEvent(BaseModel):
    """One entry of a job's history: ``queued``, ``relayed``, ``running``, ``retrying``, ..."""

    event: str
    at: str
    detail: str | None = None


class JobError(BaseModel):
    code: str
    status: int | None = None
    """The error's HTTP status, which a request that waited for the job answers with (None in
    older records: the API finds it by ``code``, :func:`nube.errors.error_class`)."""
    message: str
    retryable: bool = False
    details: dict[str, Any] = Field(default_factory=dict)
    #: The error class's title: what a sealed record keeps readable in place of the message.
    #: Not part of the job as clients see it.
    _title: str | None = PrivateAttr(default=None)

    @classmethod
    def of(cls, error: dict[str, Any]) -> JobError:
        """From :meth:`nube.errors.NubeError.to_dict` (or a dict like it; ``title`` optional)."""
        made = cls.model_validate(error)
        title = error.get("title")
        made._title = title if isinstance(title, str) else None
        return made

    @property
    def label(self) -> str:
        """The words that name this error without quoting anything: its title, else its code."""
        return self._title or self.code


class Job(BaseModel):
    """A job as stored and as the API shows it (links are added by the API)."""

    id: str
    operation: str
    status: JobStatus = JobStatus.QUEUED
    tenant: str
    queue: str
    target: str | None = None
    submitted_at: str
    started_at: str | None = None
    finished_at: str | None = None
    attempts: int = 0
    node: str | None = None
    trace_id: str | None = None  # the job's trace (nube.observability.tracing), when traced
    progress: dict[str, Any] | None = None
    result: Any = None
    error: JobError | None = None
    history: list[JobEvent] = Field(default_factory=list)
    seq: int = 0
    """The job's place in its tenant's index (the score there; records keep 0): the list's
    cursor."""
    #: SHA-1 of the record as last read or written by this process: what a transition from this
    #: copy expects to replace (:meth:`JobStore.mutate`). Not part of the job.
    _digest: str | None = PrivateAttr(default=None)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_job_id() -> str:
    return str(uuid.uuid4())


def body_fingerprint(operation: str, params: dict[str, Any]) -> str:
    """A stable hash of what was asked, to tell a retried POST from a different one."""
    canonical = json.dumps([operation, params], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class RecordSealer(Protocol):
    """Seals the sensitive parts of a job record (its result, its error's message) for storage."""

    def seal(self, job_id: str, tenant: str, data: bytes) -> str: ...

    def open(self, job_id: str, sealed: str) -> bytes: ...


SEALED = "$sealed"

#: One transition in one round trip: replace the record if it is still the one the change was
#: computed from (its SHA-1), drop the kept relay request when the job ends, move the job
#: between the status counts, and publish the event for waiters. Returns 1 when stored, 0 for
#: an unknown job, -1 when the record changed.
_TRANSITION = """
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
if redis.sha1hex(current) ~= ARGV[1] then return -1 end
redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
if ARGV[3] == '1' then
    redis.call('DEL', KEYS[2])
    redis.call('SREM', KEYS[3], ARGV[6])
end
if ARGV[7] ~= ARGV[8] then
    redis.call('HINCRBY', KEYS[4], ARGV[7], -1)
    redis.call('HINCRBY', KEYS[4], ARGV[8], 1)
end
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
"""


#: A new job in one round trip: its place in the tenant's index, the record, the index entry
#: and, when given, the kept relay request; and the index's entries of records that expired
#: are dropped. The place is Redis's clock in milliseconds x 1000 plus a counter (newest first,
#: unique, and old entries found by time). Returns the place.
_CREATE = """
local seq = redis.call('INCR', KEYS[1])
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local place = string.format('%.0f', ms * 1000 + seq % 1000)
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
redis.call('ZADD', KEYS[3], place, ARGV[3])
redis.call('EXPIRE', KEYS[3], ARGV[2])  -- an idle tenant's index goes with its last record
local expired = string.format('%.0f', (ms - tonumber(ARGV[2]) * 1000) * 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[3], PLACE_FLOOR, '(' .. expired)
if ARGV[4] ~= '' then
    redis.call('SET', KEYS[4], ARGV[4], 'EX', ARGV[2])
    redis.call('SADD', KEYS[5], ARGV[3])
end
redis.call('HINCRBY', KEYS[6], 'queued', 1)
return place
""".replace("PLACE_FLOOR", "'1000000000000'")  # below: places of older nubes (plain counters)


def _sha1(raw: str | bytes) -> str:
    return hashlib.sha1(raw.encode() if isinstance(raw, str) else raw).hexdigest()


class JobStore:
    """Job records in Redis: ``nube:job:<id>`` (JSON) and a per-tenant index for listing.

    With a ``sealer``, a job's result is stored sealed (``{"$sealed": ...}``) and so are its
    error's ``message`` and ``details`` (they may quote parameters or a backend's text): the
    stored ``error`` keeps only ``code``, ``retryable`` and the error's title as ``message``
    readable, next to ``"$sealed"``. Both are opened on read, so Redis never holds an
    operation's arguments, output or error texts readable. History entries never carry a
    message either: a failure's detail is its code.
    """

    def __init__(self, client: redis.Redis, sealer: RecordSealer | None = None) -> None:
        self.redis = client
        self.sealer = sealer
        #: Set by a process that waits for many jobs at once (the API): one subscriber
        #: connection for all its waits instead of one per wait.
        self.waiters: JobWaiters | None = None
        self._adopted_pending = False
        self._transition = client.register_script(_TRANSITION)
        self._create = client.register_script(_CREATE)

    def _dump(self, job: Job) -> str:
        if self.sealer is None or (job.result is None and job.error is None):
            return job.model_dump_json()
        data = job.model_dump(mode="json")
        if job.result is not None:
            plain = json.dumps(data["result"]).encode()
            data["result"] = {SEALED: self.sealer.seal(job.id, job.tenant, plain)}
        if job.error is not None:
            error = data["error"]
            hidden = json.dumps({"message": error["message"], "details": error["details"]})
            data["error"] = {
                "code": error["code"],
                "status": error["status"],
                "message": job.error.label,
                "retryable": error["retryable"],
                SEALED: self.sealer.seal(job.id, job.tenant, hidden.encode()),
            }
        return json.dumps(data)

    def _load(self, raw: str | bytes, *, open_sealed: bool = True) -> Job:
        data = json.loads(raw)
        result = data.get("result")
        if isinstance(result, dict) and SEALED in result:
            data["result"] = json.loads(self._open(data, result[SEALED])) if open_sealed else None
        error = data.get("error")
        title = None
        if isinstance(error, dict) and SEALED in error:
            title = error["message"]
            sealed = error.pop(SEALED)
            hidden = json.loads(self._open(data, sealed)) if open_sealed else {}
            error.update(message=hidden.get("message", title), details=hidden.get("details", {}))
        job = Job.model_validate(data)
        if job.error is not None and title is not None:
            job.error._title = title
        job._digest = _sha1(raw)
        return job

    def _open(self, data: dict[str, Any], sealed: str) -> bytes:
        if self.sealer is None:
            raise ValueError(f"job {data.get('id')} holds sealed fields but no sealer is set")
        return self.sealer.open(data["id"], sealed)

    # --- keys ---------------------------------------------------------------------------------
    @staticmethod
    def key(job_id: str) -> str:
        return f"nube:job:{job_id}"

    @staticmethod
    def channel(job_id: str) -> str:
        return f"nube:job-events:{job_id}"

    @staticmethod
    def index(tenant: str) -> str:
        return f"nube:jobs:{tenant}"

    # --- create and read ----------------------------------------------------------------------
    def create(self, job: Job, request: RelayRequest | None = None) -> Job:
        """Store a new queued job and index it for its tenant (newest first by ``seq``); with
        ``request``, keep it too (:meth:`keep_request`). One round trip."""
        job.history = [JobEvent(event="queued", at=job.submitted_at)]
        dumped = self._dump(job)
        kept = self._sealed_request(job, request) if request is not None else ""
        job.seq = int(
            self._create(
                keys=[
                    "nube:job-seq",
                    self.key(job.id),
                    self.index(job.tenant),
                    self.request_key(job.id),
                    PENDING,
                    STATUS_COUNTS,
                ],
                args=[dumped, JOB_TTL, job.id, kept],
            )
        )
        job._digest = _sha1(dumped)
        return job

    # --- relay requests: what a lost message is published again from --------------------------
    @staticmethod
    def request_key(job_id: str) -> str:
        return f"nube:job-request:{job_id}"

    def keep_request(self, job: Job, request: RelayRequest) -> None:
        """Keep the job's relay request (sealed when a sealer is set) until the job ends."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(self.request_key(job.id), self._sealed_request(job, request), ex=JOB_TTL)
        pipe.sadd(PENDING, job.id)
        pipe.execute()

    def _sealed_request(self, job: Job, request: RelayRequest) -> str:
        raw = request.model_dump_json().encode()
        return self.sealer.seal(job.id, job.tenant, raw) if self.sealer else raw.decode()

    def kept_request(self, job_id: str) -> RelayRequest | None:
        """The relay request kept for a job that has not ended (None once it has)."""
        raw = self.redis.get(self.request_key(job_id))
        if raw is None:
            return None
        text = self.sealer.open(job_id, str(raw)) if self.sealer else str(raw).encode()
        return RelayRequest.model_validate_json(text)

    def pending_ids(self) -> Iterator[str]:
        """Ids of jobs whose relay request is kept: accepted, not yet ended (the set
        :data:`PENDING`, so the reconciler's sweep does not walk every job record)."""
        if not self._adopted_pending:
            self._adopt_pending()
        for job_id in self.redis.sscan_iter(PENDING, count=500):
            yield str(job_id)

    def _adopt_pending(self) -> None:
        """Once per store: add to :data:`PENDING` any kept request made before it existed."""
        prefix = self.request_key("")
        ids = [str(k)[len(prefix) :] for k in self.redis.scan_iter(match=prefix + "*", count=500)]
        if ids:
            self.redis.sadd(PENDING, *ids)
        self._adopted_pending = True

    def discard(self, job: Job) -> None:
        """Remove a job that was never published (its publish failed)."""
        pipe = self.redis.pipeline()
        pipe.delete(self.key(job.id), self.request_key(job.id))
        pipe.zrem(self.index(job.tenant), job.id)
        pipe.srem(PENDING, job.id)
        pipe.hincrby(STATUS_COUNTS, JobStatus.QUEUED.value, -1)
        pipe.execute()

    def status_counts(self) -> dict[str, int]:
        """Jobs by status: queued and running now; the terminal ones, every job that ended
        since the counts began (records expire, the counts stay)."""
        raw = self.redis.hgetall(STATUS_COUNTS)
        counts = {str(k): int(v) for k, v in raw.items()}
        return {status.value: counts.get(status.value, 0) for status in JobStatus}

    def find(self, job_id: str) -> Job | None:
        raw = self.redis.get(self.key(job_id))
        return self._load(raw) if raw else None

    def peek(self, job_id: str) -> Job | None:
        """The job without opening its sealed parts: no result, and an error with its code and
        title only. For readers that need what the job is, not what it returned."""
        raw = self.redis.get(self.key(job_id))
        if not raw:
            return None
        job = self._load(raw, open_sealed=False)
        job._digest = None  # not a copy to transition from: its sealed parts are missing
        return job

    def get(self, job_id: str, tenant: str | None = None) -> Job:
        """The job, or ``NotFound`` (also when it belongs to another tenant)."""
        job = self.find(job_id)
        if job is None or (tenant is not None and job.tenant != tenant):
            raise NotFound(kind="job", id=job_id)
        return job

    def list(
        self,
        tenant: str,
        *,
        status: str | None = None,
        operation: str | None = None,
        limit: int = 50,
        cursor: int | None = None,
    ) -> tuple[list[Job], int | None]:
        """The tenant's jobs newest first; returns the page and the next cursor (or None)."""
        page: list[Job] = []
        for job in self._scan_index(tenant, cursor):
            if (status and job.status != status) or (operation and job.operation != operation):
                continue
            page.append(job)
            if len(page) == limit:
                return page, job.seq
        return page, None

    def _scan_index(self, tenant: str, cursor: int | None) -> Iterator[Job]:
        top: str = f"({cursor}" if cursor else "+inf"
        while True:
            entries: list[tuple[str, float]] = self.redis.zrevrangebyscore(  # type: ignore[assignment]
                self.index(tenant), top, "-inf", start=0, num=100, withscores=True
            )
            if not entries:
                return
            raws = self.redis.mget([self.key(job_id) for job_id, _ in entries])
            for (job_id, score), raw in zip(entries, raws, strict=True):
                if raw is None:
                    self.redis.zrem(self.index(tenant), job_id)  # expired record
                    continue
                job = self._load(raw)
                job.seq = int(score)
                yield job
            top = f"({int(entries[-1][1])}"
            if len(entries) < 100:
                return

    # --- transitions --------------------------------------------------------------------------
    def update(
        self,
        job_id: str,
        event: str,
        detail: str | None = None,
        *,
        base: Job | None = None,
        **changes: Any,
    ) -> Job | None:
        """Apply ``changes`` and record ``event``, atomically; never changes a terminal job.

        Returns the updated job, or None when the job is unknown or already terminal. ``base``:
        see :meth:`mutate`.
        """

        def apply(job: Job) -> str | None:
            for name, value in changes.items():
                setattr(job, name, value)
            return detail

        return self.mutate(job_id, event, apply, base=base)

    def mutate(
        self,
        job_id: str,
        event: str,
        change: Callable[[Job], str | None],
        *,
        base: Job | None = None,
    ) -> Job | None:
        """Run ``change`` on the current record and store it (compare-and-set, one round trip).

        ``change`` edits the job in place and returns the event's detail. Terminal jobs are
        never changed: the result is None for them and for unknown ids. ``base`` is a copy of
        the record this process read or wrote last (a job this store returned): the change is
        computed from it without reading the record again, and stored only if the record is
        still that one; if it changed meanwhile (a cancel, a progress report), the change is
        computed again from the current record.
        """
        job = base.model_copy(deep=True) if base is not None and base._digest else None
        while True:
            if job is None:
                raw = self.redis.get(self.key(job_id))
                if raw is None:
                    return None
                job = self._load(raw)
            if job.status.terminal:
                return None
            was = job.status
            detail = change(job)
            job.history.append(JobEvent(event=event, at=now_iso(), detail=detail))
            dumped = self._dump(job)
            stored = self._transition(
                keys=[self.key(job_id), self.request_key(job_id), PENDING, STATUS_COUNTS],
                args=[
                    job._digest or "",
                    dumped,
                    "1" if job.status.terminal else "0",
                    self.channel(job_id),
                    json.dumps({"event": event, "status": job.status}),
                    job_id,
                    was.value,
                    job.status.value,
                ],
            )
            if stored == 1:
                job._digest = _sha1(dumped)
                return job
            if stored == 0:
                return None
            job = None  # the record changed since it was read: compute the change again

    def mark_running(self, job_id: str, node: str) -> Job | None:
        """Count one more delivery of the job and mark it running on ``node``."""

        def start(job: Job) -> str:
            job.status = JobStatus.RUNNING
            job.started_at = job.started_at or now_iso()
            job.attempts += 1
            job.node = node
            return f"attempt {job.attempts} on {node}"

        return self.mutate(job_id, "running", start)

    def finish(self, job_id: str, result: Any, *, base: Job | None = None) -> Job | None:
        return self.update(
            job_id,
            "succeeded",
            base=base,
            status=JobStatus.SUCCEEDED,
            result=result,
            finished_at=now_iso(),
        )

    def fail(self, job_id: str, error: dict[str, Any], *, base: Job | None = None) -> Job | None:
        """Fail the job with ``error`` (:meth:`NubeError.to_dict`); the history says its code."""
        job_error = JobError.of(error)
        return self.update(
            job_id,
            "failed",
            job_error.code,
            base=base,
            status=JobStatus.FAILED,
            error=job_error,
            finished_at=now_iso(),
        )

    def cancel(self, job_id: str, reason: str = "cancelled by the client") -> Job | None:
        return self.update(
            job_id, "cancelled", reason, status=JobStatus.CANCELLED, finished_at=now_iso()
        )

    def report_progress(self, job_id: str, progress: dict[str, Any]) -> None:
        self.update(job_id, "progress", None, progress=progress)

    # --- waiting ------------------------------------------------------------------------------
    def wait(self, job_id: str, timeout: float) -> Job | None:
        """Block up to ``timeout`` s until the job is terminal; wakes on its channel (through
        the process's shared subscription when :attr:`waiters` is set)."""
        if self.waiters is not None:
            return self.waiters.wait(self, job_id, timeout)
        deadline = time.monotonic() + timeout
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(self.channel(job_id))
            job = self.find(job_id)  # read after subscribing: no completion can slip between
            while job is not None and not job.status.terminal:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                if pubsub.get_message(timeout=min(remaining, 5.0)) is not None:
                    job = self.find(job_id)
            return job
        finally:
            pubsub.close()

    def events(self, job_id: str, timeout: float) -> Iterator[dict[str, Any]]:
        """Yield each event published for the job until it is terminal or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(self.channel(job_id))
            job = self.find(job_id)  # it may have ended before the subscription
            if job is None or job.status.terminal:
                status = job.status if job else JobStatus.CANCELLED
                yield {"event": status.value, "status": status.value}
                return
            while time.monotonic() < deadline:
                message = pubsub.get_message(timeout=min(deadline - time.monotonic(), 5.0))
                if message is None:
                    yield {}  # keep-alive
                    continue
                data = json.loads(message["data"])
                yield data
                if JobStatus(data["status"]).terminal:
                    return
        finally:
            pubsub.close()

    # --- idempotency --------------------------------------------------------------------------
    def claim_idempotency_key(self, tenant: str, key: str, job: Job, fingerprint: str) -> Job:
        """Bind ``key`` to ``job``; if it is bound already, return that job instead.

        The same key with another request body is ``IdempotencyKeyReused`` (422).
        """
        slot = f"nube:idem:{tenant}:{hashlib.sha256(key.encode()).hexdigest()}"
        value = json.dumps({"job": job.id, "fingerprint": fingerprint})
        if self.redis.set(slot, value, nx=True, ex=IDEMPOTENCY_TTL):
            return job
        bound = json.loads(self.redis.get(slot) or value)
        if bound["fingerprint"] != fingerprint:
            raise IdempotencyKeyReused()
        return self.get(bound["job"], tenant)

    def release_idempotency_key(self, tenant: str, key: str) -> None:
        self.redis.delete(f"nube:idem:{tenant}:{hashlib.sha256(key.encode()).hexdigest()}")
