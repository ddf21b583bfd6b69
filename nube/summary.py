"""Redacted one-line summaries of a message, for logs, Flower and the audit log.

A summary names the operation, its target and the tenant, never parameter values such as
environment variables: those may be secrets.
"""

from __future__ import annotations

from typing import Any

from nube.catalog import CATALOG


def target_of(operation: str, params: dict[str, Any]) -> str | None:
    """The value of the operation's target field, if it declares one and it is a short string."""
    if operation not in CATALOG:
        return None
    field = CATALOG.get(operation).target
    value = params.get(field) if field else None
    return str(value)[:200] if isinstance(value, (str, int)) else None


def summarize(operation: str, params: dict[str, Any], tenant: str) -> str:
    target = target_of(operation, params)
    return f"{operation}({target or ''}) tenant={tenant}"
