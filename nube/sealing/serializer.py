"""kombu serializers that seal task messages and results.

``nube-sealed`` (``application/x-nube-sealed``) is for task messages: JSON-encode the
protocol-2 body ``(args, kwargs, embed)``, then seal the bytes. A kombu encoder sees only the
body, not the message headers (task name, id), so the *binding* travels inside the body: the
embed dict carries ``embed["nube"] = {"task", "job", "tenant"}`` (filled from the headers at
publish time by :func:`nube.sealing.celery_hooks.bind_and_redact`). The encoder copies it into the
envelope header (the AES-GCM associated data); the decoder checks that the sealed binding and
the header agree, applies the replay guard and hands the binding, with the envelope's nonce,
to the worker as ``task.request.nube``. The worker then checks it against the real message
(:func:`nube.sealing.celery_hooks.verify_request`): a body moved into another message is refused.

``nube-sealed-result`` (``application/x-nube-sealed-result``) is for results: the result meta
dict is sealed and bound to its ``task_id``; results are read many times, so no replay guard.

``nube-sealed-control`` is for the control channel (Celery's broadcasts and their replies:
Flower's inspect and control commands). A broadcast reaches every node once, so each process
admits a control message once, within a short window (:data:`CONTROL_WINDOW_S`).

``nube-sealed-event`` is for Celery's events (``task-sent``, ``worker-heartbeat`` ...): sealed so
that the broker's pub/sub channels carry nothing readable and a forged event is not believed.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from typing import Any, cast

from kombu.exceptions import EncodeError
from kombu.serialization import register as kombu_register
from kombu.serialization import registry
from kombu.utils.json import dumps as json_dumps
from kombu.utils.json import loads as json_loads

from nube.errors import EnvelopeError, MessageMisbound, MessageNotSealed
from nube.sealing.replay import ReplayGuard
from nube.sealing.sealer import Binding, Header, Opened, Sealer

TASK_SERIALIZER = "nube-sealed"
TASK_CONTENT_TYPE = "application/x-nube-sealed"
RESULT_SERIALIZER = "nube-sealed-result"
RESULT_CONTENT_TYPE = "application/x-nube-sealed-result"
BINDING_KEY = "nube"
"""Key of the binding in the protocol-2 embed dict (and so of ``task.request``)."""
SEAL_KEY = "seal"
"""Key, inside the decoded binding, of the envelope's ``{nonce, kid, ts}``."""
CONTROL_SERIALIZER = "nube-sealed-control"
CONTROL_CONTENT_TYPE = "application/x-nube-sealed-control"
CONTROL_TASK = "celery.control"
"""The task name a control message is bound to (its job is the command, or ``reply``)."""
CONTROL_WINDOW_S = 60
"""How old a control message may be: Celery's broadcasts wait for replies a second or two."""
EVENT_SERIALIZER = "nube-sealed-event"
EVENT_CONTENT_TYPE = "application/x-nube-sealed-event"
EVENT_TASK = "celery.event"


def binding_of_body(body: Any) -> Binding:
    """The binding carried by a protocol-2 task body; ``EncodeError`` if there is none."""
    if not (isinstance(body, (list, tuple)) and len(body) == 3 and isinstance(body[2], dict)):
        raise EncodeError("nube-sealed encodes protocol-2 task bodies (args, kwargs, embed) only")
    bound = body[2].get(BINDING_KEY)
    if isinstance(bound, dict):
        task, job, tenant = bound.get("task"), bound.get("job"), bound.get("tenant")
        if isinstance(task, str) and isinstance(job, str) and isinstance(tenant, str):
            return Binding(task, job, tenant)
    raise EncodeError("task body without a nube binding (embed['nube'] = {task, job, tenant})")


def _without_seal(body: Any, binding: Binding) -> Any:
    """The body with a binding of only task/job/tenant (a retry drops old seals): the body
    itself if that is what it holds already, else a copy."""
    args, kwargs, embed = body
    if len(embed[BINDING_KEY]) == 3:  # binding_of_body found task, job and tenant in it
        return body
    return [args, kwargs, {**embed, BINDING_KEY: binding.as_dict()}]


def _dumps(obj: Any) -> bytes:
    """JSON bytes, as kombu's ``json`` serializer writes them.

    kombu's encoder is the stdlib's with a ``default`` for datetimes, UUIDs, Decimals and bytes;
    for plain JSON types the two write the same text, so the stdlib's (cheaper to call) goes first
    and kombu's only when the stdlib refuses a type.
    """
    try:
        return json.dumps(obj).encode()
    except TypeError:
        return json_dumps(obj).encode()


_ESCAPED_TYPE_CHAR = re.compile(rb"\\u00[5-7]")
"""An escape that could spell part of ``__type__`` (``_ t y p e`` are 5f, 74, 79, 70, 65)."""


def _may_hold_typed(raw: bytes) -> bool:
    """Whether kombu's ``object_hook`` might act on this JSON: a ``"__type__"`` key, written
    plainly or with escapes. Single-byte searches (memchr) first, the slower ones only if those
    find something."""
    if b"_" in raw and b'"__type__"' in raw:
        return True
    return b"\\" in raw and b"\\u00" in raw and _ESCAPED_TYPE_CHAR.search(raw) is not None


def _loads(raw: bytes) -> Any:
    """The body as kombu's ``json`` serializer reads it (its ``__type__`` objects decoded).

    kombu's hook changes only objects with the keys ``__type__`` and ``__value__``: text without
    such a key is read by the stdlib decoder alone, with the same result.
    """
    try:
        if _may_hold_typed(raw):
            return json_loads(raw)
        return _json_text(raw.decode("utf-8"))
    except ValueError:
        raise MessageNotSealed(why="sealed body is not JSON") from None


def _json_text(text: str) -> Any:
    """``json.loads(text)``; for an object or array, json's scanner without the wrapper."""
    if not text or text[0] not in "[{":
        return json.loads(text)
    try:
        value, end = _scan_json(text, 0)
    except StopIteration:
        return json.loads(text)  # its error
    if end != len(text) and text[end:].strip(_JSON_WHITESPACE):
        return json.loads(text)  # its "Extra data" error
    return value


_scan_json: Callable[[str, int], tuple[Any, int]] = cast(Any, json.JSONDecoder()).scan_once
_JSON_WHITESPACE = " \t\n\r"


class SealedCodec:
    """The encoder/decoder pairs registered with kombu.

    Guarantees: ``decode_task`` returns only a body sealed by a keyring key, bound to the same
    task/job/tenant as its header, fresh and not already completed; otherwise it raises an
    :class:`~nube.errors.EnvelopeError` leaf (kombu wraps it in ``DecodeError``).
    """

    def __init__(self, sealer: Sealer, guard: ReplayGuard | None) -> None:
        self.sealer = sealer
        self.guard = guard
        self.instance = uuid.uuid4().hex
        """This process's name in the replay guard for broadcasts (each node admits them once)."""

    def encode_task(self, body: Any) -> bytes:
        binding = binding_of_body(body)
        return self.sealer.seal(_dumps(_without_seal(body, binding)), binding)

    def decode_task(self, data: bytes | str) -> Any:
        opened = self.sealer.open(data)
        body = _loads(opened.body)
        try:
            inner = binding_of_body(body)
        except EncodeError as e:
            raise MessageNotSealed(why=str(e)) from None
        header = opened.header
        _check_same(header, inner)
        if self.guard is not None:
            self.guard.admit(header)
        seal = {"nonce": header.nonce, "kid": header.kid, "ts": header.ts}
        body[2][BINDING_KEY] = {**inner.as_dict(), SEAL_KEY: seal}
        return body

    def encode_control(self, body: Any) -> bytes:
        command = body.get("method") if isinstance(body, dict) else None
        binding = Binding(CONTROL_TASK, str(command or "reply"), "-")
        return self.sealer.seal(_dumps(body), binding)

    def decode_control(self, data: bytes | str) -> Any:
        opened = self._open_as(data, CONTROL_TASK)
        if self.guard is not None:
            self.guard.admit_once(opened.header, self.instance, CONTROL_WINDOW_S)
        return _loads(opened.body)

    def encode_event(self, event: Any) -> bytes:
        kind = event.get("type") if isinstance(event, dict) else "multi"
        return self.sealer.seal(_dumps(event), Binding(EVENT_TASK, str(kind), "-"))

    def decode_event(self, data: bytes | str) -> Any:
        opened = self._open_as(data, EVENT_TASK)
        if self.guard is not None:
            self.guard.check_fresh(opened.header)
        return _loads(opened.body)

    def _open_as(self, data: bytes | str, task: str) -> Opened:
        opened = self.sealer.open(data)
        if opened.header.task != task:
            raise MessageMisbound(field="task", sealed=opened.header.task, actual=task)
        return opened

    def encode_result(self, meta: Any) -> bytes:
        return self.sealer.seal(_dumps(meta), result_binding(meta))

    def decode_result(self, data: bytes | str) -> Any:
        opened = self.sealer.open(data)
        meta = _loads(opened.body)
        _check_same(opened.header, result_binding(meta))
        return meta


def result_binding(meta: Any) -> Binding:
    """A result is bound to its task id (and task name when ``result_extended`` is on)."""
    if not isinstance(meta, dict):
        return Binding("", "", "")
    job = meta.get("task_id") or meta.get("group_id") or ""
    return Binding(str(meta.get("name") or ""), str(job), "")


def _check_same(header: Header, inner: Binding) -> None:
    if inner.task != header.task:
        field, sealed, actual = "task", inner.task, header.task
    elif inner.job != header.job:
        field, sealed, actual = "job", inner.job, header.job
    elif inner.tenant != header.tenant:
        field, sealed, actual = "tenant", inner.tenant, header.tenant
    else:
        return
    raise MessageMisbound(field=field, sealed=sealed, actual=actual, job=header.job)


def register(sealer: Sealer, guard: ReplayGuard | None) -> SealedCodec:
    """Register the four serializers with kombu's registry (re-registering replaces)."""
    codec = SealedCodec(sealer, guard)
    for name, encode, decode, content_type in (
        (TASK_SERIALIZER, codec.encode_task, codec.decode_task, TASK_CONTENT_TYPE),
        (RESULT_SERIALIZER, codec.encode_result, codec.decode_result, RESULT_CONTENT_TYPE),
        (CONTROL_SERIALIZER, codec.encode_control, codec.decode_control, CONTROL_CONTENT_TYPE),
        (EVENT_SERIALIZER, codec.encode_event, codec.decode_event, EVENT_CONTENT_TYPE),
    ):
        kombu_register(name, encode, decode, content_type, "utf-8")
    global _registered
    _registered = codec
    return codec


_registered: SealedCodec | None = None


def registered_codec() -> SealedCodec | None:
    """The codec behind the registered serializers (kombu's registry is process-wide too)."""
    return _registered


def unregister() -> None:
    """Remove the serializers (tests)."""
    global _registered
    _registered = None
    for name in (TASK_SERIALIZER, RESULT_SERIALIZER, CONTROL_SERIALIZER, EVENT_SERIALIZER):
        if name in registry.name_to_type:
            registry.unregister(name)


def cause_of(
    exc: BaseException | None, kinds: type[BaseException] | tuple[type[BaseException], ...]
) -> BaseException | None:
    """The first exception of ``kinds`` in ``exc``'s chain, or ``None``: kombu wraps a
    decoder's error in ``DecodeError`` as its first argument, without chaining, so the walk
    follows that argument as well as ``__cause__`` and ``__context__``."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, kinds):
            return exc
        seen.add(id(exc))
        inner = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else None
        exc = inner or exc.__cause__ or exc.__context__
    return None


def envelope_error_of(exc: BaseException | None) -> EnvelopeError | None:
    """The :class:`EnvelopeError` behind a kombu ``DecodeError``."""
    found = cause_of(exc, EnvelopeError)
    return found if isinstance(found, EnvelopeError) else None
