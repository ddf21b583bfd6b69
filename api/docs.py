"""``/v1/openapi.json`` and a human docs page at ``/docs`` (packaged assets, no CDN)."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, render_template

from api.openapi import openapi_document
from api.services import services

bp = Blueprint("docs", __name__)


def _document() -> dict[str, Any]:
    cached: dict[str, Any] | None = current_app.extensions.get("nube.openapi")
    if cached is None:
        limit = services().settings.max_body_bytes
        document = openapi_document(max_body_bytes=limit, app=current_app)
        cached = current_app.extensions["nube.openapi"] = document
    return cached


@bp.get("/v1/openapi.json")
def openapi_json() -> Response:
    """The OpenAPI 3.1 document (public; not in the document itself)."""
    return jsonify(_document())


@bp.get("/docs")
def docs_page() -> str:
    """The document as an HTML page, grouped by tag (public; not in the document itself)."""
    doc = _document()
    groups: dict[str, list[dict[str, Any]]] = {}
    for path, methods in doc["paths"].items():
        for method, spec in methods.items():
            tag = (spec.get("tags") or ["other"])[0]
            body = spec.get("requestBody", {}).get("content", {}).get("application/json", {})
            groups.setdefault(tag, []).append(
                {
                    "method": method.upper(),
                    "path": path,
                    "spec": spec,
                    "body": json.dumps(body.get("schema"), indent=2) if body else None,
                }
            )
    return render_template("docs.html", doc=doc, groups=dict(sorted(groups.items())))
