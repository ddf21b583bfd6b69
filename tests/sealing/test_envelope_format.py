"""The envelope's wire format and the fast paths that build and read it.

``Sealer`` writes the canonical header by string formatting, decodes base64url with
``binascii``'s strict mode and reads its own envelope form without the JSON scanner; each must
give exactly what the generic way gives (``json.dumps(sort_keys=True)``, decode-and-re-encode,
``json.loads``). The references below are the generic ways, as the envelope was first written;
hypothesis looks for inputs where the two differ. Envelopes sealed before the fast paths (pinned
below) still open.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from nube.errors import EnvelopeError, KeyUnknown, MessageNotSealed, MessageTampered
from nube.sealing.keyring import Key, Keyring
from nube.sealing.sealer import (
    Binding,
    Header,
    Mode,
    Sealer,
    _b64d,
    _b64e,
    _header_of,
    parse_envelope,
)

PINNED_KEY = Keyring([Key("k2026", bytes(range(32)))])
PINNED_BODY = b'{"env": {"TOKEN": "marker"}}'
PINNED_JOB = 'job-"q"\\ \u00e9\u2603'
PINNED_ACTIVE = (
    b'{"alg":"A256GCM","ct":"xYgQSOeMQmBnGbrLByZyI_YIYXoFEgxxhL0givoVTH9MNo1Fsld-jcimFB0",'
    b'"job":"job-\\"q\\"\\\\ \\u00e9\\u2603","kid":"k2026","nonce":"XAwY7QQgTpeZSyrs",'
    b'"task":"containers.run","tenant":"acme","ts":1767348900123,"v":1}'
)
PINNED_PASSIVE = (
    b'{"alg":"HS256","body":"{\\"env\\": {\\"TOKEN\\": \\"marker\\"}}",'
    b'"job":"job-\\"q\\"\\\\ \\u00e9\\u2603","kid":"k2026","nonce":"ZTejYft8rIEQnypj",'
    b'"sig":"et5qysypT0pP644zYmmk3oezstcCBQcIFsea0tNcdF0","task":"containers.run",'
    b'"tenant":"acme","ts":1767348900123,"v":1}'
)

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
any_text = st.text(st.characters(codec=None, categories=None), max_size=40)
"""Any code points, surrogates and control characters included."""
ints = st.one_of(st.integers(), st.integers(min_value=-(2**70), max_value=2**70))


def reference_canonical(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def reference_b64d(text: str) -> bytes:
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if base64.urlsafe_b64encode(raw).decode().rstrip("=") != text:
        raise ValueError("non-canonical base64")
    return raw


def reference_open(ring: Keyring, data: bytes | str) -> tuple[str, Any]:
    """An active-mode open as first written: json.loads, checks, decode, decrypt."""
    try:
        raw = parse_envelope(data)
        header = _header_of(raw)
    except EnvelopeError as e:
        return type(e).__name__, e.to_dict()["details"]
    key = ring.get(header.kid)
    if key is None:
        return KeyUnknown.__name__, header.kid
    if header.alg != "A256GCM":
        return "ModeNotAllowed", header.alg
    ct = raw.get("ct")
    if not isinstance(ct, str):
        return MessageNotSealed.__name__, "no ciphertext"
    try:
        aad = reference_canonical(header._asdict())
        body = AESGCM(key.secret).decrypt(reference_b64d(header.nonce), reference_b64d(ct), aad)
    except (InvalidTag, binascii.Error, ValueError):
        return MessageTampered.__name__, header.job
    return "ok", (tuple(header), body)


def outcome(ring: Keyring, data: bytes | str) -> tuple[str, Any]:
    try:
        opened = Sealer(ring).open(data)
    except KeyUnknown as e:
        return type(e).__name__, e.to_dict()["details"]["kid"]
    except MessageTampered as e:
        return type(e).__name__, e.to_dict()["details"]["job"]
    except EnvelopeError as e:
        if type(e).__name__ == "ModeNotAllowed":
            return "ModeNotAllowed", e.to_dict()["details"]["alg"]
        details = e.to_dict()["details"]
        why = details.get("why")
        return type(e).__name__, ("no ciphertext" if why == "no ciphertext" else details)
    return "ok", (tuple(opened.header), opened.body)


# --- sealed data from before the fast paths ----------------------------------------------------


def test_envelopes_sealed_before_still_open() -> None:
    opened = Sealer(PINNED_KEY).open(PINNED_ACTIVE)
    assert opened.body == PINNED_BODY
    assert opened.header.binding == Binding("containers.run", PINNED_JOB, "acme")
    assert (opened.header.kid, opened.header.ts, opened.header.v) == ("k2026", 1767348900123, 1)
    assert Sealer(PINNED_KEY).open(PINNED_ACTIVE.decode()).body == PINNED_BODY
    assert Sealer(PINNED_KEY, Mode.PASSIVE).open(PINNED_PASSIVE).body == PINNED_BODY


def test_a_new_envelope_has_the_pinned_form() -> None:
    clock = 1767348900.123
    sealed = Sealer(PINNED_KEY, clock=lambda: clock).seal(PINNED_BODY, Binding("t", "j", "x"))
    raw = json.loads(sealed)
    assert list(raw) == ["alg", "ct", "job", "kid", "nonce", "task", "tenant", "ts", "v"]
    assert sealed == reference_canonical(raw)
    assert (raw["alg"], raw["kid"], raw["ts"], raw["v"]) == ("A256GCM", "k2026", 1767348900123, 1)
    assert len(reference_b64d(raw["nonce"])) == 12
    assert len(reference_b64d(raw["ct"])) == len(PINNED_BODY) + 16


# --- the canonical header ----------------------------------------------------------------------


@FAST
@given(any_text, any_text, ints, any_text, any_text, any_text, any_text, ints)
@example('"', "\\", 0, "\x00\x1f\x7f", "\ud800", "\U0001f600", "é", 1)
def test_header_aad_is_the_canonical_json(
    alg: str, kid: str, ts: int, nonce: str, task: str, job: str, tenant: str, v: int
) -> None:
    header = Header(v, alg, kid, ts, nonce, task, job, tenant)
    assert header.aad() == reference_canonical(dict(header._asdict()))


@FAST
@given(st.sampled_from([True, False, 1.0, 0.5, None, "1", [1]]), st.sampled_from(["ts", "v"]))
def test_header_aad_of_other_json_values_is_the_canonical_json(value: object, field: str) -> None:
    fields: dict[str, Any] = {"v": 1, "ts": 5, field: value}
    header = Header(fields["v"], "A256GCM", "k", fields["ts"], "n", "t", "j", "x")
    assert header.aad() == reference_canonical(dict(header._asdict()))


@FAST
@given(any_text, any_text, any_text, st.binary(max_size=300))
def test_seal_writes_canonical_json_and_opens_any_binding(
    task: str, job: str, tenant: str, body: bytes
) -> None:
    sealer = Sealer(PINNED_KEY)
    sealed = sealer.seal(body, Binding(task, job, tenant))
    assert sealed == reference_canonical(json.loads(sealed))
    assert reference_open(PINNED_KEY, sealed) == outcome(PINNED_KEY, sealed)
    opened = sealer.open(sealed)
    assert opened.body == body and opened.header.binding == Binding(task, job, tenant)


# --- strict base64url --------------------------------------------------------------------------

b64_junk = st.text(
    st.sampled_from(list("AQgwBEIMRSabyz09-_+/= \n\t.é\x00")), max_size=24
) | st.binary(max_size=18).map(_b64e)


@FAST
@given(b64_junk)
@example("")
@example("QQ")
@example("QR")
@example("QQ==")
@example("Q")
@example("QUJD\n")
def test_strict_base64url_decodes_as_decode_and_reencode(text: str) -> None:
    try:
        expected: object = reference_b64d(text)
    except ValueError:
        expected = ValueError
    try:
        got: object = _b64d(text)
    except ValueError:
        got = ValueError
    assert got == expected


@FAST
@given(st.binary(max_size=100))
def test_base64url_encoding_is_unpadded_urlsafe(raw: bytes) -> None:
    assert _b64e(raw) == base64.urlsafe_b64encode(raw).decode().rstrip("=")


# --- reading the envelope ----------------------------------------------------------------------

SEALED = Sealer(PINNED_KEY, clock=lambda: 1767348900.0).seal(
    PINNED_BODY, Binding("containers.run", "j1", "acme")
)
edits = st.lists(
    st.tuples(
        st.integers(0, len(SEALED)),
        st.integers(0, 4),
        st.sampled_from(
            [
                "",
                '"',
                "\\",
                ",",
                "}",
                "{",
                " ",
                "\n",
                "=",
                "+",
                "/",
                "-",
                "_",
                "A",
                "Q",
                "\x00",
                "é",
                '"ct":"AAAA",',
                '"alg":"HS256",',
                '"v":1,',
                '"x":1,',
                "\\u0041",
                ":1",
                "true",
            ]
        ),
    ),
    max_size=3,
)


def _edited(sealed: bytes, changes: list[tuple[int, int, str]]) -> bytes:
    text = sealed.decode()
    for at, cut, insert in changes:
        text = text[:at] + insert + text[at + cut :]
    return text.encode()


@settings(max_examples=600, deadline=None)
@given(edits, st.booleans())
@example([(len(SEALED) - 1, 1, ",}")], False)
@example([(len('{"alg":"A256GCM","ct":"'), 0, '",')], False)
@example([(len(SEALED) - 1, 0, ',"ct":"AAAA"')], True)
def test_open_reads_any_envelope_as_json_loads_would(
    changes: list[tuple[int, int, str]], as_text: bool
) -> None:
    data = _edited(SEALED, changes)
    given_data: bytes | str = data.decode("utf-8", "surrogatepass") if as_text else data
    assert outcome(PINNED_KEY, given_data) == reference_open(PINNED_KEY, given_data)


def test_the_pinned_envelope_opens_through_both_readings() -> None:
    assert outcome(PINNED_KEY, SEALED)[0] == "ok"
    assert outcome(PINNED_KEY, SEALED) == reference_open(PINNED_KEY, SEALED)
    spaced = SEALED.replace(b'","job"', b'", "job"')  # valid JSON, not seal's form
    assert outcome(PINNED_KEY, spaced) == reference_open(PINNED_KEY, spaced)
    assert outcome(PINNED_KEY, spaced)[0] == "ok"


CT_END = SEALED.index(b'"', len(b'{"alg":"A256GCM","ct":"'))


def test_envelopes_near_seals_form_read_as_json_loads_would() -> None:
    near = [
        SEALED[: CT_END + 2] + b"}",  # nothing after the ciphertext but a trailing comma
        SEALED[: CT_END + 2] + b" }",
        SEALED[: CT_END + 1] + b"x" + SEALED[CT_END + 2 :],  # no comma after the ciphertext
        SEALED[: CT_END + 1] + b" " + SEALED[CT_END + 1 :],
        SEALED[:-1] + b',"ct":"AAAA"}',  # a second ciphertext
        SEALED[:-1] + b',"alg":"HS256"}',
        SEALED + b" \n\t\r",
        SEALED + b" x",
        SEALED + b"{}",
        b"\xef\xbb\xbf" + SEALED,
        SEALED.replace(b'"job":"j1"', b'"job":"j\\u0031"'),  # same text, escaped: authentic
        SEALED.replace(b'"ts":', b'"ts": '),
        SEALED.replace(b'"v":1', b'"v":true'),
    ]
    for data in near:
        assert outcome(PINNED_KEY, data) == reference_open(PINNED_KEY, data), data
        text = data.decode("utf-8")
        assert outcome(PINNED_KEY, text) == reference_open(PINNED_KEY, text), text
    assert outcome(PINNED_KEY, near[10])[0] == "ok"
