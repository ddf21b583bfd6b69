"""What the OpenAPI document says about a route outside the catalog, declared on its view.

The document (:mod:`api.openapi`) reads these routes from the app itself: a route's rule and
methods from Flask, its summary (first line) and description (the rest) from the view's
docstring, the scope it needs from ``@require``, and its query model, body model and kind of
answer from ``@documented`` here. A view without ``@documented`` stays out of the document (the
document itself, the docs page); catalog operations are documented from the catalog.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from pydantic import BaseModel

F = TypeVar("F", bound=Callable[..., Any])

_ATTR = "nube_route_doc"


class Answer(StrEnum):
    """What a route answers when it succeeds."""

    JSON = "json"
    """``200`` with a JSON object."""
    JOB = "job"
    """``200`` with the job, whatever its state."""
    CREATED = "created"
    """``201`` with a JSON object."""
    DELETED = "deleted"
    """``204`` with no body."""
    STREAM = "stream"
    """``200`` with Server-Sent Events."""


@dataclass(frozen=True)
class RouteDoc:
    """A documented route's contract beyond its rule, docstring and scope."""

    operation_id: str
    """``<tag>.<action>``; the tag groups it in the document."""
    answers: Answer = Answer.JSON
    query: type[BaseModel] | None = None
    """Model of its query string; each field is an optional query parameter."""
    body: type[BaseModel] | None = None
    """Model of its JSON body."""
    waits: bool = False
    """Takes ``?wait=N`` (seconds to wait for a job to end)."""
    conflicts: bool = False
    """May answer ``409`` (the resource's state forbids the change)."""


def documented(
    operation_id: str,
    answers: Answer = Answer.JSON,
    query: type[BaseModel] | None = None,
    body: type[BaseModel] | None = None,
    waits: bool = False,
    conflicts: bool = False,
) -> Callable[[F], F]:
    """Decorator: the view's route is in the OpenAPI document as ``operation_id``."""
    doc = RouteDoc(operation_id, answers, query, body, waits, conflicts)

    def mark(view: F) -> F:
        setattr(view, _ATTR, doc)
        return view

    return mark


def route_doc(view: Callable[..., Any]) -> RouteDoc | None:
    """The view's :class:`RouteDoc`, or None when it is not documented."""
    doc = getattr(view, _ATTR, None)
    return doc if isinstance(doc, RouteDoc) else None


def summary_and_description(view: Callable[..., Any]) -> tuple[str, str]:
    """The docstring's first paragraph, on one line, and the rest ("" when there is none)."""
    text = inspect.getdoc(view) or ""
    first, _, rest = text.partition("\n\n")
    return " ".join(first.split()), rest.strip()
