"""The OpenAPI document is generated from the catalog and is self-consistent."""

from __future__ import annotations

import json
import re

from api.openapi import openapi_document
from nube.catalog import CATALOG


def test_every_operation_has_a_path_with_its_schema() -> None:
    doc = openapi_document()
    for op in CATALOG:
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", op.path)
        spec = doc["paths"][path][op.method.lower()]
        assert spec["operationId"] == op.name
        assert "202" in spec["responses"] and "422" in spec["responses"]
        for arg in re.findall(r"{([a-z_]+)}", path):
            assert any(p["in"] == "path" and p["name"] == arg for p in spec["parameters"])


def test_every_ref_resolves() -> None:
    doc = openapi_document()
    refs = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(doc)))
    assert refs <= set(doc["components"]["schemas"]), refs - set(doc["components"]["schemas"])


def test_fixed_routes_are_documented() -> None:
    doc = openapi_document()
    for path, method in [
        ("/v1/jobs", "get"),
        ("/v1/jobs/{job_id}", "delete"),
        ("/v1/jobs/{job_id}/events", "get"),
        ("/v1/tokens", "post"),
        ("/v1/audit", "get"),
        ("/v1/services", "get"),
        ("/readyz", "get"),
    ]:
        assert method in doc["paths"][path], (path, method)
    assert doc["paths"]["/healthz"]["get"]["security"] == []
