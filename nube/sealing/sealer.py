"""The sealed envelope: AES-256-GCM over serialized bytes.

Wire format (one compact JSON object, ASCII)::

    {"v": 1, "alg": "A256GCM", "kid": "k2026...", "ts": 1767348900123,
     "nonce": "<12 bytes, base64url>", "task": "containers.run", "job": "<job id>",
     "tenant": "acme", "ct": "<ciphertext + 16-byte tag, base64url>"}

Every field but ``ct`` is the *header*. The header, canonically encoded (sorted keys, no
spaces), is the GCM associated data, so changing any of it (task name, job id, tenant,
timestamp, key id) breaks authentication exactly like changing the ciphertext. ``ts`` is the
sealing time in Unix milliseconds. The nonce is 96 random bits per message and doubles as the
message's identity for the replay guard.

Passive mode (``alg: "HS256"``) carries the body readable in ``body`` and an HMAC-SHA256 in
``sig`` over the same associated data and the body, with a MAC key derived from the keyring key
by HKDF; it is for debugging only, and an active-mode opener refuses it.

Checks happen in this order: format → key id → authentication → (caller) binding → replay
guard (:mod:`nube.sealing.replay`), so nothing unauthenticated ever reaches the nonce store.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from json.encoder import encode_basestring_ascii as _json_str
from typing import Any, NamedTuple, cast

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from nube.errors import KeyUnknown, MessageNotSealed, MessageTampered, ModeNotAllowed
from nube.sealing.keyring import Key, Keyring

VERSION = 1
NONCE_BYTES = 12
_HMAC_INFO = b"nube passive-mode hmac v1"

Clock = Callable[[], float]


class Mode(StrEnum):
    """``active`` seals (encrypts); ``passive`` only signs, for debugging."""

    ACTIVE = "active"
    PASSIVE = "passive"


class Alg(StrEnum):
    A256GCM = "A256GCM"
    HS256 = "HS256"


@dataclass(frozen=True)
class Binding:
    """What a sealed message is bound to: its Celery task name, its job and its tenant."""

    task: str
    job: str
    tenant: str

    def as_dict(self) -> dict[str, str]:
        return {"task": self.task, "job": self.job, "tenant": self.tenant}


class Header(NamedTuple):
    """The authenticated, readable part of an envelope (a tuple: cheap to build per message)."""

    v: int
    alg: str
    kid: str
    ts: int
    nonce: str
    task: str
    job: str
    tenant: str

    @property
    def binding(self) -> Binding:
        return Binding(self.task, self.job, self.tenant)

    def as_dict(self) -> dict[str, Any]:
        return dict(zip(_HEADER_FIELDS, self, strict=True))

    def aad(self) -> bytes:
        """Canonical bytes of the header: the GCM associated data / HMAC prefix."""
        try:
            return _aad(self.alg, _tail(*self)).encode("ascii")
        except TypeError:  # not plain str/int fields (e.g. a bool ``ts``): the generic encoder
            return _canonical(self.as_dict())


_HEADER_FIELDS = Header._fields


class Opened(NamedTuple):
    """An authenticated envelope: its header and the plaintext serialized body."""

    header: Header
    body: bytes


def _canonical(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


# The canonical header is built by formatting, not by json.dumps(sort_keys=True): the key order
# is fixed (alg, [ct,] job, kid, nonce, task, tenant, ts, v) and each string goes through the
# same escaping function json uses for ensure_ascii; tests/sealing check the two agree byte for
# byte. Only exact ints take the fast path: json writes a bool as true/false, not 1/0.


def _tail(v: int, alg: str, kid: str, ts: int, nonce: str, task: str, job: str, tenant: str) -> str:
    """The canonical header after ``alg``: ``"job":...,"v":1}`` (TypeError if not str/int)."""
    if type(ts) is not int or type(v) is not int:
        raise TypeError("not an int")
    return (
        f'"job":{_json_str(job)},"kid":{_json_str(kid)},"nonce":{_json_str(nonce)},'
        f'"task":{_json_str(task)},"tenant":{_json_str(tenant)},"ts":{ts},"v":{v}}}'
    )


def _aad(alg: str, tail: str) -> str:
    return f'{{"alg":{_json_str(alg)},{tail}'


_PAD = (b"", b"", b"==", b"=")
_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_CANONICAL_LAST: tuple[frozenset[int], ...] = (
    frozenset(_B64_ALPHABET),
    frozenset(),
    frozenset(_B64_ALPHABET[::16]),
    frozenset(_B64_ALPHABET[::4]),
)
"""Allowed last characters by ``len % 4``: a canonical encoding's unused low bits are zero."""


def _b64e(raw: bytes) -> str:
    return _b64e_bytes(raw).decode()


def _b64e_bytes(raw: bytes) -> bytes:
    # two replaces (memchr and memcpy) cost half of one bytes.translate
    std = binascii.b2a_base64(raw, newline=False)
    return std.replace(b"+", b"-").replace(b"/", b"_").rstrip(b"=")


def _b64d(text: str) -> bytes:
    """Strict base64url: the text must be the canonical encoding of what it decodes to."""
    return _b64d_bytes(text.encode("ascii"))  # UnicodeEncodeError is a ValueError


def _b64d_bytes(data: bytes) -> bytes:
    # Strict decoding refuses any character outside the standard alphabet; + and / are refused
    # here (they are not base64url), and = anywhere is refused as padding in the wrong place or
    # by the last-character check.
    if b"+" in data or b"/" in data:
        raise ValueError("not base64url")
    tail = len(data) % 4
    std = data.replace(b"-", b"+").replace(b"_", b"/") + _PAD[tail]
    raw = binascii.a2b_base64(std, strict_mode=True)
    if data and data[-1] not in _CANONICAL_LAST[tail]:
        raise ValueError("non-canonical base64")
    return raw


def _mac_key(key: Key) -> bytes:
    """A separate MAC key per keyring key, so one key is never used by two algorithms."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HMAC_INFO)
    return hkdf.derive(key.secret)


def _mac(key: Key, aad: bytes, body: bytes) -> str:
    return _b64e(hmac.new(_mac_key(key), aad + b"\n" + body, hashlib.sha256).digest())


class Sealer:
    """Seals and opens serialized bodies with a keyring.

    Guarantees: :meth:`open` returns only bodies authenticated by a key in the keyring, under
    the exact header they were sealed with; anything else raises an
    :class:`~nube.errors.EnvelopeError` leaf. It checks no freshness: see
    :class:`~nube.sealing.replay.ReplayGuard`.
    """

    def __init__(self, keyring: Keyring, mode: Mode = Mode.ACTIVE, clock: Clock = time.time):
        self.keyring = keyring
        self.mode = Mode(mode)
        self._clock = clock

    def seal(self, body: bytes, binding: Binding) -> bytes:
        """The envelope of ``body``, sealed with the keyring's current key."""
        key = self.keyring.current
        active = self.mode is Mode.ACTIVE
        nonce = os.urandom(NONCE_BYTES)
        header = Header(
            VERSION,
            _A256GCM if active else _HS256,
            key.kid,
            int(self._clock() * 1000),
            _b64e(nonce),
            binding.task,
            binding.job,
            binding.tenant,
        )
        if not active:
            signed = {"body": body.decode("utf-8"), "sig": _mac(key, header.aad(), body)}
            return _canonical({**header.as_dict(), **signed})
        try:
            tail = _tail(*header).encode("ascii")
        except TypeError:
            ct = _b64e(key.cipher.encrypt(nonce, body, header.aad()))
            return _canonical({**header.as_dict(), "ct": ct})
        ct_bytes = key.cipher.encrypt(nonce, body, _ACTIVE_AAD_HEAD + tail)
        ct_text = _b64e_bytes(ct_bytes)
        return b"".join((_ACTIVE_ENVELOPE_HEAD, ct_text, b'",', tail))

    def open(self, data: bytes | str) -> Opened:
        """Authenticate and decrypt an envelope; raise an ``EnvelopeError`` leaf if it fails."""
        split = _split_active(data)
        if split is None:
            raw = parse_envelope(data)
            ct: object = raw.get("ct")
        else:
            raw, ct = split
            _check_envelope(raw)
        header = _header_of(raw)
        key = self.keyring.get(header.kid)
        if key is None:
            raise KeyUnknown(kid=header.kid, known=", ".join(self.keyring.kids))
        if header.alg == _A256GCM:
            return Opened(header, _decrypt(key, header, ct))
        if self.mode is not Mode.PASSIVE:
            raise ModeNotAllowed(alg=header.alg, **header_ids(header))
        return Opened(header, _verify_mac(key, header, raw))


_A256GCM = Alg.A256GCM.value
_HS256 = Alg.HS256.value
_ACTIVE_AAD_HEAD = b'{"alg":"A256GCM",'
_ACTIVE_ENVELOPE_HEAD = b'{"alg":"A256GCM","ct":"'
_ACTIVE_ENVELOPE_HEAD_TEXT = _ACTIVE_ENVELOPE_HEAD.decode()
_scan_json: Callable[[str, int], tuple[Any, int]] = cast(Any, json.JSONDecoder()).scan_once
"""The scanner behind ``json.loads`` (same defaults), without its per-call Python overhead."""
_JSON_WHITESPACE = " \t\n\r"


def header_ids(header: Header) -> dict[str, str]:
    """What names a message in an error's details: key id, task, job, tenant (never the body)."""
    return {"kid": header.kid, "task": header.task, "job": header.job, "tenant": header.tenant}


def _decrypt(key: Key, header: Header, ct: object) -> bytes:
    """The plaintext; ``ct`` is the ciphertext's text, or its bytes if already decoded."""
    if not isinstance(ct, (str, bytes)):
        raise MessageNotSealed(why="no ciphertext")
    try:
        nonce = _b64d(header.nonce)
        data = ct if isinstance(ct, bytes) else _b64d(ct)
        return key.cipher.decrypt(nonce, data, header.aad())
    except (InvalidTag, binascii.Error, ValueError):
        raise MessageTampered(**header_ids(header)) from None


def _verify_mac(key: Key, header: Header, raw: dict[str, Any]) -> bytes:
    body, sig = raw.get("body"), raw.get("sig")
    if not isinstance(body, str) or not isinstance(sig, str):
        raise MessageNotSealed(why="no signed body")
    body_bytes = body.encode("utf-8")
    if not hmac.compare_digest(_mac(key, header.aad(), body_bytes), sig):
        raise MessageTampered(**header_ids(header))
    return body_bytes


def parse_envelope(data: bytes | str) -> dict[str, Any]:
    """The envelope's JSON object, or :class:`MessageNotSealed` if it is not one."""
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise MessageNotSealed(why="not JSON") from None
    _check_envelope(raw)
    return raw


def _check_envelope(raw: object) -> None:
    if not isinstance(raw, dict) or raw.get("v") != VERSION:
        raise MessageNotSealed(why="no envelope version")
    if not raw.keys() <= _ENVELOPE_FIELDS:
        extra = sorted(set(raw) - _ENVELOPE_FIELDS)
        raise MessageNotSealed(why=f"unknown field(s) {', '.join(extra)}")


def _split_active(data: bytes | str) -> tuple[dict[str, Any], bytes] | None:
    """``(json.loads(data) without "ct", ct decoded)`` for an envelope in the form ``seal``
    writes, without running the JSON scanner over the ciphertext; ``None`` for anything else
    (then :func:`parse_envelope` reads it, with the same result or refusal).

    The envelope must start ``{"alg":"A256GCM","ct":"``, its ciphertext text run to the first
    ``"`` and be strict base64url (so it holds no quote, backslash or control character: the
    JSON string means its text), followed by ``,`` and the other members. Then the JSON object
    is those two members and the members of ``{`` + the rest, provided the rest repeats neither.
    """
    if isinstance(data, bytes):
        if not data.startswith(_ACTIVE_ENVELOPE_HEAD):
            return None
        text = data
    elif data.startswith(_ACTIVE_ENVELOPE_HEAD_TEXT) and data.isascii():
        text = data.encode("ascii")
    else:
        return None
    start = len(_ACTIVE_ENVELOPE_HEAD)
    quote = text.find(b'"', start)
    if quote < 0 or text[quote + 1 : quote + 2] != b",":
        return None
    try:
        ct = _b64d_bytes(text[start:quote])
        # json.loads(bytes) reads UTF-8 (the envelope starts '{"') with surrogatepass; the cut
        # is at an ASCII byte, so it falls between characters
        members = "{" + text[quote + 2 :].decode("utf-8", "surrogatepass")
        # json.loads is this scan plus checks that only whitespace follows
        rest, end = _scan_json(members, 0)
    except (ValueError, StopIteration):  # binascii.Error, JSONDecodeError, UnicodeDecodeError
        return None
    if end != len(members) and members[end:].strip(_JSON_WHITESPACE):
        return None
    if not isinstance(rest, dict) or not rest or "alg" in rest or "ct" in rest:
        return None
    rest["alg"] = _A256GCM
    return rest, ct


_ENVELOPE_FIELDS = frozenset({*_HEADER_FIELDS, "ct", "body", "sig"})
_ALGS = frozenset(a.value for a in Alg)


def _header_of(raw: dict[str, Any]) -> Header:
    try:
        header = Header(
            raw["v"],
            raw["alg"],
            raw["kid"],
            raw["ts"],
            raw["nonce"],
            raw["task"],
            raw["job"],
            raw["tenant"],
        )
    except KeyError as e:
        raise MessageNotSealed(why=f"missing header field {e.args[0]}") from None
    _, alg, kid, ts, nonce, task, job, tenant = header
    if not (
        isinstance(ts, int)
        and isinstance(alg, str)
        and isinstance(kid, str)
        and isinstance(nonce, str)
        and isinstance(task, str)
        and isinstance(job, str)
        and isinstance(tenant, str)
        and alg in _ALGS
    ):
        raise MessageNotSealed(why="malformed header")
    return header


def peek_header(data: bytes | str) -> Header | None:
    """The readable header of an envelope, *unauthenticated* (for audit of refusals only)."""
    try:
        return _header_of(parse_envelope(data))
    except MessageNotSealed:
        return None
