"""kombu serializers that seal task messages and results.

``nube-sealed`` (``application/x-nube-sealed``) is for task messages: JSON-encode the
protocol-2 body ``(args, kwargs, embed)``, then seal the bytes. A kombu encoder sees only the
body, not the message headers (task name, id), so the *binding* travels inside the body: the
embed dict carries ``embed["nube"] = {"task", "job", "tenant"}`` (filled from the headers at
publish time by :func:`agents.celery_hooks.bind_and_redact`). The encoder copies it into the
envelope header (the AES-GCM associated data); the decoder checks that the sealed binding and
the header agree, applies the replay guard and hands the binding, with the envelope's nonce,
to the worker as ``task.request.nube``. The worker then checks it against the real message
(:func:`agents.celery_hooks.verify_request`): a body moved into another message is refused.

``nube-sealed-result`` (``application/x-nube-sealed-result``) is for results: the result meta
dict is sealed and bound to its ``task_id``; results are read many times, so no replay guard.
"""

from __future__ import annotations

from typing import Any

from kombu.exceptions import EncodeError
from kombu.serialization import register as kombu_register
from kombu.serialization import registry
from kombu.utils.json import dumps as json_dumps
from kombu.utils.json import loads as json_loads

from agents.envelope import Binding, Header, ReplayGuard, Sealer
from agents.errors import EnvelopeError, MessageMisbound, MessageNotSealed

TASK_SERIALIZER = "nube-sealed"
TASK_CONTENT_TYPE = "application/x-nube-sealed"
RESULT_SERIALIZER = "nube-sealed-result"
RESULT_CONTENT_TYPE = "application/x-nube-sealed-result"
BINDING_KEY = "nube"
"""Key of the binding in the protocol-2 embed dict (and so of ``task.request``)."""
SEAL_KEY = "seal"
"""Key, inside the decoded binding, of the envelope's ``{nonce, kid, ts}``."""


def binding_of_body(body: Any) -> Binding:
    """The binding carried by a protocol-2 task body; ``EncodeError`` if there is none."""
    if not (isinstance(body, (list, tuple)) and len(body) == 3 and isinstance(body[2], dict)):
        raise EncodeError("nube-sealed encodes protocol-2 task bodies (args, kwargs, embed) only")
    bound = body[2].get(BINDING_KEY)
    if not isinstance(bound, dict) or not all(
        isinstance(bound.get(f), str) for f in ("task", "job", "tenant")
    ):
        raise EncodeError("task body without a nube binding (embed['nube'] = {task, job, tenant})")
    return Binding(bound["task"], bound["job"], bound["tenant"])


def _without_seal(body: Any, binding: Binding) -> list[Any]:
    """A copy of the body whose binding holds only task/job/tenant (a retry drops old seals)."""
    args, kwargs, embed = body
    return [args, kwargs, {**embed, BINDING_KEY: binding.as_dict()}]


class SealedCodec:
    """The encoder/decoder pairs registered with kombu.

    Guarantees: ``decode_task`` returns only a body sealed by a keyring key, bound to the same
    task/job/tenant as its header, fresh and not already completed; otherwise it raises an
    :class:`~agents.errors.EnvelopeError` leaf (kombu wraps it in ``DecodeError``).
    """

    def __init__(self, sealer: Sealer, guard: ReplayGuard | None) -> None:
        self.sealer = sealer
        self.guard = guard

    def encode_task(self, body: Any) -> bytes:
        binding = binding_of_body(body)
        return self.sealer.seal(json_dumps(_without_seal(body, binding)).encode(), binding)

    def decode_task(self, data: bytes | str) -> Any:
        opened = self.sealer.open(data)
        body = _loads(opened.body)
        try:
            inner = binding_of_body(body)
        except EncodeError as e:
            raise MessageNotSealed(why=str(e)) from None
        _check_same(opened.header, inner)
        if self.guard is not None:
            self.guard.admit(opened.header)
        seal = {"nonce": opened.header.nonce, "kid": opened.header.kid, "ts": opened.header.ts}
        body[2][BINDING_KEY] = {**inner.as_dict(), SEAL_KEY: seal}
        return body

    def encode_result(self, meta: Any) -> bytes:
        return self.sealer.seal(json_dumps(meta).encode(), result_binding(meta))

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


def _loads(raw: bytes) -> Any:
    try:
        return json_loads(raw)
    except ValueError:
        raise MessageNotSealed(why="sealed body is not JSON") from None


def _check_same(header: Header, inner: Binding) -> None:
    for field in ("task", "job", "tenant"):
        sealed, actual = getattr(inner, field), getattr(header, field)
        if sealed != actual:
            raise MessageMisbound(field=field, sealed=sealed, actual=actual, job=header.job)


def register(sealer: Sealer, guard: ReplayGuard | None) -> SealedCodec:
    """Register both serializers with kombu's registry (idempotent: re-registering replaces)."""
    codec = SealedCodec(sealer, guard)
    kombu_register(
        TASK_SERIALIZER, codec.encode_task, codec.decode_task, TASK_CONTENT_TYPE, "utf-8"
    )
    kombu_register(
        RESULT_SERIALIZER, codec.encode_result, codec.decode_result, RESULT_CONTENT_TYPE, "utf-8"
    )
    return codec


def unregister() -> None:
    """Remove both serializers (tests)."""
    for name in (TASK_SERIALIZER, RESULT_SERIALIZER):
        if name in registry.name_to_type:
            registry.unregister(name)


def envelope_error_of(exc: BaseException | None) -> EnvelopeError | None:
    """The :class:`EnvelopeError` behind a kombu ``DecodeError`` (kombu wraps without chaining)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, EnvelopeError):
            return exc
        seen.add(id(exc))
        inner = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else None
        exc = inner or exc.__cause__ or exc.__context__
    return None
