"""The REST routes of every catalog operation, one blueprint per resource collection.

Each operation's Flask rule, method and parameter model come from the catalog, so the routes,
the validation and the OpenAPI document cannot drift apart. Path segments and the query string
(GET) or the JSON body (POST, PUT, PATCH, DELETE) fill the parameter model; the view checks the
body's size (``api.body``: 413 before anything is queued), validates it, submits the job and answers
``202`` (or the finished job when ``Prefer: wait`` was honoured).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, request

from api.auth import current_token, require
from api.body import body_limit, check_payload, json_body, limit_body
from api.representation import job_response
from api.services import services
from api.submit import submit
from api.waiting import requested_wait
from nube.catalog import CATALOG, Catalog, Operation
from nube.errors import InvalidRequest


def collection_of(op: Operation) -> str:
    """The resource collection of an operation's path: ``/v1/containers/<id>/stop`` → containers."""
    return op.path.split("/")[2]


def request_params(op: Operation, path_args: dict[str, Any]) -> dict[str, Any]:
    """The raw parameters of a request: path arguments plus the query string or JSON body."""
    if op.method == "GET":
        query = request.args.to_dict(flat=False)
        query.pop("wait", None)
        raw: dict[str, Any] = {k: v if len(v) > 1 else v[0] for k, v in query.items()}
    else:
        limit_body(body_limit(op, services().settings.max_body_bytes))
        raw = json_body()
        check_payload(op, raw)
    clash = set(raw) & set(path_args)
    if clash:
        raise InvalidRequest(f"{sorted(clash)[0]}: given in both the path and the body")
    return {**raw, **path_args}


def make_view(op: Operation) -> Any:
    """The view function of one operation."""

    @require(op.scope)
    def view(**path_args: Any) -> Response:
        svc = services()
        params = op.params.model_validate(request_params(op, path_args))
        wait = requested_wait(svc.settings.max_wait_seconds)
        key = request.headers.get("Idempotency-Key") if op.method == "POST" else None
        if key is not None and not 1 <= len(key) <= 255:
            raise InvalidRequest("Idempotency-Key: must be 1 to 255 characters")
        job, _ = submit(
            svc, op, params.model_dump(mode="json", exclude_unset=True), current_token(), key
        )
        if wait:
            job = svc.jobs.wait(job.id, wait) or job
        return job_response(svc, job, waited=wait is not None, wait=wait or 0)

    view.__name__ = op.name.replace(".", "_")
    view.__doc__ = op.summary
    return view


def register(app: Flask, catalog: Catalog = CATALOG) -> None:
    """One blueprint per collection, with a route per operation."""
    blueprints: dict[str, Blueprint] = {}
    for op in catalog:
        name = collection_of(op)
        bp = blueprints.setdefault(name, Blueprint(name.replace("-", "_"), __name__))
        bp.add_url_rule(
            op.path,
            endpoint=op.name.replace(".", "_"),
            view_func=make_view(op),
            methods=[op.method],
        )
    for bp in blueprints.values():
        app.register_blueprint(bp)
