"""The OpenAPI document is generated from the catalog and is self-consistent."""

from __future__ import annotations

import json
import re
import typing
from enum import Enum
from typing import Any

from flask import Flask
from pydantic import BaseModel

from api.app import register_routes
from api.openapi import REF, openapi_document
from api.routedoc import route_doc
from nube.catalog import CATALOG
from nube.jobs import Job


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


def _models(model: Any, seen: dict[str, set[type]]) -> None:
    """``model`` and every model and enum its fields reach, by class name."""
    if not isinstance(model, type) or model in seen.get(model.__name__, set()):
        return
    if issubclass(model, Enum):
        seen.setdefault(model.__name__, set()).add(model)
    elif issubclass(model, BaseModel):
        seen.setdefault(model.__name__, set()).add(model)
        for field in model.model_fields.values():
            for arg in _type_args(field.annotation):
                _models(arg, seen)


def _type_args(annotation: Any) -> list[Any]:
    args = typing.get_args(annotation)
    return [annotation, *(a for arg in args for a in _type_args(arg))]


def _routes() -> Flask:
    app = Flask(__name__)
    register_routes(app)
    return app


def test_every_component_is_one_model_and_both_services_models_are_present() -> None:
    """Components are named by class: two models of one name would overwrite each other."""
    doc = openapi_document()
    seen: dict[str, set[type]] = {}
    roots: list[Any] = [Job, *(op.params for op in CATALOG)]
    for view in _routes().view_functions.values():
        doc_of = route_doc(view)
        roots += [doc_of.query, doc_of.body] if doc_of else []
    for root in roots:
        _models(root, seen)
    components = set(doc["components"]["schemas"]) - {"Problem"}
    assert components <= set(seen), components - set(seen)
    shared = {name: models for name, models in seen.items() if len(models) > 1}
    assert not shared, shared
    for op in CATALOG:
        expected = op.params.model_json_schema(ref_template=REF)
        expected.pop("$defs", None)
        assert doc["components"]["schemas"][op.params.__name__] == expected, op.name
    both = {"ContainerNetworkRef", "VmNetworkRef", "ContainerVolumeRef", "StorageVolumeRef"}
    assert both <= components


def test_routes_outside_the_catalog_are_read_from_their_views() -> None:
    """Every route but the document and its page is documented, summarised by its docstring."""
    doc = openapi_document()
    app = _routes()
    catalog_views = {op.name.replace(".", "_") for op in CATALOG}
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        if rule.endpoint.split(".")[-1] in catalog_views or rule.endpoint == "static":
            continue
        view = app.view_functions[rule.endpoint]
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            if path in ("/v1/openapi.json", "/docs"):
                assert path not in doc["paths"]
                continue
            spec, declared = doc["paths"][path][method.lower()], route_doc(view)
            assert declared is not None, f"{method} {path} is not @documented"
            assert spec["operationId"] == declared.operation_id
            assert spec["summary"] == " ".join((view.__doc__ or "").split("\n\n")[0].split())
