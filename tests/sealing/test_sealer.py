"""Seal/open, tamper, unknown key, rotation, replay window and nonce record, passive mode."""

from __future__ import annotations

import json

import pytest
import redis

from nube.errors import (
    EnvelopeError,
    KeyUnknown,
    MessageExpired,
    MessageNotSealed,
    MessageReplayed,
    MessageTampered,
    ModeNotAllowed,
)
from nube.sealing.keyring import Keyring, drop, generate_key, rotate
from nube.sealing.replay import MemoryNonceStore, RedisNonceStore, ReplayGuard
from nube.sealing.sealer import Binding, Mode, Sealer, parse_envelope

BIND = Binding("containers.run", "job-1", "acme")
SECRET = b'{"env": {"TOKEN": "marker-7f3a9"}}'


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_round_trip_and_ciphertext_hides_body(ring: Keyring) -> None:
    sealer = Sealer(ring)
    sealed = sealer.seal(SECRET, BIND)
    assert b"marker-7f3a9" not in sealed
    opened = sealer.open(sealed)
    assert opened.body == SECRET
    assert opened.header.binding == BIND
    assert opened.header.kid == "k2"


def test_every_single_byte_flip_is_refused(ring: Keyring) -> None:
    sealer = Sealer(ring)
    sealed = sealer.seal(SECRET, BIND)
    for i in range(len(sealed)):
        flipped = bytearray(sealed)
        flipped[i] ^= 0x01
        with pytest.raises(EnvelopeError):
            sealer.open(bytes(flipped))


@pytest.mark.parametrize(
    "field, value", [("task", "vms.delete"), ("job", "job-2"), ("tenant", "evil"), ("ts", 1)]
)
def test_header_edit_breaks_authentication(ring: Keyring, field: str, value: object) -> None:
    sealer = Sealer(ring)
    raw = parse_envelope(sealer.seal(SECRET, BIND))
    raw[field] = value
    with pytest.raises(MessageTampered) as e:
        sealer.open(json.dumps(raw))
    assert e.value.to_dict()["details"]["reason"] == "tampered"


def test_ciphertext_byte_flip_is_tamper(ring: Keyring) -> None:
    sealer = Sealer(ring)
    raw = parse_envelope(sealer.seal(SECRET, BIND))
    ct = raw["ct"]
    raw["ct"] = ("B" if ct[3] == "A" else "A").join([ct[:3], ct[4:]])
    with pytest.raises(MessageTampered):
        sealer.open(json.dumps(raw))


@pytest.mark.parametrize(
    "data", [b'{"args": [], "kwargs": {}}', b"\x80\x04K\x01.", b"", b"[]", b'{"v": 1}']
)
def test_plaintext_pickle_and_junk_are_not_sealed(ring: Keyring, data: bytes) -> None:
    with pytest.raises(MessageNotSealed):
        Sealer(ring).open(data)


def test_foreign_key_is_unknown_kid(ring: Keyring) -> None:
    foreign = Sealer(Keyring([generate_key("zz")])).seal(SECRET, BIND)
    with pytest.raises(KeyUnknown, match=r"'zz'.*not in the keyring"):
        Sealer(ring).open(foreign)


def test_same_kid_different_key_is_tamper(ring: Keyring) -> None:
    impostor = Sealer(Keyring([generate_key("k2")])).seal(SECRET, BIND)
    with pytest.raises(MessageTampered):
        Sealer(ring).open(impostor)


def test_rotation_old_messages_open_until_the_old_key_is_dropped() -> None:
    old = Keyring([generate_key("k1")])
    in_flight = Sealer(old).seal(SECRET, BIND)
    both = rotate(old, kid="k2")
    assert Sealer(both).open(in_flight).body == SECRET
    assert Sealer(both).open(Sealer(both).seal(SECRET, BIND)).header.kid == "k2"
    with pytest.raises(KeyUnknown) as e:
        Sealer(drop(both, "k1")).open(in_flight)
    assert "k1" in e.value.message and "decrypt" in e.value.message


def test_passive_mode_is_readable_signed_and_refused_by_active(ring: Keyring) -> None:
    passive = Sealer(ring, Mode.PASSIVE)
    signed = passive.seal(SECRET, BIND)
    assert b"marker-7f3a9" in signed
    assert passive.open(signed).body == SECRET
    with pytest.raises(ModeNotAllowed):
        Sealer(ring).open(signed)
    raw = parse_envelope(signed)
    raw["body"] = raw["body"].replace("marker", "market")
    with pytest.raises(MessageTampered):
        passive.open(json.dumps(raw))


def test_passive_opener_accepts_sealed(ring: Keyring) -> None:
    assert Sealer(ring, Mode.PASSIVE).open(Sealer(ring).seal(SECRET, BIND)).body == SECRET


# --- replay guard ------------------------------------------------------------------------------


def _guarded(ring: Keyring, clock: Clock) -> tuple[Sealer, ReplayGuard]:
    return Sealer(ring, clock=clock), ReplayGuard(MemoryNonceStore(clock), 600, 30, clock)


def test_redelivery_passes_until_completed_then_replay_refused(ring: Keyring) -> None:
    clock = Clock()
    sealer, guard = _guarded(ring, clock)
    header = sealer.open(sealer.seal(SECRET, BIND)).header
    guard.admit(header)
    guard.admit(header)  # a broker's redelivery, a requeued rejection
    guard.complete(header.nonce)
    with pytest.raises(MessageReplayed):
        guard.admit(header)


def test_window_refuses_old_and_future_messages(ring: Keyring) -> None:
    clock = Clock()
    sealer, guard = _guarded(ring, clock)
    header = sealer.open(sealer.seal(SECRET, BIND)).header
    clock.t += 601
    with pytest.raises(MessageExpired):
        guard.admit(header)
    clock.t -= 601 + 31
    with pytest.raises(MessageExpired):
        guard.admit(header)


def test_nonce_record_expires_with_the_window(ring: Keyring) -> None:
    clock = Clock()
    store = MemoryNonceStore(clock)
    guard = ReplayGuard(store, 600, 30, clock)
    header = Sealer(ring, clock=clock).open(Sealer(ring, clock=clock).seal(SECRET, BIND)).header
    guard.admit(header)
    guard.complete(header.nonce)
    clock.t += guard.ttl_s + 1
    assert store.claim(header.nonce, 1) is None  # forgotten; the window check now refuses it


def test_redis_nonce_store_uses_expiring_keys(ring: Keyring, r: redis.Redis) -> None:
    sealer = Sealer(ring)
    guard = ReplayGuard(RedisNonceStore(r), window_s=600, skew_s=30)
    header = sealer.open(sealer.seal(SECRET, BIND)).header
    guard.admit(header)
    key = f"nube:nonce:{header.nonce}"
    assert r.get(key) == b"open"
    assert 0 < r.ttl(key) <= 630
    guard.admit(header)
    guard.complete(header.nonce)
    assert r.get(key) == b"done"
    with pytest.raises(MessageReplayed):
        guard.admit(header)
