"""The OpenAPI 3.1 document, generated from the catalog's parameter models and the job model."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

from api.jobs import JobQuery
from api.tokens import TokenCreate
from nube.catalog import CATALOG, Catalog, Operation
from nube.jobs import Job

REF = "#/components/schemas/{model}"
_RULE_ARG = re.compile(r"<(?:[a-z]+:)?([a-z_]+)>")


def openapi_document(catalog: Catalog = CATALOG) -> dict[str, Any]:
    schemas: dict[str, Any] = {"Problem": PROBLEM}
    paths: dict[str, Any] = {}
    for op in catalog:
        path = _RULE_ARG.sub(r"{\1}", op.path)
        paths.setdefault(path, {})[op.method.lower()] = _operation(op, schemas)
    paths.update(_fixed_paths(schemas))
    return {
        "openapi": "3.1.0",
        "info": {"title": "nube", "version": "1", "description": DESCRIPTION},
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


def _operation(op: Operation, schemas: dict[str, Any]) -> dict[str, Any]:
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
        }
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


def _job_responses(op: Operation | None = None) -> dict[str, Any]:
    job = {"application/json": {"schema": {"$ref": REF.format(model="Job")}}}
    responses: dict[str, Any] = {
        "202": {"description": "Accepted: the job, at its Location", "content": job},
        "200": {"description": "The job ended within the wait", "content": job},
    }
    if op is not None and op.creates:
        responses["201"] = {"description": "Created within the wait", "content": job}
    for status in ("400", "401", "403", "404", "413", "422", "503"):
        responses[status] = PROBLEM_RESPONSE
    return responses


def _fixed_paths(schemas: dict[str, Any]) -> dict[str, Any]:
    _schema(Job, schemas)
    _schema(TokenCreate, schemas)
    query = _schema(JobQuery, schemas)
    job_id = _param("job_id", "path", {"type": "string"}, True)
    token_id = _param("token_id", "path", {"type": "string"}, True)
    wait = _param("wait", "query", {"type": "integer", "minimum": 0, "maximum": 60}, False)
    ok = {
        "200": {
            "description": "OK",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    }
    problems = {s: PROBLEM_RESPONSE for s in ("400", "401", "403", "404", "422")}
    return {
        "/v1/jobs": {
            "get": {
                "operationId": "jobs.list",
                "summary": "The caller's jobs, newest first",
                "tags": ["jobs"],
                "parameters": [
                    _param(n, "query", s, False) for n, s in query["properties"].items()
                ],
                "responses": {**ok, **problems},
            }
        },
        "/v1/jobs/{job_id}": {
            "get": {
                "operationId": "jobs.get",
                "summary": "A job; `?wait=N` long-polls",
                "tags": ["jobs"],
                "parameters": [job_id, wait],
                "responses": _job_responses(),
            },
            "delete": {
                "operationId": "jobs.cancel",
                "summary": "Cancel a queued job",
                "tags": ["jobs"],
                "parameters": [job_id],
                "responses": {**_job_responses(), "409": PROBLEM_RESPONSE},
            },
        },
        "/v1/jobs/{job_id}/events": {
            "get": {
                "operationId": "jobs.events",
                "summary": "Server-Sent Events of the job",
                "tags": ["jobs"],
                "parameters": [job_id],
                "responses": {"200": {"description": "text/event-stream"}, **problems},
            }
        },
        "/v1/tokens": {
            "get": {
                "operationId": "tokens.list",
                "summary": "List tokens (admin)",
                "tags": ["tokens"],
                "responses": {**ok, **problems},
            },
            "post": {
                "operationId": "tokens.create",
                "summary": "Create a token (admin); the secret is shown once",
                "tags": ["tokens"],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": REF.format(model="TokenCreate")}}
                    },
                },
                "responses": {"201": ok["200"], **problems},
            },
        },
        "/v1/tokens/{token_id}": {
            "delete": {
                "operationId": "tokens.revoke",
                "summary": "Revoke a token (admin)",
                "tags": ["tokens"],
                "parameters": [token_id],
                "responses": {"204": {"description": "Revoked"}, **problems},
            }
        },
        "/v1/services": {
            "get": {
                "operationId": "services.list",
                "summary": "Services, operations, live instances",
                "tags": ["services"],
                "responses": {**ok, **problems},
            }
        },
        "/v1/nodes": {
            "get": {
                "operationId": "nodes.list",
                "summary": "Nodes with live workers",
                "tags": ["services"],
                "responses": {**ok, **problems},
            }
        },
        "/healthz": {
            "get": {
                "operationId": "health.alive",
                "summary": "Alive",
                "tags": ["health"],
                "security": [],
                "responses": ok,
            }
        },
        "/readyz": {
            "get": {
                "operationId": "health.ready",
                "summary": "Redis reachable; queues served",
                "tags": ["health"],
                "security": [],
                "responses": {**ok, "503": PROBLEM_RESPONSE},
            }
        },
    }


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
