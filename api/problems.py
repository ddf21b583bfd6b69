"""Every error as ``application/problem+json`` (RFC 9457) with a stable ``code``."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, json, request
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from nube.errors import BrokerUnavailable, InvalidRequest, NubeError, PayloadTooLarge
from nube.redis_client import REDIS_ERRORS

log = logging.getLogger(__name__)

HTTP_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "invalid_request",
    415: "invalid_request",
    429: "rate_limited",
}


def problem(status: int, code: str, title: str, detail: str, **extra: Any) -> Response:
    body = {
        "type": f"https://nube.dev/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "instance": request.path,
        **extra,
    }
    return Response(json.dumps(body), status=status, mimetype="application/problem+json")


def from_error(error: NubeError) -> Response:
    extra = {"details": error.details} if error.details else {}
    response = problem(error.status, error.code, error.title, error.message, **extra)
    if "retry_after" in error.details:
        response.headers["Retry-After"] = str(error.details["retry_after"])
    return response


def from_validation(error: ValidationError) -> Response:
    """422 with each failing field's dotted path."""
    errors = [
        {"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"]}
        for e in error.errors(include_url=False)
    ]
    first = errors[0]
    invalid = InvalidRequest(f"{first['field']}: {first['message']}")
    return problem(invalid.status, invalid.code, invalid.title, invalid.message, errors=errors)


def from_http(error: HTTPException) -> Response:
    if isinstance(error, RequestEntityTooLarge):
        limit = int(getattr(request, "max_content_length", 0) or 0)
        return from_error(PayloadTooLarge(limit=limit))
    status = error.code or 500
    code = HTTP_CODES.get(status, "internal")
    return problem(status, code, error.name, error.description or error.name)


def from_unexpected(error: Exception) -> Response:
    if isinstance(error, REDIS_ERRORS):
        return from_error(BrokerUnavailable())
    log.exception("unhandled error on %s %s", request.method, request.path)
    return problem(500, "internal", "Internal error", "an unexpected error occurred")


def register(app: Flask) -> None:
    app.register_error_handler(NubeError, from_error)
    app.register_error_handler(ValidationError, from_validation)
    app.register_error_handler(HTTPException, from_http)
    app.register_error_handler(Exception, from_unexpected)
