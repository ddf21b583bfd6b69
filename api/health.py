"""Health, readiness, and the live services and nodes."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, jsonify
from kombu import Connection

from api.auth import current_token, require
from api.routedoc import documented
from api.services import services
from nube import tls
from nube.broker import INGRESS_QUEUE
from nube.catalog import CATALOG
from nube.nodes import lost_nodes, when
from nube.redis_client import REDIS_ERRORS
from nube.registry import describe
from nube.settings import Settings

bp = Blueprint("health", __name__)

#: Seconds ``/readyz`` gives each RabbitMQ node to take a connection.
BROKER_CHECK_TIMEOUT = 2.0


@bp.get("/healthz")
@documented("health.alive")
def healthz() -> Response:
    """The API process is alive."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
@documented("health.ready")
def readyz() -> tuple[Response, int]:
    """Redis is reachable (and RabbitMQ, when it is the broker); which queues have live
    consumers."""
    svc = services()
    try:
        svc.redis.ping()
        served = svc.registry.served_queues()
    except REDIS_ERRORS as e:
        return jsonify({"status": "unavailable", "redis": f"unreachable: {e}"}), 503
    body: dict[str, Any] = {"status": "ready", "redis": "ok"}
    if svc.settings.amqp:
        problem = broker_problem(svc.settings)
        body["broker"] = f"unreachable: {problem}" if problem else "ok"
        if problem:
            return jsonify(body | {"status": "unavailable"}), 503
    body["queues"] = {q: q in served for q in [INGRESS_QUEUE, *CATALOG.queues()]}
    return jsonify(body), 200


def broker_problem(settings: Settings, timeout: float = BROKER_CHECK_TIMEOUT) -> str | None:
    """None when RabbitMQ takes a connection (the nodes of a failover list are tried in turn,
    each for ``timeout`` s, until one does); else the last node's error, named by its host and
    port (never the URL: it holds the password)."""
    problem = "no broker URL"
    for url in (settings.broker_url or "").split(";"):
        ssl: dict[str, Any] | bool = tls.amqp_options(settings) or False
        if isinstance(ssl, dict):
            ssl["server_hostname"] = urlsplit(url).hostname
        try:
            with Connection(url, connect_timeout=timeout, ssl=ssl) as conn:
                conn.ensure_connection(max_retries=0)  # no retry, no backoff sleep
            return None
        except Exception as e:  # any failure is the answer
            problem = f"{urlsplit(url).hostname}:{urlsplit(url).port}: {e}"
    return problem


@bp.get("/v1/services")
@documented("services.list")
@require("read")
def list_services() -> Response:
    """Each service's operations with their parameter schemas, and its live instances."""
    live = services().registry.live()
    body: dict[str, Any] = {}
    for name in ["agent", *CATALOG.services()]:
        body[name] = {
            "operations": [
                {
                    "name": op.name,
                    "method": op.method,
                    "path": op.path,
                    "summary": op.summary,
                    "scope": op.scope,
                    "time_limit": op.time_limit,
                    "parameters": op.params.model_json_schema(),
                }
                for op in CATALOG
                if op.service == name
            ],
            "instances": describe([i for i in live if i.kind == name]),
        }
    return jsonify({"services": body})


@bp.get("/v1/nodes")
@documented("services.nodes")
@require("read")
def list_nodes() -> Response:
    """Nodes with live workers, and what each runs; and the nodes the agent declared lost
    (``state: lost``: when it was last heard of, since when it is lost, the caller's VMs
    placed on it, every tenant's for an admin)."""
    svc = services()
    nodes: dict[str, dict[str, Any]] = {}
    for inst in svc.registry.live():
        node = nodes.setdefault(inst.node, _node(inst.node))
        node["services"].append(
            {
                "kind": inst.kind,
                "instance": inst.name,
                "driver": inst.driver,
                "backend_version": inst.backend_version,
                "capacity": inst.capacity,
            }
        )
    token = current_token()
    for name, record in lost_nodes(svc.redis).items():
        vms = record.get("vms") or []
        nodes.setdefault(name, _node(name)).update(
            state="lost",
            last_seen=when(float(record["last_seen"])),
            lost_since=when(float(record["declared_at"])),
            vms=[vm for vm in vms if token.admin or vm.get("tenant") == token.tenant],
        )
    return jsonify({"nodes": sorted(nodes.values(), key=lambda n: n["name"])})


def _node(name: str) -> dict[str, Any]:
    return {"name": name, "state": "live", "services": []}
