"""``GET /v1/audit`` (admin): the tamper-evident audit log, filtered."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, Response, jsonify, request
from pydantic import Field

from api.auth import require
from api.routedoc import documented
from api.services import services
from nube.audit.log import Query
from nube.catalog import Params

bp = Blueprint("audit", __name__, url_prefix="/v1/audit")


class AuditQuery(Params):
    tenant: str | None = Field(default=None, max_length=63)
    job_id: str | None = Field(default=None, max_length=100)
    operation: str | None = Field(default=None, max_length=100)
    since: datetime | None = Field(default=None, description="ISO 8601 time")
    until: datetime | None = Field(default=None, description="ISO 8601 time")
    limit: int = Field(default=100, ge=1, le=1000)
    after: str | None = Field(default=None, pattern=r"^\d{1,19}-\d{1,19}$", description="Cursor")


@bp.get("")
@documented("audit.read", query=AuditQuery)
@require("admin")
def read_audit() -> Response:
    """Audit records, oldest first, with a cursor to the next page."""
    q = AuditQuery.model_validate(request.args.to_dict())
    records, cursor = services().audit.query(
        Query(
            tenant=q.tenant,
            job_id=q.job_id,
            operation=q.operation,
            since=q.since.timestamp() if q.since else None,
            until=q.until.timestamp() if q.until else None,
            limit=q.limit,
            after=q.after,
        )
    )
    body: dict[str, Any] = {"records": records, "next_cursor": cursor}
    return jsonify(body)
