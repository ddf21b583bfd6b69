"""Keyring parsing, rotation and file writing."""

from __future__ import annotations

import base64
import copy
import pickle
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from nube.errors import KeyringInvalid
from nube.sealing.keyring import Keyring, drop, generate_key, rotate, write_keyring


def test_text_round_trip_keeps_order() -> None:
    ring = Keyring([generate_key("new"), generate_key("old")])
    again = Keyring.from_text(ring.to_text())
    assert again.kids == ["new", "old"]
    assert again.current.secret == ring.current.secret


def test_one_line_form_with_commas_and_comments() -> None:
    a, b = generate_key("a"), generate_key("b")
    ring = Keyring.from_text(f"{a.to_line()}, {b.to_line()}  # two keys")
    assert ring.kids == ["a", "b"]


@pytest.mark.parametrize(
    "text, why",
    [
        ("", "no keys"),
        ("nokid", "not 'kid:base64key'"),
        ("a:@@@@", "not valid base64"),
        (f"a:{base64.b64encode(b'short').decode()}", "not 32"),
        ("bad!kid:" + base64.b64encode(bytes(32)).decode(), "must match"),
    ],
)
def test_invalid_keyrings_say_why(text: str, why: str) -> None:
    with pytest.raises(KeyringInvalid, match=why):
        Keyring.from_text(text)


def test_duplicate_kid_refused() -> None:
    k = generate_key("same")
    with pytest.raises(KeyringInvalid, match="duplicate"):
        Keyring([k, generate_key("same")])


def test_rotate_prepends_and_keeps() -> None:
    ring = Keyring([generate_key("k1")])
    ring2 = rotate(ring, kid="k2")
    assert ring2.kids == ["k2", "k1"]
    assert rotate(ring2, kid="k3", keep=2).kids == ["k3", "k2"]
    assert drop(ring2, "k1").kids == ["k2"]
    with pytest.raises(KeyringInvalid):
        drop(drop(ring2, "k1"), "k2")


def test_repr_never_shows_key_bytes() -> None:
    key = generate_key("k")
    assert base64.b64encode(key.secret).decode() not in repr(Keyring([key]))


def test_write_is_private_and_atomic(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    ring = Keyring([generate_key("k1")])
    write_keyring(ring, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Keyring.from_files([path]).kids == ["k1"]
    assert [p.name for p in tmp_path.iterdir()] == ["keys"]


def test_a_key_prepares_its_cipher_once_and_copies_as_kid_and_secret() -> None:
    key = generate_key("k1")
    nonce = bytes(12)
    sealed = key.cipher.encrypt(nonce, b"body", b"aad")
    assert AESGCM(key.secret).decrypt(nonce, sealed, b"aad") == b"body"
    for twin in (copy.deepcopy(key), pickle.loads(pickle.dumps(key))):
        assert twin == key and twin.cipher is not key.cipher
        assert twin.cipher.decrypt(nonce, sealed, b"aad") == b"body"
    assert "cipher" not in repr(key) and key.secret.hex() not in repr(key)
