"""A keyring of AES-256 keys: the newest key seals, every listed key opens.

Text format (a file, or the value of ``NUBE_KEYS`` / ``NUBE_KEYS_FILE``): one ``kid:key`` entry
per line, ``key`` being 32 random bytes in standard base64; newest first. Blank lines and
``#`` comments are ignored; entries may also be separated by commas or spaces so a keyring
fits in one environment variable::

    # nube keyring: newest first
    k20260102T101500Z:3q2+7w...=
    k20251201T080000Z:q83vEj...=

Rotation prepends a new key (:func:`rotate`); every process that loads the new keyring seals
with it while still opening messages sealed with the older keys. Dropping a key makes messages
sealed with it fail with :class:`~nube.errors.KeyUnknown`.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from nube.errors import KeyringInvalid

KEY_BYTES = 32
KID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SEPARATORS = re.compile(r"[\s,]+")


@dataclass(frozen=True)
class Key:
    """One AES-256 key and its id. ``repr`` never shows the key bytes.

    ``cipher`` is the key's prepared AES-256-GCM object, made once: every seal and open reuses
    it (making one per message costs more than the encryption of a small message).
    """

    kid: str
    secret: bytes
    cipher: AESGCM = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not KID_PATTERN.match(self.kid):
            raise KeyringInvalid(why=f"key id {self.kid!r} must match {KID_PATTERN.pattern}")
        if len(self.secret) != KEY_BYTES:
            raise KeyringInvalid(why=f"key '{self.kid}' is {len(self.secret)} bytes, not 32")
        object.__setattr__(self, "cipher", AESGCM(self.secret))

    def __repr__(self) -> str:
        return f"Key(kid={self.kid!r})"

    def __reduce__(self) -> tuple[type[Key], tuple[str, bytes]]:
        # copied or pickled as (kid, secret); the copy prepares its own cipher
        return (Key, (self.kid, self.secret))

    def to_line(self) -> str:
        """The ``kid:base64`` text form of this key."""
        return f"{self.kid}:{base64.b64encode(self.secret).decode()}"

    @classmethod
    def from_line(cls, entry: str) -> Key:
        """Parse one ``kid:base64`` entry."""
        kid, sep, b64 = entry.partition(":")
        if not sep:
            raise KeyringInvalid(why=f"entry {kid[:16]!r}... is not 'kid:base64key'")
        try:
            secret = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError) as e:
            raise KeyringInvalid(why=f"key '{kid}' is not valid base64") from e
        return cls(kid, secret)


class Keyring:
    """An ordered set of keys: ``current`` (the first) seals, any of them opens."""

    def __init__(self, keys: Sequence[Key]) -> None:
        if not keys:
            raise KeyringInvalid(why="no keys")
        kids = [k.kid for k in keys]
        dupes = sorted({k for k in kids if kids.count(k) > 1})
        if dupes:
            raise KeyringInvalid(why=f"duplicate key id(s): {', '.join(dupes)}")
        self._keys = tuple(keys)
        self._by_kid = {k.kid: k for k in keys}

    def __repr__(self) -> str:
        return f"Keyring(kids={self.kids!r})"

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def current(self) -> Key:
        """The key that seals new messages (the newest, listed first)."""
        return self._keys[0]

    @property
    def kids(self) -> list[str]:
        return [k.kid for k in self._keys]

    @property
    def keys(self) -> tuple[Key, ...]:
        return self._keys

    def get(self, kid: str) -> Key | None:
        """The key with this id, or ``None`` if it is not (or no longer) in the keyring."""
        return self._by_kid.get(kid)

    def to_text(self) -> str:
        """The keyring in its file format, newest first."""
        lines = ["# nube keyring: newest key first; it seals, every key here opens"]
        lines += [k.to_line() for k in self._keys]
        return "\n".join(lines) + "\n"

    @classmethod
    def from_text(cls, text: str) -> Keyring:
        """Parse the text format (see the module docstring)."""
        return cls([Key.from_line(e) for e in _entries(text)])

    @classmethod
    def from_files(cls, paths: Iterable[str | Path]) -> Keyring:
        """Concatenate keyring files, in order (the first file's first key seals)."""
        texts = []
        for path in paths:
            try:
                texts.append(Path(path).read_text())
            except OSError as e:
                raise KeyringInvalid(why=f"cannot read {path}: {e.strerror}") from e
        return cls.from_text("\n".join(texts))


def _entries(text: str) -> list[str]:
    lines = (line.split("#", 1)[0] for line in text.splitlines())
    return [e for line in lines for e in _SEPARATORS.split(line.strip()) if e]


def new_kid(now: float | None = None) -> str:
    """A sortable key id from the UTC time, e.g. ``k20260102T101500Z``."""
    return "k" + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))


def generate_key(kid: str | None = None) -> Key:
    """A new random key (``secrets.token_bytes``, the OS CSPRNG)."""
    return Key(kid or new_kid(), secrets.token_bytes(KEY_BYTES))


def rotate(ring: Keyring, kid: str | None = None, keep: int | None = None) -> Keyring:
    """A keyring with a new sealing key first and the old keys after it.

    ``keep`` limits how many keys are kept in total (the oldest are dropped); keep old keys at
    least as long as a sealed message or result may still be read (see docs/security.md).
    """
    key = generate_key(kid)
    if ring.get(key.kid):
        raise KeyringInvalid(why=f"key id '{key.kid}' already in the keyring")
    keys = [key, *ring.keys]
    if keep is not None:
        keys = keys[: max(1, keep)]
    return Keyring(keys)


def drop(ring: Keyring, kid: str) -> Keyring:
    """A keyring without ``kid`` (it may not be the only key)."""
    keys = [k for k in ring.keys if k.kid != kid]
    if len(keys) == len(ring):
        raise KeyringInvalid(why=f"no key '{kid}' in the keyring")
    return Keyring(keys)


def write_keyring(ring: Keyring, path: str | Path) -> None:
    """Write atomically (temporary file + rename) with mode 0600."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(ring.to_text())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
