"""The log set-up on its own: allow-listed JSON fields, the context, the format setting."""

from __future__ import annotations

import io
import json
import logging

import pytest

from nube.observability import context, logs, tracing


def emit(fmt: str, *args: object, **extra: object) -> str:
    out = io.StringIO()
    handler = logs.handler("containers", "node1", fmt)
    handler.setStream(out)  # type: ignore[attr-defined]
    logger = logging.getLogger("tests.observability.emit")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("task %s done", *args, extra=extra)
    finally:
        logger.removeHandler(handler)
    return out.getvalue()


def test_a_json_line_has_the_context_and_only_allow_listed_fields() -> None:
    with context.bound(job_id="j1", tenant="acme", operation="containers.run", request_id="r1"):
        line = json.loads(emit("json", "x", data={"kwargs": "{'env': {'TOKEN': 's3cret'}}"}))
    assert line["message"] == "task x done"
    assert line["level"] == "WARNING" and line["logger"] == "tests.observability.emit"
    assert (line["service"], line["node"]) == ("containers", "node1")
    assert (line["job_id"], line["tenant"], line["operation"]) == ("j1", "acme", "containers.run")
    assert line["request_id"] == "r1"
    # Celery passes a task's arguments as extra=data: never written
    assert "data" not in line and "s3cret" not in json.dumps(line)
    assert set(line) <= set(logs.JSON_FIELDS)


def test_unknown_fields_are_left_out_and_the_context_ends_with_its_block() -> None:
    with context.bound(job_id="j2"):
        pass
    line = json.loads(emit("json", "y"))
    assert "job_id" not in line and "tenant" not in line


def test_a_text_line_names_the_service_and_the_context() -> None:
    with context.bound(job_id="j3"):
        text = emit("text", "z")
    assert " containers " in text and "job_id=j3" in text and text.rstrip().endswith("task z done")


def test_the_trace_id_of_the_span_in_hand_is_logged(tmp_path: object) -> None:
    span_ctx = tracing.context_of("00-" + "ab" * 16 + "-" + "cd" * 8 + "-01")
    assert span_ctx is not None
    token = tracing.otel_context.attach(span_ctx)
    try:
        line = json.loads(emit("json", "t"))
    finally:
        tracing.otel_context.detach(token)
    assert line["trace_id"] == "ab" * 16


@pytest.mark.parametrize(
    "value, tty, expected",
    [("json", True, "json"), ("text", False, "text"), ("", True, "text"), ("", False, "json")],
)
def test_the_format_setting_and_its_default(
    monkeypatch: pytest.MonkeyPatch, value: str, tty: bool, expected: str
) -> None:
    monkeypatch.setattr("sys.stderr.isatty", lambda: tty)
    assert logs.log_format({logs.FORMAT_VARIABLE: value}) == expected


def test_traceparent_helpers() -> None:
    parent = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"
    assert tracing.trace_id_of(parent) == "1" * 32
    assert tracing.context_of("garbage") is None and tracing.context_of(None) is None
    assert tracing.current_traceparent() is None  # no span in hand
