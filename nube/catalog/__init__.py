"""The operation catalog: every operation nube offers, declared once.

An :class:`Operation` names its parameter model (pydantic, validated at the API edge and again by
the agent and the worker), its HTTP binding, the queue that serves it, its time limit, whether it
creates a resource, where it runs and what a policy count cap counts. The catalog answers every
question about an operation, so nothing else restates operation names: the API builds its routes
and the OpenAPI document from it, the agent validates, routes and counts with it, the policy finds
the operations its count caps limit in it, and the workers register one thin task per entry.
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
    """Makes a resource: answers 201 when it finished within a ``Prefer: wait``."""
    scope: str = "write"
    """Token scope needed: ``read`` for reads, ``write`` for changes, ``admin`` for admin-only."""
    target: str | None = None
    """Field of ``params`` naming what the operation acts on (for logs and audit summaries)."""
    max_retries: int = 3
    """Retries of transient backend errors before the job fails ``backend_unavailable``."""
    pinned: bool = False
    """Acts on an existing resource that lives on one node (a VM on its hypervisor): the agent
    routes it to that node's queue, ``<service>.<node>``, found by the ``name`` parameter."""
    places: bool = False
    """Makes a resource that lives on one node: once it succeeds, the worker records its own node
    for the parameter :attr:`placed_by` names (see :mod:`nube.placement`)."""
    placed_by: str = "name"
    """The parameter naming what :attr:`places` places: ``name``, or for an operation that
    makes a resource under another name (a rename's ``new_name``, a clone's target) that one."""
    placed_on: str | None = None
    """The parameter naming the node where :attr:`places` places the resource (a migration's
    destination); ``None``: the node of the worker that ran the operation."""
    releases: bool = False
    """Removes such a resource: once it succeeds, the worker forgets where ``name`` lived. With
    :attr:`places` and another :attr:`placed_by`, the resource moves: a rename."""
    counted_kind: str | None = None
    """The kind a policy count cap limits (``containers``, ``vms``) of which this operation makes
    one more (it ``creates``), or which it lists for the count (it has ``lists_all``)."""
    lists_all: Params | None = field(default=None, compare=False)  # a model is not hashable
    """For the list operation that counts ``counted_kind``: the parameters that list every one
    the tenant has, stopped ones too; the result holds the list under the key ``counted_kind``."""
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
            _check(op)
            if op.lists_all is not None and any(
                o.lists_all is not None and o.counted_kind == op.counted_kind
                for o in self._ops.values()
            ):
                raise ValueError(f"operation {op.name}: a second list of {op.counted_kind}")
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

    def creating(self, kind: str) -> frozenset[str]:
        """The names of the operations that make one more ``kind`` (what a count cap limits)."""
        return frozenset(op.name for op in self if op.creates and op.counted_kind == kind)

    def counter(self, kind: str) -> Operation:
        """The list operation that counts a tenant's ``kind`` (the one with ``lists_all``)."""
        for op in self:
            if op.lists_all is not None and op.counted_kind == kind:
                return op
        raise NotFound(kind="count", id=kind)


def _check(op: Operation) -> None:
    """Refuse an operation whose fields contradict each other or name unknown parameters."""
    fields = set(op.params.model_fields)
    unknown = set(op.binary) - fields
    if unknown:
        raise ValueError(f"operation {op.name}: binary field(s) {sorted(unknown)} unknown")
    if (op.pinned or op.places or op.releases) and "name" not in fields:
        raise ValueError(f"operation {op.name}: placement needs a name parameter")
    if op.places and op.placed_by not in fields:
        raise ValueError(f"operation {op.name}: placed_by {op.placed_by!r} is not a parameter")
    if op.placed_on is not None and (not op.places or op.placed_on not in fields):
        raise ValueError(f"operation {op.name}: placed_on {op.placed_on!r} needs places")
    if op.places and op.releases and op.placed_by == "name":
        raise ValueError(f"operation {op.name}: places and releases the same name")
    if op.lists_all is not None and not isinstance(op.lists_all, op.params):
        raise ValueError(f"operation {op.name}: lists_all is not a {op.params.__name__}")
    lists = op.lists_all is not None
    if lists and (op.creates or op.counted_kind is None):
        raise ValueError(f"operation {op.name}: lists_all needs a counted_kind and no creates")
    if op.counted_kind is not None and not (op.creates or lists):
        raise ValueError(f"operation {op.name}: counted_kind without creates or lists_all")


def load_catalog() -> Catalog:
    """The catalog of every operation nube ships."""
    from nube.catalog import containers, vms

    catalog = Catalog()
    catalog.add(*containers.OPERATIONS)
    catalog.add(*vms.OPERATIONS)
    return catalog


CATALOG = load_catalog()
