"""One log set-up for every nube process: JSON lines (python-json-logger) or plain text.

``NUBE_LOG_FORMAT`` is ``json`` or ``text``; unset, a process whose standard error is a terminal
writes text and any other (a file, a container's log, ``make up``'s ``*.log``) writes JSON.
Every line names the ``service`` and ``node``, and, where known, the ``request_id``, ``job_id``,
``trace_id``, ``tenant`` and ``operation`` (:mod:`nube.observability.context`).

Only an allow-list of fields is written: a record's other attributes never are (Celery passes a
task's arguments to its log calls as ``extra``; they may hold parameters or secrets). The
message is written as the code formatted it, and nube's own messages never quote a parameter.
Celery's own records go through the same handler: :func:`configure` answers Celery's
``setup_logging`` signal, so a worker does not install its own handlers.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from nube.observability import context

FORMAT_VARIABLE = "NUBE_LOG_FORMAT"
#: The fields a JSON line may have, in order (any other attribute of a record is left out).
JSON_FIELDS = ("time", "level", "logger", "message", "service", "node", *context.FIELDS, "exc")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(service)s %(name)s%(ctx)s %(message)s"


class ContextFilter(logging.Filter):
    """Puts ``service``, ``node`` and the context's fields on every record."""

    def __init__(self, service: str, node: str) -> None:
        super().__init__()
        self.service, self.node = service, node

    def filter(self, record: logging.LogRecord) -> bool:
        record.service, record.node = self.service, self.node
        fields = context.current()
        for name in context.FIELDS:
            setattr(record, name, fields.get(name))
        if record.trace_id is None:  # type: ignore[attr-defined]
            record.trace_id = _active_trace_id()
        record.ctx = "".join(
            f" {name}={value}" for name in context.FIELDS if (value := getattr(record, name))
        )
        return True


def _active_trace_id() -> str | None:
    from nube.observability.tracing import active_trace_id

    return active_trace_id()


class NubeJsonFormatter(JsonFormatter):
    """JSON lines with the allow-listed fields only; unknown context fields are left out."""

    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            timestamp=False,
            json_ensure_ascii=False,  # UTF-8 as written (a `→` stays greppable)
        )

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_data, record, message_dict)
        for name in ("service", "node", *context.FIELDS):
            log_data[name] = getattr(record, name, None)
        if record.exc_info and "exc_info" in log_data:
            log_data["exc"] = log_data.pop("exc_info")
        kept = {k: log_data[k] for k in JSON_FIELDS if log_data.get(k) is not None}
        log_data.clear()
        log_data.update(kept)


def log_format(environ: dict[str, str] | None = None) -> str:
    """``json`` or ``text``: ``NUBE_LOG_FORMAT``, else text on a terminal and JSON elsewhere."""
    value = (environ if environ is not None else os.environ).get(FORMAT_VARIABLE, "").lower()
    if value in ("json", "text"):
        return value
    return "text" if sys.stderr.isatty() else "json"


def handler(service: str, node: str, fmt: str | None = None) -> logging.Handler:
    """A standard-error handler with nube's filter and formatter."""
    out = logging.StreamHandler(sys.stderr)
    out.addFilter(ContextFilter(service, node))
    if (fmt or log_format()) == "json":
        out.setFormatter(NubeJsonFormatter())
    else:
        out.setFormatter(logging.Formatter(TEXT_FORMAT))
    return out


def configure(service: str, node: str, level: str | int = "INFO", fmt: str | None = None) -> None:
    """Replace the root logger's handlers with nube's; Celery keeps them (it sees a receiver of
    its ``setup_logging`` signal and configures nothing)."""
    from celery.signals import celeryd_after_setup, setup_logging

    root = logging.getLogger()
    # drop basicConfig's handler and any of ours, keep others (a test runner's capture)
    kept = [h for h in root.handlers if type(h) is not logging.StreamHandler]
    root.handlers = [*kept, handler(service, node, fmt)]
    root.setLevel(level)
    logging.captureWarnings(True)  # Python warnings (Celery's SecurityWarning) as records
    for name in ("celery", "celery.task", "celery.redirected"):
        logging.getLogger(name).handlers = []
    setup_logging.connect(_keep_ours, weak=False)
    if (fmt or log_format()) == "json":
        celeryd_after_setup.connect(_no_banner, weak=False)


def _keep_ours(**_: Any) -> None:
    """Celery's ``setup_logging``: nube configured logging already."""


def _no_banner(instance: Any = None, **_: Any) -> None:
    """A worker writing JSON lines prints no banner (``celery worker --quiet``); Celery still
    prints its shutdown notices (``worker: Warm shutdown ...``) as plain lines."""
    if instance is not None:
        instance.quiet = True
