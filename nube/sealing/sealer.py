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

import base64
import binascii
import hashlib
import hmac
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
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


@dataclass(frozen=True)
class Header:
    """The authenticated, readable part of an envelope."""

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
        # not dataclasses.asdict: its deepcopy is most of the cost of sealing a small message
        return {name: getattr(self, name) for name in _HEADER_FIELDS}

    def aad(self) -> bytes:
        """Canonical bytes of the header: the GCM associated data / HMAC prefix."""
        return _canonical(self.as_dict())


_HEADER_FIELDS = ("v", "alg", "kid", "ts", "nonce", "task", "job", "tenant")


@dataclass(frozen=True)
class Opened:
    """An authenticated envelope: its header and the plaintext serialized body."""

    header: Header
    body: bytes


def _canonical(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _b64d(text: str) -> bytes:
    """Strict base64url: the text must be the canonical encoding of what it decodes to."""
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64e(raw) != text:
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
        alg = Alg.A256GCM if self.mode is Mode.ACTIVE else Alg.HS256
        nonce = os.urandom(NONCE_BYTES)
        header = Header(
            VERSION,
            alg.value,
            key.kid,
            int(self._clock() * 1000),
            _b64e(nonce),
            binding.task,
            binding.job,
            binding.tenant,
        )
        out: dict[str, Any] = header.as_dict()
        if alg is Alg.A256GCM:
            out["ct"] = _b64e(AESGCM(key.secret).encrypt(nonce, body, header.aad()))
        else:
            out["body"] = body.decode("utf-8")
            out["sig"] = _mac(key, header.aad(), body)
        return _canonical(out)

    def open(self, data: bytes | str) -> Opened:
        """Authenticate and decrypt an envelope; raise an ``EnvelopeError`` leaf if it fails."""
        raw = parse_envelope(data)
        header = _header_of(raw)
        key = self.keyring.get(header.kid)
        if key is None:
            raise KeyUnknown(kid=header.kid, known=", ".join(self.keyring.kids))
        if header.alg == Alg.A256GCM.value:
            return Opened(header, _decrypt(key, header, raw.get("ct")))
        if self.mode is not Mode.PASSIVE:
            raise ModeNotAllowed(alg=header.alg, **header_ids(header))
        return Opened(header, _verify_mac(key, header, raw))


def header_ids(header: Header) -> dict[str, str]:
    """What names a message in an error's details: key id, task, job, tenant (never the body)."""
    return {"kid": header.kid, "task": header.task, "job": header.job, "tenant": header.tenant}


def _decrypt(key: Key, header: Header, ct: object) -> bytes:
    if not isinstance(ct, str):
        raise MessageNotSealed(why="no ciphertext")
    try:
        nonce, data = _b64d(header.nonce), _b64d(ct)
        return AESGCM(key.secret).decrypt(nonce, data, header.aad())
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
    if not isinstance(raw, dict) or raw.get("v") != VERSION:
        raise MessageNotSealed(why="no envelope version")
    extra = set(raw) - _ENVELOPE_FIELDS
    if extra:
        raise MessageNotSealed(why=f"unknown field(s) {', '.join(sorted(extra))}")
    return raw


_ENVELOPE_FIELDS = {*_HEADER_FIELDS, "ct", "body", "sig"}


def _header_of(raw: dict[str, Any]) -> Header:
    try:
        header = Header(**{name: raw[name] for name in _HEADER_FIELDS})
    except KeyError as e:
        raise MessageNotSealed(why=f"missing header field {e.args[0]}") from None
    text_fields = ("alg", "kid", "nonce", "task", "job", "tenant")
    types_ok = isinstance(header.ts, int) and all(
        isinstance(getattr(header, f), str) for f in text_fields
    )
    if not types_ok or header.alg not in {a.value for a in Alg}:
        raise MessageNotSealed(why="malformed header")
    return header


def peek_header(data: bytes | str) -> Header | None:
    """The readable header of an envelope, *unauthenticated* (for audit of refusals only)."""
    try:
        return _header_of(parse_envelope(data))
    except MessageNotSealed:
        return None
