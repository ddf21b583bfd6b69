"""The audit chain's verifier: names the first altered, inserted or deleted record.

It recomputes every record's hash and link (:func:`nube.audit.log.record_hash`), in the Redis
stream (:meth:`nube.audit.log.AuditLog.verify`, which also checks the head key) or in the
JSON-lines mirror (:func:`verify_file`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from nube.audit.log import FIELDS, GENESIS, Entry, file_entries, record_hash


class Problem(StrEnum):
    ALTERED = "altered"
    INSERTED = "inserted"
    DELETED = "deleted"


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of :func:`verify`: ``ok``, or the first problem and the record it names."""

    checked: int
    problem: Problem | None = None
    seq: int | None = None
    entry: str | None = None
    message: str = "chain intact"

    @property
    def ok(self) -> bool:
        return self.problem is None


def verify(
    entries: Iterable[Entry],
    head: tuple[int, str] | None = None,
    anchor: tuple[int, str] | None = None,
) -> VerifyReport:
    """Recompute the chain; name the first altered, inserted or deleted record.

    ``head``: the ``(seq, hash)`` the log should end with (detects deletion at the end).
    ``anchor``: the ``(seq, hash)`` of the newest record trimmed away by the retention: the
    chain starts after it instead of at seq 1.
    """
    items = list(entries)
    prev, expected = GENESIS, 1
    if anchor is not None:
        prev, expected = anchor[1], anchor[0] + 1
        if items and items[0].record is not None and items[0].record.get("seq", 0) < expected:
            items = _after_anchor(items, expected)
    for i, entry in enumerate(items):
        rec = entry.record
        problem = _check_one(items, i, prev, expected)
        if problem is not None:
            return problem
        assert rec is not None
        prev, expected = rec["hash"], rec["seq"] + 1
    return _check_end(len(items), prev, expected, head)


def _after_anchor(items: list[Entry], first: int) -> list[Entry]:
    """The entries from seq ``first`` on: a trim that raced the reading left older ones."""
    for i, entry in enumerate(items):
        if entry.record is None or entry.record.get("seq", 0) >= first:
            return items[i:]
    return []


def _report(kind: Problem, entry: Entry, seq: int | None, msg: str, checked: int) -> VerifyReport:
    return VerifyReport(checked, kind, seq, entry.id, msg)


def _check_one(items: list[Entry], i: int, prev: str, expected: int) -> VerifyReport | None:
    entry, rec = items[i], items[i].record
    if rec is None or not _well_formed(rec):
        return _report(Problem.ALTERED, entry, None, f"entry {entry.id} is not a record", i)
    seq = rec["seq"]
    if record_hash(rec) != rec["hash"]:
        return _report(
            Problem.ALTERED,
            entry,
            seq,
            f"record seq {seq} ({entry.id}) was altered: its hash does not match",
            i,
        )
    if seq == expected and rec["prev"] == prev:
        return None
    if seq > expected:
        missing = f"{expected}" if seq == expected + 1 else f"{expected}..{seq - 1}"
        return _report(
            Problem.DELETED,
            entry,
            expected,
            f"record seq {missing} was deleted (missing before {entry.id})",
            i,
        )
    return _misplaced(items, i, prev, expected)


def _misplaced(items: list[Entry], i: int, prev: str, expected: int) -> VerifyReport:
    """A record with a valid hash that does not link: inserted, or its predecessor altered."""
    entry, rec = items[i], items[i].record
    assert rec is not None
    before = items[i - 1] if i else None
    after = items[i + 1].record if i + 1 < len(items) else None
    if rec["seq"] < expected and before is not None and before.record is not None:
        genuine_here = after is not None and after.get("prev") == rec["hash"]
        if genuine_here and before.record["seq"] == rec["seq"]:
            return _inserted(before, i - 1)
        return _inserted(entry, i)
    if after is not None and after.get("seq") == rec["seq"] and after.get("prev") == prev:
        return _inserted(entry, i)
    if before is None or before.record is None:
        return _inserted(entry, i)
    bseq = before.record["seq"]
    return _report(
        Problem.ALTERED,
        before,
        bseq,
        f"record seq {bseq} ({before.id}) was altered: seq {rec['seq']} links to a different hash",
        i - 1,
    )


def _inserted(entry: Entry, checked: int) -> VerifyReport:
    seq = entry.record.get("seq") if entry.record else None
    return _report(
        Problem.INSERTED,
        entry,
        seq,
        f"record at {entry.id} (claims seq {seq}) was inserted",
        checked,
    )


def _check_end(n: int, prev: str, expected: int, head: tuple[int, str] | None) -> VerifyReport:
    if head is None or head == (expected - 1, prev):
        return VerifyReport(n)
    head_seq, _ = head
    if head_seq > expected - 1:
        missing = f"{expected}" if head_seq == expected else f"{expected}..{head_seq}"
        return VerifyReport(
            n,
            Problem.DELETED,
            expected,
            None,
            f"record seq {missing} was deleted (the head records seq {head_seq})",
        )
    return VerifyReport(
        n,
        Problem.ALTERED,
        expected - 1,
        None,
        f"record seq {expected - 1} does not match the head (seq {head_seq}): "
        "the last record or the head was altered",
    )


def _well_formed(rec: dict[str, Any]) -> bool:
    return (
        isinstance(rec.get("seq"), int)
        and isinstance(rec.get("hash"), str)
        and isinstance(rec.get("prev"), str)
        and all(k in rec for k in FIELDS)
    )


def verify_file(path: Path) -> VerifyReport:
    """Verify the JSON-lines mirror on its own."""
    return verify(file_entries(path))
