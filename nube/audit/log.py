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
import os
import threading
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

#: Append one record if the head is still at the seq it was built on (ARGV[1]); else answer
#: the head as it is, so the caller rebuilds without reading it again. With a cut-off stream id
#: (ARGV[5]), the records older than it are trimmed and the newest of them becomes the anchor
#: (KEYS[3]: its seq, hash and id), which the verifier starts the chain from.
_APPEND = """
local seq = redis.call('HGET', KEYS[1], 'seq') or '0'
if seq ~= ARGV[1] then
    return {0, seq, redis.call('HGET', KEYS[1], 'hash') or ARGV[4]}
end
local id = redis.call('XADD', KEYS[2], '*', 'r', ARGV[2])
redis.call('HSET', KEYS[1], 'seq', tonumber(ARGV[1]) + 1, 'hash', ARGV[3])
if ARGV[5] ~= '' then
    local last = redis.call('XREVRANGE', KEYS[2], '(' .. ARGV[5], '-', 'COUNT', 1)
    if #last > 0 then
        local ok, rec = pcall(cjson.decode, last[1][2][2])
        if ok and type(rec) == 'table' and rec.seq and rec.hash then
            redis.call('HSET', KEYS[3], 'seq', rec.seq, 'hash', rec.hash, 'id', last[1][1])
            redis.call('XTRIM', KEYS[2], 'MINID', ARGV[5])
        end
    end
end
return {1, id}
"""

#: Trimming is tried on every this many appends (when a retention is set).
TRIM_EVERY = 1000

STREAM = "nube:audit"
HEAD = "nube:audit:head"
ANCHOR = "nube:audit:anchor"
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
        retention_s: float = 0,
        anchor: str = ANCHOR,
    ) -> None:
        self.redis = client
        self.mirror = mirror
        self.stream = stream
        self.head = head
        self.anchor = anchor
        #: Records older than this many seconds leave the stream (the mirror keeps every one);
        #: 0 keeps them all.
        self.retention_s = retention_s
        self._clock = clock
        self._append_script = client.register_script(_APPEND)
        self._lock = threading.Lock()
        self._head: tuple[int, str] | None = None

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
                self._mirror_locked(record)
                return record
        except redis.RedisError as e:
            raise AuditUnavailable(why=str(e)) from e

    def _append(self, event: AuditEvent) -> dict[str, Any]:
        """Chain ``event`` after the head this process saw last, in one round trip when no
        other appender came between (:data:`_APPEND`); otherwise after the head the script
        answers with. Appends of one process are serialized (threads share the cached head)."""
        with self._lock:
            seq, prev = self._head if self._head is not None else self.head_state()
            while True:
                record = build_record(event, seq + 1, prev, _now_iso(self._clock))
                done, *rest = self._append_script(
                    keys=[self.head, self.stream, self.anchor],
                    args=[seq, canonical(record), record["hash"], GENESIS, self._cutoff(seq + 1)],
                )
                if done == 1:
                    self._head = (seq + 1, record["hash"])
                    return {**record, "id": _s(rest[0])}
                seq, prev = int(rest[0]), _s(rest[1])  # another appender came first

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

    def _cutoff(self, seq: int) -> str:
        """The stream id before which records are trimmed with the append of ``seq`` (every
        :data:`TRIM_EVERY` appends, when a retention is set), or ``""``."""
        if not self.retention_s or seq % TRIM_EVERY:
            return ""
        return f"{max(0, int((self._clock() - self.retention_s) * 1000))}-0"

    def anchor_state(self) -> tuple[int, str] | None:
        """``(seq, hash)`` of the newest record trimmed away, or None if none was."""
        raw = self.redis.hgetall(self.anchor)
        return _head_of(raw) if raw else None

    def head_state(self) -> tuple[int, str]:
        """``(seq, hash)`` of the last record according to the head key."""
        return _head_of(self.redis.hgetall(self.head))

    def verify(self) -> VerifyReport:
        """Verify the stream's chain and that it ends where the head key says."""
        from nube.audit.verifier import verify  # the verifier builds on this module's chain

        head = self.head_state()
        entries = list(self.entries())
        # the anchor after the entries: a trim in between leaves entries the anchor now covers,
        # which the verifier skips (read before, it would show them as deleted)
        return verify(entries, head=head, anchor=self.anchor_state())

    def sync_mirror(self) -> int:
        """Append to the mirror every record it lacks; return how many were written."""
        if self.mirror is None:
            return 0
        with _locked(self.mirror):
            return self._sync_mirror_locked()

    def _sync_mirror_locked(self) -> int:
        assert self.mirror is not None
        last_seq, last_id = _last_mirrored(self.mirror)
        start = f"({last_id}" if last_id else "-"
        lines = [
            canonical({**e.record, "id": e.id}).decode() + "\n"
            for e in self.entries(start)
            if e.record is not None
            and isinstance(e.record.get("seq"), int)
            and e.record["seq"] > last_seq
        ]
        with self.mirror.open("a") as f:
            f.writelines(lines)
        return len(lines)

    def _mirror_locked(self, record: dict[str, Any]) -> None:
        """Mirror the record just appended: straight after the mirror's last line when it is
        its predecessor, else by a sync of everything the mirror lacks."""
        assert self.mirror is not None
        last_seq, _ = _last_mirrored(self.mirror)
        if last_seq == record["seq"] - 1:
            with self.mirror.open("a") as f:
                f.write(canonical(record).decode() + "\n")
        else:
            self._sync_mirror_locked()


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


def _last_mirrored(path: Path) -> tuple[int, str | None]:
    """The seq and stream entry id of the mirror's last record, read from the file's end;
    (0, None) for an empty or missing mirror. A last line that is not a record reads the whole
    file for the highest seq (and no id: the stream is then read from its start)."""
    if not path.exists():
        return 0, None
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        end = f.tell()
        f.seek(max(0, end - _TAIL_BYTES))
        tail = f.read().splitlines()
    lines = [line for line in tail if line.strip()]
    whole = end <= _TAIL_BYTES or len(lines) > 1  # else the last line may be cut at its start
    last = _json_object(lines[-1]) if lines and whole else None
    if last is not None and isinstance(last.get("seq"), int) and isinstance(last.get("id"), str):
        return last["seq"], last["id"]
    if not lines:
        return 0, None
    highest = 0
    for entry in file_entries(path):
        if entry.record is not None and isinstance(entry.record.get("seq"), int):
            highest = max(highest, entry.record["seq"])
    return highest, None


_TAIL_BYTES = 64 * 1024


def _json_object(line: bytes) -> dict[str, Any] | None:
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def file_entries(path: Path) -> Iterator[Entry]:
    """The mirror's records, each with ``line N`` as its id."""
    with path.open() as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                yield Entry.parse(f"line {n}", line)
