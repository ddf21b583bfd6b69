"""The REST routes of every catalog operation, one blueprint per resource collection.

Each operation's Flask rule, method and parameter model come from the catalog, so the routes,
the validation and the OpenAPI document cannot drift apart. Path segments and the query string
(GET) or the JSON body (POST, PUT, PATCH, DELETE) fill the parameter model; the view checks the
body's size (``api.body``: 413 before anything is queued), validates it, submits the job, waits
for it where it should (:func:`wait_seconds`) and answers from the job
(:func:`api.representation.operation_response`): a read that ended in time is ``200`` with the
resource, a change ``202`` unless ``Prefer: wait`` saw it end, and a job that failed within the
wait is its error's own status.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, request

from api.auth import current_token, require
from api.body import body_limit, check_payload, json_body, limit_body
from api.representation import operation_response
from api.services import services
from api.submit import submit
from api.waiting import Preferences, preferences
from nube.catalog import CATALOG, Catalog, Operation
from nube.errors import InvalidRequest
from nube.settings import Settings


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


def wait_seconds(op: Operation, prefs: Preferences, settings: Settings) -> int:
    """How long the API waits for the job before it answers ``202``.

    A change (``POST``, ``DELETE``) waits only when asked (``Prefer: wait=N``). A read (``GET``)
    waits ``NUBE_READ_WAIT_SECONDS`` unless the client asks otherwise: ``Prefer: wait=N`` sets
    the wait, ``Prefer: respond-async`` alone answers at once. The wait wakes on the job's
    completion (a Redis notification), so under gunicorn's gevent workers a waiting request
    holds a greenlet and a Redis connection, not a server worker.
    """
    if prefs.wait is not None:
        return prefs.wait
    if op.method != "GET" or prefs.respond_async:
        return 0
    return min(settings.read_wait_seconds, settings.max_wait_seconds)


def make_view(op: Operation) -> Any:
    """The view function of one operation."""

    @require(op.scope)
    def view(**path_args: Any) -> Response:
        svc = services()
        params = op.params.model_validate(request_params(op, path_args))
        prefs = preferences(svc.settings.max_wait_seconds)
        key = request.headers.get("Idempotency-Key") if op.method == "POST" else None
        if key is not None and not 1 <= len(key) <= 255:
            raise InvalidRequest("Idempotency-Key: must be 1 to 255 characters")
        job, _ = submit(
            svc, op, params.model_dump(mode="json", exclude_unset=True), current_token(), key
        )
        wait = wait_seconds(op, prefs, svc.settings)
        if wait and not job.status.terminal:
            job = svc.jobs.wait(job.id, wait) or job
        return operation_response(svc, op, job, prefs, waited=prefs.wait is not None)

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
