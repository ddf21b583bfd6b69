"""Reading a request body: its size limit (413), then 400 when it is not JSON, 422 when it is
not an object.

Two limits, both answered ``413`` problem+json (``invalid_request``) before anything is queued:

- the body: ``NUBE_MAX_BODY_BYTES`` (1 MiB by default) for every JSON body; an operation that
  carries a binary payload (its catalog entry names ``binary`` fields) may send that payload as
  base64 on top, so its body limit is ``base64 of PAYLOAD_LIMIT + NUBE_MAX_BODY_BYTES``;
- the payload: the ``binary`` fields together, decoded, at most ``PAYLOAD_LIMIT`` (16 MiB).
"""

from __future__ import annotations

from typing import Any

from flask import request

from nube.catalog import PAYLOAD_LIMIT, Operation
from nube.errors import InvalidRequest, MalformedBody, PayloadTooLarge


def base64_length(size: int) -> int:
    """Characters of the padded base64 text of ``size`` bytes."""
    return (size + 2) // 3 * 4


def body_limit(op: Operation | None, json_limit: int) -> int:
    """The largest body ``op`` accepts, in bytes (``json_limit`` for a body without payload)."""
    if op is None or not op.binary:
        return json_limit
    return base64_length(PAYLOAD_LIMIT) + json_limit


def limit_body(limit: int) -> None:
    """Apply ``limit`` to this request's body; a declared length over it is refused now."""
    request.max_content_length = limit
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(limit=limit)


def decoded_size(text: str) -> int:
    """Bytes that base64 ``text`` decodes to (for size checks; validity is checked elsewhere)."""
    padding = len(text[-2:]) - len(text[-2:].rstrip("="))
    return len(text) * 3 // 4 - padding


def payload_size(op: Operation, raw: dict[str, Any]) -> int:
    """The decoded size of ``op``'s binary fields in the raw body (other types: 0, the
    parameter model refuses them)."""
    total = 0
    for name in op.binary:
        value = raw.get(name)
        texts = value.values() if isinstance(value, dict) else [value]
        total += sum(decoded_size(t) for t in texts if isinstance(t, str))
    return total


def check_payload(op: Operation, raw: dict[str, Any]) -> None:
    """``PayloadTooLarge`` when ``op``'s binary payload is over ``PAYLOAD_LIMIT`` decoded."""
    if op.binary and payload_size(op, raw) > PAYLOAD_LIMIT:
        fields = " and ".join(op.binary)
        raise PayloadTooLarge(
            f"the payload ({fields}) is larger than {PAYLOAD_LIMIT} bytes decoded",
            limit=PAYLOAD_LIMIT,
        )


def read_body() -> bytes:
    """The raw body, at most the request's limit; ``PayloadTooLarge`` past it.

    A body without ``Content-Length`` (chunked) is cut at the limit by Werkzeug without an error,
    so one that filled the limit is checked for a further byte.
    """
    data = request.get_data(cache=True)
    limit = request.max_content_length
    if request.content_length is None and limit is not None and len(data) >= limit:
        rest = request.environ["wsgi.input"].read(1)
        if rest:
            raise PayloadTooLarge(limit=limit)
    return data


def json_body() -> dict[str, Any]:
    """The body as a dict (empty when there is none)."""
    if not read_body():
        return {}
    if not request.is_json:
        raise InvalidRequest("the body must be application/json")
    body = request.get_json(silent=True)
    if body is None:
        raise MalformedBody()
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object")
    return body
