"""The OpenAPI 3.1 document, generated from the catalog's parameter models and the job model.

Every request body states its size limit (``x-nube-max-body-bytes``, and for an operation with a
binary payload ``x-nube-max-payload-bytes``) and its ``413`` answer (see :mod:`api.body`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from api.audit import AuditQuery
from api.body import base64_length, body_limit
from api.jobs import JobQuery
from api.tokens import TokenCreate
from nube.catalog import CATALOG, PAYLOAD_LIMIT, Catalog, Operation
from nube.jobs import Job
from nube.settings import Settings

REF = "#/components/schemas/{model}"
_RULE_ARG = re.compile(r"<(?:[a-z]+:)?([a-z_]+)>")
#: ``NUBE_MAX_BODY_BYTES`` when none is given.
DEFAULT_MAX_BODY: int = Settings.model_fields["max_body_bytes"].default


def openapi_document(
    catalog: Catalog = CATALOG, max_body_bytes: int = DEFAULT_MAX_BODY
) -> dict[str, Any]:
    """The document; body limits as ``max_body_bytes`` (``NUBE_MAX_BODY_BYTES``) makes them."""
    schemas: dict[str, Any] = {"Problem": PROBLEM}
    paths: dict[str, Any] = {}
    for op in catalog:
        path = _RULE_ARG.sub(r"{\1}", op.path)
        paths.setdefault(path, {})[op.method.lower()] = _operation(op, schemas, max_body_bytes)
    paths.update(_fixed_paths(schemas, max_body_bytes))
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
        f"(time limit {op.time_limit} s). Needs scope `{op.scope}`.",
        "responses": _job_responses(op),
    }
    if op.method == "GET":
        params += [
            _param(n, "query", s, n in required) for n, s in props.items() if n not in path_args
        ]
        params.append(
            _param("wait", "query", {"type": "integer", "minimum": 0, "maximum": 60}, False)
        )
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
    params.append(_header("Prefer", {"type": "string", "pattern": "^.*wait=[0-9]+.*$"}))
    spec["parameters"] = params
    return spec


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


def _job_responses(op: Operation | None = None) -> dict[str, Any]:
    job = {"application/json": {"schema": {"$ref": REF.format(model="Job")}}}
    responses: dict[str, Any] = {
        "202": {"description": "Accepted: the job, at its Location", "content": job},
        "200": {"description": "The job ended within the wait", "content": job},
    }
    if op is not None and op.creates:
        responses["201"] = {"description": "Created within the wait", "content": job}
    for status in ("400", "401", "403", "404", "422", "503"):
        responses[status] = PROBLEM_RESPONSE
    return responses


@dataclass(frozen=True)
class Route:
    """A route outside the catalog (jobs, tokens, audit, services, health), for the document."""

    path: str
    method: str
    operation_id: str
    summary: str
    params: tuple[dict[str, Any], ...] = ()
    answers: str = "json"
    """``job`` (the job responses), ``json``, ``created``, ``deleted`` or ``stream``."""
    body: str | None = None
    public: bool = False

    def spec(self, max_body: int = DEFAULT_MAX_BODY) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "operationId": self.operation_id,
            "summary": self.summary,
            "tags": [self.operation_id.split(".")[0]],
            "parameters": list(self.params),
            "responses": _fixed_responses(self.answers, self.public),
        }
        if self.body:
            schema = {"$ref": REF.format(model=self.body)}
            spec["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": schema}},
                **_body_limits(None, max_body),
            }
            spec["responses"]["413"] = _too_large(None, max_body)
        if self.public:
            spec["security"] = []
        return spec


def _fixed_responses(answers: str, public: bool) -> dict[str, Any]:
    if answers == "job":
        return {**_job_responses(), "409": PROBLEM_RESPONSE}
    ok: dict[str, Any] = {
        "description": "OK",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
    first: dict[str, Any] = {
        "json": {"200": ok},
        "created": {"201": {**ok, "description": "Created"}},
        "deleted": {"204": {"description": "Done"}},
        "stream": {"200": {"description": "Server-Sent Events (text/event-stream)"}},
    }[answers]
    if public:
        return {**first, "503": PROBLEM_RESPONSE}
    return {**first, **{s: PROBLEM_RESPONSE for s in ("400", "401", "403", "404", "422", "429")}}


def _query(schema: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    return tuple(_param(n, "query", s, False) for n, s in schema["properties"].items())


def _fixed_paths(schemas: dict[str, Any], max_body: int) -> dict[str, Any]:
    _schema(Job, schemas)
    _schema(TokenCreate, schemas)
    jobs, audit = _query(_schema(JobQuery, schemas)), _query(_schema(AuditQuery, schemas))
    job_id = _param("job_id", "path", {"type": "string"}, True)
    token_id = _param("token_id", "path", {"type": "string"}, True)
    wait = _param("wait", "query", {"type": "integer", "minimum": 0, "maximum": 60}, False)
    routes = [
        Route("/v1/jobs", "get", "jobs.list", "The caller's jobs, newest first", jobs),
        Route(
            "/v1/jobs/{job_id}",
            "get",
            "jobs.get",
            "A job; `?wait=N` long-polls",
            (job_id, wait),
            "job",
        ),
        Route(
            "/v1/jobs/{job_id}", "delete", "jobs.cancel", "Cancel a queued job", (job_id,), "job"
        ),
        Route(
            "/v1/jobs/{job_id}/events",
            "get",
            "jobs.events",
            "Server-Sent Events of the job",
            (job_id,),
            "stream",
        ),
        Route("/v1/tokens", "get", "tokens.list", "List tokens (admin)"),
        Route(
            "/v1/tokens",
            "post",
            "tokens.create",
            "Create a token (admin); the secret is shown once",
            (),
            "created",
            "TokenCreate",
        ),
        Route(
            "/v1/tokens/{token_id}",
            "delete",
            "tokens.revoke",
            "Revoke a token (admin)",
            (token_id,),
            "deleted",
        ),
        Route("/v1/audit", "get", "audit.read", "Audit records, oldest first (admin)", audit),
        Route("/v1/services", "get", "services.list", "Services, operations, live instances"),
        Route("/v1/nodes", "get", "services.nodes", "Nodes with live workers"),
        Route("/healthz", "get", "health.alive", "Alive", public=True),
        Route("/readyz", "get", "health.ready", "Redis reachable; queues served", public=True),
    ]
    paths: dict[str, Any] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method] = route.spec(max_body)
    return paths


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
PROBLEM_RESPONSE = {
    "description": "Problem",
    "content": {"application/problem+json": {"schema": {"$ref": REF.format(model="Problem")}}},
}
DESCRIPTION = (
    "nube runs container (Docker) and virtual machine (libvirt) operations as jobs. Every "
    "operation answers `202 Accepted` with `Location: /v1/jobs/<id>`; poll it, long-poll it "
    "with `?wait=N`, or send `Prefer: wait=N` with the request. Errors are problem+json."
)
