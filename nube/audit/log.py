"""The tamper-evident audit log: a hash chain in a Redis stream, mirrored as JSON lines.

Each record holds a sequence number ``seq`` (1, 2, 3 ...), the ``hash`` of the previous record
(``prev``; 64 zeros for the first) and its own ``hash``: SHA-256 of the record's canonical JSON
without ``hash``. Appends are serialized with WATCH/MULTI on a head key (``nube:audit:head``,
holding the last seq and hash), so any number of appenders (API, agent, workers) extend one
chain. The JSON-lines mirror is written in ``seq`` order by whichever appender has it
configured, under a file lock; it is an independent copy to verify against.

The verifier (:mod:`nube.audit.verifier`) recomputes the chain and names the first altered,
inserted or deleted record.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis

from nube.errors import AuditUnavailable

if TYPE_CHECKING:
    from nube.audit.verifier import VerifyReport

STREAM = "nube:audit"
HEAD = "nube:audit:head"
GENESIS = "0" * 64
FIELDS = (
    "seq",
    "time",
    "tenant",
    "token_id",
    "operation",
    "target",
    "job_id",
    "decision",
    "outcome",
    "actor",
    "detail",
    "prev",
)


class Decision(StrEnum):
    ACCEPTED = "accepted"
    DENIED = "denied"
    REFUSED = "refused"
    NONE = "-"


@dataclass(frozen=True)
class AuditEvent:
    """What happened; :meth:`AuditLog.append` adds seq, time and the chain."""

    operation: str
    outcome: str
    """``requested``, ``routed``, ``started``, ``succeeded``, ``failed``, ``retried``,
    ``revoked``, ``refused``, ``denied`` ..."""
    tenant: str | None = None
    job_id: str | None = None
    decision: str = Decision.NONE.value
    token_id: str | None = None
    target: str | None = None
    actor: str | None = None
    """Which service wrote it (``api``, ``agent``, ``worker``)."""
    detail: dict[str, Any] = field(default_factory=dict)
    """Rule, reason, error code: never argument values or secrets."""


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def record_hash(record: dict[str, Any]) -> str:
    """SHA-256 over the canonical JSON of every field but ``hash``."""
    return hashlib.sha256(canonical({k: v for k, v in record.items() if k != "hash"})).hexdigest()


def _now_iso(clock: Callable[[], float]) -> str:
    return (
        datetime.fromtimestamp(clock(), UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def build_record(event: AuditEvent, seq: int, prev: str, when: str) -> dict[str, Any]:
    """The full record for ``event`` at position ``seq`` after a record hashed ``prev``."""
    record: dict[str, Any] = {
        "seq": seq,
        "time": when,
        "tenant": event.tenant,
        "token_id": event.token_id,
        "operation": event.operation,
        "target": event.target,
        "job_id": event.job_id,
        "decision": event.decision,
        "outcome": event.outcome,
        "actor": event.actor,
        "detail": event.detail,
        "prev": prev,
    }
    record["hash"] = record_hash(record)
    return record


@dataclass(frozen=True)
class Query:
    """Filters of ``GET /v1/audit``; times are Unix seconds, ``after`` a stream entry id."""

    tenant: str | None = None
    job_id: str | None = None
    operation: str | None = None
    since: float | None = None
    until: float | None = None
    limit: int = 100
    after: str | None = None

    def matches(self, rec: dict[str, Any]) -> bool:
        return all(
            want is None or rec.get(name) == want
            for name, want in (
                ("tenant", self.tenant),
                ("job_id", self.job_id),
                ("operation", self.operation),
            )
        )


class AuditLog:
    """Appends to and reads the chained audit stream."""

    def __init__(
        self,
        client: redis.Redis,
        mirror: Path | None = None,
        stream: str = STREAM,
        head: str = HEAD,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = client
        self.mirror = mirror
        self.stream = stream
        self.head = head
        self._clock = clock

    def append(self, event: AuditEvent) -> dict[str, Any]:
        """Append one record after the current head; return it (with ``id``, its entry id).

        Guarantee: when this returns, the record is in the stream and the head points at it;
        ``AuditUnavailable`` if Redis could not be written.
        """
        try:
            if self.mirror is None:
                return self._append(event)
            with _locked(self.mirror):
                record = self._append(event)
                self._sync_mirror_locked()
                return record
        except redis.RedisError as e:
            raise AuditUnavailable(why=str(e)) from e

    def _append(self, event: AuditEvent) -> dict[str, Any]:
        with self.redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(self.head)
                    seq, prev = _head_of(pipe.hgetall(self.head))
                    record = build_record(event, seq + 1, prev, _now_iso(self._clock))
                    pipe.multi()
                    pipe.xadd(self.stream, {"r": canonical(record)})
                    pipe.hset(self.head, mapping={"seq": seq + 1, "hash": record["hash"]})
                    entry_id, _ = pipe.execute()
                    return {**record, "id": _s(entry_id)}
                except redis.WatchError:
                    continue

    def entries(self, start: str = "-", end: str = "+", page: int = 500) -> Iterator[Entry]:
        """Every stream entry from ``start`` to ``end``, in order, as :class:`Entry`."""
        while True:
            batch: list[Any] = self.redis.xrange(self.stream, start, end, count=page) or []
            for entry_id, fields in batch:
                fields = {_s(k): v for k, v in (fields or {}).items()}  # bytes or str clients
                yield Entry.parse(_s(entry_id), fields.get("r", b""))
            if len(batch) < page:
                return
            start = "(" + _s(batch[-1][0])

    def query(self, q: Query) -> tuple[list[dict[str, Any]], str | None]:
        """Matching records, oldest first, at most ``q.limit``; and the cursor for the next page."""
        start = f"({q.after}" if q.after else (_stream_ms(q.since) if q.since else "-")
        end = _stream_ms(q.until) if q.until else "+"
        out: list[dict[str, Any]] = []
        for entry in self.entries(start, end):
            if entry.record is not None and q.matches(entry.record):
                out.append({**entry.record, "id": entry.id})
                if len(out) >= q.limit:
                    return out, entry.id
        return out, None

    def head_state(self) -> tuple[int, str]:
        """``(seq, hash)`` of the last record according to the head key."""
        return _head_of(self.redis.hgetall(self.head))

    def verify(self) -> VerifyReport:
        """Verify the stream's chain and that it ends where the head key says."""
        from nube.audit.verifier import verify  # the verifier builds on this module's chain

        return verify(self.entries(), head=self.head_state())

    def sync_mirror(self) -> int:
        """Append to the mirror every record it lacks; return how many were written."""
        if self.mirror is None:
            return 0
        with _locked(self.mirror):
            return self._sync_mirror_locked()

    def _sync_mirror_locked(self) -> int:
        assert self.mirror is not None
        last = _last_seq(self.mirror)
        lines = [
            canonical({**e.record, "id": e.id}).decode() + "\n"
            for e in self.entries()
            if e.record is not None
            and isinstance(e.record.get("seq"), int)
            and e.record["seq"] > last
        ]
        with self.mirror.open("a") as f:
            f.writelines(lines)
        return len(lines)


@dataclass(frozen=True)
class Entry:
    """One stored record and where it is (stream entry id, or ``line N`` of the mirror)."""

    id: str
    record: dict[str, Any] | None
    """``None`` if the stored bytes are not a JSON object."""

    @classmethod
    def parse(cls, entry_id: str, raw: bytes | str) -> Entry:
        try:
            rec = json.loads(raw)
        except ValueError:
            return cls(entry_id, None)
        if isinstance(rec, dict):
            rec.pop("id", None)
            return cls(entry_id, rec)
        return cls(entry_id, None)


def _stream_ms(when: float) -> str:
    """A stream id bound for a Unix time (ids are milliseconds, never negative)."""
    return str(max(0, int(when * 1000)))


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _head_of(raw: dict[Any, Any]) -> tuple[int, str]:
    if not raw:
        return 0, GENESIS
    fields = {_s(k): _s(v) for k, v in raw.items()}
    return int(fields["seq"]), fields["hash"]


class _locked:
    """An exclusive ``flock`` on ``<path>.lock`` (one mirror writer at a time per host)."""

    def __init__(self, path: Path) -> None:
        self._path = path.with_name(path.name + ".lock")

    def __enter__(self) -> None:
        self._f = self._path.open("a")
        fcntl.flock(self._f, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._f, fcntl.LOCK_UN)
        self._f.close()


def _last_seq(path: Path) -> int:
    last = 0
    if path.exists():
        for entry in file_entries(path):
            if entry.record is not None and isinstance(entry.record.get("seq"), int):
                last = max(last, entry.record["seq"])
    return last


def file_entries(path: Path) -> Iterator[Entry]:
    """The mirror's records, each with ``line N`` as its id."""
    with path.open() as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                yield Entry.parse(f"line {n}", line)
