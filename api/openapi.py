"""The OpenAPI 3.1 document, generated from the catalog's parameter models and the job model.

Catalog operations are documented from the catalog; every other route from the app itself: its
rule from Flask, its summary and description from its view's docstring, its scope from
``@require`` and its models and answer from ``@documented`` (:mod:`api.routedoc`).

Every request body states its size limit (``x-nube-max-body-bytes``, and for an operation with a
binary payload ``x-nube-max-payload-bytes``) and its ``413`` answer (see :mod:`api.body`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from flask import Flask
from pydantic import BaseModel
from werkzeug.routing import Rule

from api.auth import required_scope
from api.body import base64_length, body_limit
from api.routedoc import Answer, RouteDoc, route_doc, summary_and_description
from nube.catalog import CATALOG, PAYLOAD_LIMIT, Catalog, Operation
from nube.jobs import Job
from nube.settings import Settings

REF = "#/components/schemas/{model}"
_RULE_ARG = re.compile(r"<(?:[a-z]+:)?([a-z_]+)>")
#: ``NUBE_MAX_BODY_BYTES`` when none is given.
DEFAULT_MAX_BODY: int = Settings.model_fields["max_body_bytes"].default


def openapi_document(
    catalog: Catalog = CATALOG, max_body_bytes: int = DEFAULT_MAX_BODY, app: Flask | None = None
) -> dict[str, Any]:
    """The document; body limits as ``max_body_bytes`` (``NUBE_MAX_BODY_BYTES``) makes them.

    The routes outside the catalog are read from ``app``; by default from an app with every route
    of the API and no services (:func:`api.app.register_routes`).
    """
    schemas: dict[str, Any] = {"Problem": PROBLEM}
    _schema(Job, schemas)
    paths: dict[str, Any] = {}
    for op in catalog:
        path = _RULE_ARG.sub(r"{\1}", op.path)
        paths.setdefault(path, {})[op.method.lower()] = _operation(op, schemas, max_body_bytes)
    app = app if app is not None else _routes_app()
    for path, method, spec in _view_routes(app, schemas, max_body_bytes):
        paths.setdefault(path, {})[method] = spec
    description = DESCRIPTION + _limits_text(max_body_bytes)
    return {
        "openapi": "3.1.0",
        "info": {"title": "nube", "version": "1", "description": description},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _schema(model: type[BaseModel], schemas: dict[str, Any]) -> dict[str, Any]:
    """The model's schema, its nested definitions hoisted into ``components``."""
    schema = model.model_json_schema(ref_template=REF)
    schemas.update(schema.pop("$defs", {}))
    schemas[model.__name__] = schema
    return schema


def _operation(op: Operation, schemas: dict[str, Any], max_body: int) -> dict[str, Any]:
    schema = _schema(op.params, schemas)
    path_args = set(_RULE_ARG.findall(op.path))
    props = schema.get("properties", {})
    required = set(schema.get("required", []))
    params = [_param(n, "path", props.get(n, {"type": "string"}), True) for n in sorted(path_args)]
    spec: dict[str, Any] = {
        "operationId": op.name,
        "summary": op.summary,
        "tags": [op.path.split("/")[2]],
        "description": f"Runs `{op.name}` as a job on queue `{op.queue}` "
        f"(time limit {op.time_limit} s). Needs scope `{op.scope}`. {_answers(op)}",
        "responses": _job_responses(op),
    }
    if op.method == "GET":
        params += [
            _param(n, "query", s, n in required) for n, s in props.items() if n not in path_args
        ]
        params.append(WAIT)
    else:
        body = {k: v for k, v in schema.items() if k != "title"}
        body["properties"] = {n: s for n, s in props.items() if n not in path_args}
        body["required"] = sorted(required - path_args)
        spec["requestBody"] = {
            "required": bool(body["required"]),
            "content": {"application/json": {"schema": body}},
            **_body_limits(op, max_body),
        }
        spec["responses"]["413"] = _too_large(op, max_body)
        params.append(
            _header("Idempotency-Key", {"type": "string", "minLength": 1, "maxLength": 255})
        )
    params.append(PREFER)
    spec["parameters"] = params
    return spec


def _answers(op: Operation) -> str:
    if op.method == "GET":
        return (
            "A read: the API waits for the job (`NUBE_READ_WAIT_SECONDS`, or `Prefer: wait=N`) "
            "and answers `200` with the resource; `202` with the job on `Prefer: respond-async` "
            "or when the wait runs out; a failed job is its error's status."
        )
    created = " (`201`: it created)" if op.creates else ""
    return (
        "Answers `202` with the job; with `Prefer: wait=N`, the finished job (`200`"
        f"{created}) or, when it failed, its error's status."
    )


def _param(name: str, where: str, schema: dict[str, Any], required: bool) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required, "schema": schema}


def _header(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": False, "schema": schema}


def _body_limits(op: Operation | None, max_body: int) -> dict[str, Any]:
    """The limit members of a request body: its description and ``x-nube-*`` extensions."""
    limit = body_limit(op, max_body)
    if op is None or not op.binary:
        return {
            "description": f"JSON, at most {limit} bytes (`NUBE_MAX_BODY_BYTES`); larger: 413",
            "x-nube-max-body-bytes": limit,
        }
    fields = ", ".join(f"`{f}`" for f in op.binary)
    return {
        "description": f"JSON with a binary payload as base64 ({fields}): the payload at most "
        f"{PAYLOAD_LIMIT} bytes (16 MiB) decoded, the whole body at most {limit} bytes (the "
        f"payload as base64 plus {max_body} bytes, `NUBE_MAX_BODY_BYTES`); larger: 413",
        "x-nube-max-body-bytes": limit,
        "x-nube-max-payload-bytes": PAYLOAD_LIMIT,
        "x-nube-payload-fields": list(op.binary),
    }


def _too_large(op: Operation | None, max_body: int) -> dict[str, Any]:
    """The ``413`` answer of a route with a body; nothing is queued."""
    limit = body_limit(op, max_body)
    text = f"Payload too large (`invalid_request`): the body is over {limit} bytes"
    if op is not None and op.binary:
        text += f", or the payload is over {PAYLOAD_LIMIT} bytes decoded"
    return {**PROBLEM_RESPONSE, "description": text + "; no job is created"}


def _limits_text(max_body: int) -> str:
    payload = base64_length(PAYLOAD_LIMIT) + max_body
    return (
        f" A JSON body may be at most {max_body} bytes (`NUBE_MAX_BODY_BYTES`); an operation "
        f"with a binary payload (`x-nube-max-payload-bytes`) takes it as base64, at most "
        f"{PAYLOAD_LIMIT} bytes (16 MiB) decoded, in a body of at most {payload} bytes. A larger "
        "body answers `413` problem+json with code `invalid_request`, and no job is created."
    )


JOB_CONTENT = {"application/json": {"schema": {"$ref": REF.format(model="Job")}}}


def _job_responses(op: Operation) -> dict[str, Any]:
    """A catalog operation's answers: the resource (a read) or the job, and the problems of the
    request itself and of a job that failed within the wait."""
    responses: dict[str, Any]
    if op.method == "GET":
        responses = {
            "200": {
                "description": "The resource (the job's result): the read ended within the wait "
                "(`NUBE_READ_WAIT_SECONDS`, or `Prefer: wait=N`); the job is in the `Link` "
                'header (`rel="related"`)',
                "content": {"application/json": {"schema": {}}},
            },
            "202": {
                "description": "Accepted: the job, at its `Location` (`Prefer: respond-async`, "
                "or the wait ran out)",
                "content": JOB_CONTENT,
            },
        }
    else:
        responses = {
            "202": {"description": "Accepted: the job, at its `Location`", "content": JOB_CONTENT},
            "200": {
                "description": "The job, which succeeded within `Prefer: wait=N`",
                "content": JOB_CONTENT,
            },
        }
        if op.creates:
            responses["201"] = {
                "description": "Created: the job, which succeeded within `Prefer: wait=N`",
                "content": JOB_CONTENT,
            }
        responses["400"] = _problem("The body is not JSON (`invalid_request`)")
    for status, text in _PROBLEMS.items():
        responses[status] = _problem(text)
    return responses


_WAITED = "the job failed within the wait (the problem's `job` member links it)"
#: The problems every catalog operation may answer: the request's own, then a waited job's.
_PROBLEMS = {
    "401": "No valid bearer token (`unauthorized`)",
    "403": f"The token lacks the scope (`forbidden`), or {_WAITED}: `policy_denied`, `forbidden`",
    "404": f"Not found: {_WAITED} (`not_found`; another tenant's resource is the same)",
    "409": f"Conflict: {_WAITED} (`conflict`, with `allowed_actions` where the error has them; "
    "`cancelled`)",
    "422": f"Invalid parameters (`invalid_request`, with `errors`), or {_WAITED}",
    "429": "Rate limited (`rate_limited`, `Retry-After`)",
    "500": f"Internal error: {_WAITED} (`internal`, `worker_lost`)",
    "503": f"The broker is unavailable (`backend_unavailable`; no job), or {_WAITED}: its backend "
    "was unavailable",
    "504": f"Timed out: {_WAITED} (`timeout`)",
}


def _problem(description: str) -> dict[str, Any]:
    return {**PROBLEM_RESPONSE, "description": description}


def _fixed_responses(answers: Answer, public: bool) -> dict[str, Any]:
    if answers is Answer.JOB:
        job = {"description": "The job, whatever its state", "content": JOB_CONTENT}
        problems = ("401", "403", "404", "422", "429")
        return {"200": job, **{s: PROBLEM_RESPONSE for s in problems}}
    ok: dict[str, Any] = {
        "description": "OK",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
    first: dict[str, Any] = {
        Answer.JSON: {"200": ok},
        Answer.CREATED: {"201": {**ok, "description": "Created"}},
        Answer.DELETED: {"204": {"description": "Done"}},
        Answer.STREAM: {"200": {"description": "Server-Sent Events (text/event-stream)"}},
    }[answers]
    if public:
        return {**first, "503": PROBLEM_RESPONSE}
    return {**first, **{s: PROBLEM_RESPONSE for s in ("400", "401", "403", "404", "422", "429")}}


def _routes_app() -> Flask:
    """An app with every route of the API and no services: its rules and views are enough."""
    from api.app import register_routes  # api.app imports api.docs, which imports this module

    app = Flask(__name__)
    register_routes(app)
    return app


def _view_routes(
    app: Flask, schemas: dict[str, Any], max_body: int
) -> list[tuple[str, str, dict[str, Any]]]:
    """``(path, method, spec)`` of every route whose view is ``@documented``."""
    routes = []
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        doc = route_doc(view)
        if doc is None:
            continue
        path = _RULE_ARG.sub(r"{\1}", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            routes.append((path, method.lower(), _view_spec(rule, view, doc, schemas, max_body)))
    return routes


def _view_spec(
    rule: Rule, view: Callable[..., Any], doc: RouteDoc, schemas: dict[str, Any], max_body: int
) -> dict[str, Any]:
    summary, description = summary_and_description(view)
    scope = required_scope(view)
    needs = f"Needs scope `{scope}`." if scope else "Needs no token."
    spec: dict[str, Any] = {
        "operationId": doc.operation_id,
        "summary": summary,
        "description": f"{description}\n\n{needs}" if description else needs,
        "tags": [doc.operation_id.split(".")[0]],
        "parameters": _view_params(rule, doc, schemas),
        "responses": _fixed_responses(doc.answers, public=scope is None),
    }
    if doc.conflicts:
        spec["responses"]["409"] = PROBLEM_RESPONSE
    if doc.body is not None:
        spec["requestBody"] = _view_body(doc.body, schemas, max_body)
        spec["responses"]["413"] = _too_large(None, max_body)
    if scope is None:
        spec["security"] = []
    return spec


def _view_body(model: type[BaseModel], schemas: dict[str, Any], max_body: int) -> dict[str, Any]:
    _schema(model, schemas)
    schema = {"$ref": REF.format(model=model.__name__)}
    return {
        "required": True,
        "content": {"application/json": {"schema": schema}},
        **_body_limits(None, max_body),
    }


def _view_params(rule: Rule, doc: RouteDoc, schemas: dict[str, Any]) -> list[dict[str, Any]]:
    """Path arguments, then the query model's fields, then ``wait``."""
    params = [_param(n, "path", {"type": "string"}, True) for n in sorted(rule.arguments)]
    if doc.query is not None:
        props = _schema(doc.query, schemas)["properties"]
        params += [_param(n, "query", s, False) for n, s in props.items()]
    return [*params, WAIT] if doc.waits else params


PROBLEM = {
    "type": "object",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
        "details": {"type": "object"},
    },
}
WAIT = _param("wait", "query", {"type": "integer", "minimum": 0, "maximum": 60}, False)
"""``?wait=N``: how long a request may wait for its job (see :mod:`api.waiting`)."""
PREFER = {
    **_header(
        "Prefer",
        {"type": "string", "pattern": "^.*(wait=[0-9]+|respond-async).*$"},
    ),
    "description": "RFC 7240: `wait=N` (seconds, at most `NUBE_MAX_WAIT_SECONDS`) waits for the "
    "job; `respond-async` answers `202` with the job at once (a read waits by default)",
    "examples": {"wait": {"value": "wait=30"}, "async": {"value": "respond-async"}},
}
PROBLEM_RESPONSE = {
    "description": "Problem",
    "content": {"application/problem+json": {"schema": {"$ref": REF.format(model="Problem")}}},
}
DESCRIPTION = (
    "nube runs container (Docker) and virtual machine (libvirt) operations as jobs. A change "
    "answers `202 Accepted` with the job at `Location: /v1/jobs/<id>`; poll it, long-poll it "
    "with `?wait=N` (always `200`), or send `Prefer: wait=N` with the request to get the "
    "finished job (`200`, or `201` where it created something). A read of live infrastructure "
    "(a `GET` operation) waits for its job itself and answers `200` with the resource, or `202` "
    "with the job on `Prefer: respond-async` or when the wait runs out. A job that failed "
    "within the wait answers with its error's own status (`404`, `409`, `422`, `503` ...) as "
    "problem+json whose `job` member links the job. Errors are problem+json."
)
