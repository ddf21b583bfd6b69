"""Reading a JSON request body: 400 when it is not JSON, 422 when it is not an object."""

from __future__ import annotations

from typing import Any

from flask import request

from nube.errors import InvalidRequest, MalformedBody


def json_body() -> dict[str, Any]:
    """The body as a dict (empty when there is none)."""
    if not request.content_length and not request.data:
        return {}
    if not request.is_json:
        raise InvalidRequest("the body must be application/json")
    body = request.get_json(silent=True)
    if body is None:
        raise MalformedBody()
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object")
    return body
