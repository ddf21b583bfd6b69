"""The operation catalog: every operation nube offers, declared once.

An :class:`Operation` names its parameter model (pydantic, validated at the API edge and again by
the agent and the worker), its HTTP binding, the queue that serves it, its time limit and whether
it creates a resource. The API builds its routes and the OpenAPI document from this catalog, the
agent validates and routes with it, and the workers register one thin task per entry.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict

from nube.errors import NotFound

#: Largest binary payload of one request, in bytes decoded: an image archive, a volume archive,
#: the files of a build context (summed). Such payloads travel as base64 text in the JSON body.
PAYLOAD_LIMIT = 16 * 1024 * 1024


class Params(BaseModel):
    """Base of every parameter model: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class NoParams(Params):
    """An operation that takes no parameters."""


@dataclass(frozen=True)
class Operation:
    """One operation: its contract for the API, the agent and the workers."""

    name: str
    """Dotted name, ``<service>.<action>``; also the Celery task name."""
    params: type[Params]
    method: str
    """HTTP method of its REST binding."""
    path: str
    """Flask rule of its REST binding; ``<name>`` segments fill fields of ``params``."""
    summary: str
    handler: str
    """Name of the driver method that runs it."""
    time_limit: int = 60
    """Hard limit in seconds; the soft limit is a few seconds earlier."""
    creates: bool = False
    """Answers 201 when it finished within a ``Prefer: wait``."""
    scope: str = "write"
    """Token scope needed: ``read`` for reads, ``write`` for changes, ``admin`` for admin-only."""
    target: str | None = None
    """Field of ``params`` naming what the operation acts on (for logs and audit summaries)."""
    max_retries: int = 3
    """Retries of transient backend errors before the job fails ``backend_unavailable``."""
    tags: tuple[str, ...] = field(default_factory=tuple)
    binary: tuple[str, ...] = ()
    """Fields of ``params`` that carry base64 payloads (a text, or a map of texts): together at
    most ``PAYLOAD_LIMIT`` bytes decoded, and the API accepts a body that much larger."""

    @property
    def service(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def queue(self) -> str:
        """The shared queue of its service (``containers`` or ``vms``)."""
        return self.service

    @property
    def soft_time_limit(self) -> int:
        return max(1, self.time_limit - min(5, self.time_limit // 10 + 1))

    @property
    def action(self) -> str:
        return self.name.split(".", 1)[1]


class Catalog:
    """A registry of operations by name."""

    def __init__(self) -> None:
        self._ops: dict[str, Operation] = {}

    def add(self, *ops: Operation) -> None:
        for op in ops:
            if op.name in self._ops:
                raise ValueError(f"operation {op.name} declared twice")
            unknown = set(op.binary) - set(op.params.model_fields)
            if unknown:
                raise ValueError(f"operation {op.name}: binary field(s) {sorted(unknown)} unknown")
            self._ops[op.name] = op

    def get(self, name: str) -> Operation:
        try:
            return self._ops[name]
        except KeyError:
            raise NotFound(kind="operation", id=name) from None

    def __contains__(self, name: object) -> bool:
        return name in self._ops

    def __iter__(self) -> Iterator[Operation]:
        return iter(sorted(self._ops.values(), key=lambda op: op.name))

    def services(self) -> list[str]:
        return sorted({op.service for op in self._ops.values()})

    def queues(self) -> list[str]:
        return sorted({op.queue for op in self._ops.values()})


def load_catalog() -> Catalog:
    """The catalog of every operation nube ships."""
    from nube.catalog import containers, vms

    catalog = Catalog()
    catalog.add(*containers.OPERATIONS)
    catalog.add(*vms.OPERATIONS)
    return catalog


CATALOG = load_catalog()
