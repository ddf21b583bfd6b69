"""The sealed serializers' JSON: the stdlib's where it gives what kombu's json gives, kombu's
for the rest (datetimes, UUIDs, Decimals, bytes, and objects that look like kombu's typed ones).

hypothesis looks for values where ``_dumps``/``_loads`` and kombu's ``dumps``/``loads`` differ.
"""

from __future__ import annotations

import datetime
import decimal
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from kombu.serialization import dumps, loads
from kombu.utils.json import dumps as kombu_dumps
from kombu.utils.json import loads as kombu_loads

from nube.errors import MessageNotSealed
from nube.sealing.keyring import Keyring
from nube.sealing.replay import MemoryNonceStore, ReplayGuard
from nube.sealing.sealer import Sealer
from nube.sealing.serializer import (
    BINDING_KEY,
    TASK_CONTENT_TYPE,
    TASK_SERIALIZER,
    _dumps,
    _json_text,
    _loads,
    register,
    unregister,
)

keys = st.one_of(
    st.text(max_size=10), st.sampled_from(["__type__", "__value__", "type", "_", "\\u005f"])
)
plain = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
typed = st.one_of(
    st.datetimes(),
    st.dates(),
    st.times(),
    st.uuids(),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.binary(max_size=8),
)
json_values = st.recursive(
    plain | st.just({"__type__": "date", "__value__": "2026-01-02"}),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)
any_values = st.recursive(
    plain | typed,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(any_values)
def test_dumps_writes_what_kombu_writes(value: Any) -> None:
    assert _dumps(value) == kombu_dumps(value).encode()


@settings(max_examples=300, deadline=None)
@given(json_values | any_values)
@example({"__type__": "date", "__value__": "2026-01-02"})
def test_loads_reads_what_kombu_reads(value: Any) -> None:
    raw = kombu_dumps(value).encode()
    assert _outcome(_loads, raw) == _outcome(kombu_loads, raw)


def _outcome(read: Any, raw: bytes | str) -> object:
    """What ``read`` returns, or the kind of error: a ValueError is our refusal."""
    try:
        return read(raw)
    except (ValueError, MessageNotSealed):
        return "refused"
    except Exception as e:  # e.g. kombu's TypeError for {"__type__": [], "__value__": 1}
        return type(e)


json_ish = st.text(st.sampled_from(list('{}[]":,1 \n\t\ra\\\ufeffe.-')), max_size=12)


@settings(max_examples=400, deadline=None)
@given(
    json_ish
    | json_values.map(json.dumps)
    | st.tuples(json_values, json_ish).map(lambda pair: json.dumps(pair[0]) + pair[1])
)
@example("")
@example("[1] ")
@example("{} {}")
def test_json_text_reads_as_json_loads(text: str) -> None:
    assert _outcome(_json_text, text) == _outcome(json.loads, text)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"\\u005f_type__": "date", "__value__": "2026-01-02"}',
        b'{"__typ\\u0065__": "date", "__value__": "2026-01-02"}',
        b'{"__type__": "decimal", "__val\\u0075e__": "1.5"}',
        b'[{"__type__": "datetime", "__value__": "2026-01-02T03:04:05"}, "\\u00e9"]',
        '{"k": "\u00e9\u2603"}'.encode(),
    ],
)
def test_escaped_typed_objects_are_read_as_kombu_reads_them(raw: bytes) -> None:
    assert _loads(raw) == kombu_loads(raw)
    assert _outcome(_loads, raw) != "refused"


def test_a_typed_object_kombu_cannot_read_is_refused_as_kombu_refuses_it() -> None:
    raw = b'{"__type__": "nope", "__value__": 1}'
    with pytest.raises(ValueError):
        kombu_loads(raw)
    with pytest.raises(MessageNotSealed):
        _loads(raw)


@pytest.fixture
def registered(ring: Keyring) -> Iterator[None]:
    register(Sealer(ring), ReplayGuard(MemoryNonceStore()))
    yield
    unregister()


def test_a_task_body_with_typed_values_round_trips(registered: None) -> None:
    when = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    params = {"at": when, "id": uuid.UUID(int=9), "price": decimal.Decimal("1.50")}
    embed = {BINDING_KEY: {"task": "containers.run", "job": "j1", "tenant": "acme"}}
    body = [[], {"params": params}, embed]
    ctype, enc, data = dumps(body, serializer=TASK_SERIALIZER)
    _args, kwargs, _embed = loads(data, ctype, enc, accept=[TASK_CONTENT_TYPE])
    assert kwargs["params"] == params
