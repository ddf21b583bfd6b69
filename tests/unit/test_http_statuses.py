"""The statuses the OpenAPI document names are the ones the API sends (docs/architecture.md,
"Response codes"), and a stored error finds its status back (``nube.errors.error_class``)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from api.openapi import openapi_document
from nube.catalog import CATALOG
from nube.errors import error_class

JOB = {"$ref": "#/components/schemas/Job"}


def responses(doc: dict[str, Any], method: str, rule: str) -> dict[str, Any]:
    path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule)
    return dict(doc["paths"][path][method.lower()]["responses"])


def test_reads_answer_the_resource_or_the_job_and_changes_the_job() -> None:
    doc = openapi_document()
    for op in CATALOG:
        got = responses(doc, op.method, op.path)
        assert got["202"]["content"]["application/json"]["schema"] == JOB, op.name
        if op.method == "GET":
            assert got["200"]["content"]["application/json"]["schema"] == {}, op.name
            assert "201" not in got and "400" not in got and "413" not in got, op.name
        else:
            assert got["200"]["content"]["application/json"]["schema"] == JOB, op.name
            assert ("201" in got) is op.creates, op.name
            assert {"400", "413"} <= set(got), op.name
        # the request's own problems, then a waited job's (its error's own status)
        for status in ("401", "403", "404", "409", "422", "429", "500", "503", "504"):
            assert "application/problem+json" in got[status]["content"], (op.name, status)


def test_a_job_reads_200_whatever_its_state() -> None:
    doc = openapi_document()
    got = responses(doc, "GET", "/v1/jobs/<job_id>")
    assert set(got) == {"200", "401", "403", "404", "422", "429"}
    assert got["200"]["content"]["application/json"]["schema"] == JOB
    assert set(responses(doc, "DELETE", "/v1/jobs/<job_id>")) >= {"200", "409"}
    assert "202" not in responses(doc, "DELETE", "/v1/jobs/<job_id>")


@pytest.mark.parametrize(
    ("code", "title", "status"),
    [
        ("not_found", None, 404),
        ("conflict", "Conflict", 409),
        ("cancelled", None, 409),
        ("invalid_request", None, 422),
        ("invalid_request", "Payload too large", 413),
        ("policy_denied", None, 403),
        ("forbidden", "Forbidden", 403),
        ("backend_unavailable", "Backend unavailable", 503),
        ("timeout", None, 504),
        ("worker_lost", None, 500),
        ("internal", "Backend error", 500),
        ("no_such_code", None, 500),
    ],
)
def test_a_stored_error_finds_its_status(code: str, title: str | None, status: int) -> None:
    assert error_class(code, title).status == status
