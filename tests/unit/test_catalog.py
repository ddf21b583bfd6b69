"""The catalog answers every question about an operation, and every answer holds.

Each operation names a driver method that exists, with the signature the worker calls it with,
on its service's driver interface and on every driver; the typed fields (routing, placement,
counting) agree with each other and with what the agent and the policy derive from them.
"""

from __future__ import annotations

import inspect
import typing
from abc import ABCMeta
from typing import Any

import pytest

from agents.policy import CONTAINER_CREATES, VM_CREATES
from nube.catalog import CATALOG, Catalog, NoParams, Operation
from nube.catalog.container_models import ContainerList
from nube.catalog.vm_models import VmList, VmRef
from nube.errors import NotFound
from workers.drivers import JobContext
from workers.drivers.containers import ContainerDriver
from workers.drivers.docker import DockerDriver
from workers.drivers.fake import FakeContainerDriver, FakeHypervisorDriver
from workers.drivers.hypervisor import HypervisorDriver
from workers.drivers.libvirt import LibvirtDriver

#: service → its driver interface and every driver that implements it (add a fake here)
DRIVERS: dict[str, tuple[ABCMeta, ...]] = {
    "containers": (ContainerDriver, DockerDriver, FakeContainerDriver),
    "vms": (HypervisorDriver, LibvirtDriver, FakeHypervisorDriver),
}


def test_every_service_has_a_driver_interface() -> None:
    assert set(CATALOG.services()) == set(DRIVERS)


@pytest.mark.parametrize(
    "op, driver",
    [(op, driver) for op in CATALOG for driver in DRIVERS[op.service]],
    ids=lambda v: v.name if isinstance(v, Operation) else v.__name__,
)
def test_each_operation_names_a_driver_method_with_its_signature(
    op: Operation, driver: type
) -> None:
    """``method(params, ctx)``: the validated params model instance, then the job context."""
    method = getattr(driver, op.handler, None)
    assert callable(method), f"{driver.__name__} has no method {op.handler}"
    interface = driver is DRIVERS[op.service][0]
    assert getattr(method, "__isabstractmethod__", False) is interface
    params = list(inspect.signature(method).parameters.values())
    assert [p.kind for p in params] == [inspect.Parameter.POSITIONAL_OR_KEYWORD] * 3, params
    hints = typing.get_type_hints(method)
    first, second = params[1].name, params[2].name
    if first in hints:
        assert hints[first] is op.params, (hints[first], op.params)
    if second in hints:
        assert hints[second] is JobContext


def test_the_drivers_are_concrete() -> None:
    for _, *drivers in DRIVERS.values():
        for driver in drivers:
            assert not inspect.isabstract(driver), driver.__abstractmethods__


def test_creating_operations_of_the_count_caps() -> None:
    assert CATALOG.creating("containers") == {"containers.run", "containers.create"}
    assert CATALOG.creating("vms") == {"vms.define", "vms.clone"}
    assert CATALOG.creating("containers") == CONTAINER_CREATES
    assert CATALOG.creating("vms") == VM_CREATES


def test_each_counted_kind_has_one_list_operation_that_lists_all() -> None:
    kinds = {op.counted_kind for op in CATALOG if op.counted_kind}
    assert kinds == {"containers", "vms"}
    for kind in kinds:
        op = CATALOG.counter(kind)
        assert op.lists_all is not None and op.scope == "read" and not op.creates
        assert isinstance(op.lists_all, op.params)
        assert CATALOG.creating(kind), f"nothing makes {kind}, yet a cap counts them"
    assert CATALOG.counter("containers").lists_all == ContainerList(all=True)
    assert CATALOG.counter("vms").lists_all == VmList(state="all")
    with pytest.raises(NotFound):
        CATALOG.counter("images")


def test_every_operation_on_an_existing_vm_is_pinned() -> None:
    for op in CATALOG:
        on_a_vm = op.path.startswith("/v1/vms/<name>")
        assert op.pinned is on_a_vm, op.name
    placing = {op.name for op in CATALOG if op.places}
    assert placing == {"vms.define", "vms.rename", "vms.clone", "vms.migrate"}
    assert CATALOG.get("vms.migrate").placed_on == "node"
    assert {op.name for op in CATALOG if op.releases} == {"vms.undefine", "vms.rename"}
    assert (CATALOG.get("vms.rename").placed_by, CATALOG.get("vms.clone").placed_by) == (
        "new_name",
        "target",
    )
    assert CATALOG.get("vms.undefine").pinned


def _op(name: str = "vms.thing", **fields: Any) -> Operation:
    fields.setdefault("params", VmRef)
    return Operation(name, method="POST", path="/v1/x", summary="x", handler="x", **fields)


@pytest.mark.parametrize(
    "fields",
    [
        {"places": True, "releases": True},
        {"places": True, "placed_by": "new_name"},
        {"pinned": True, "params": NoParams},
        {"counted_kind": "vms"},
        {"lists_all": VmRef(name="a")},
        {"counted_kind": "vms", "lists_all": VmList()},
        {"counted_kind": "vms", "creates": True, "lists_all": VmRef(name="a")},
        {"binary": ("archive",)},
    ],
)
def test_contradictory_operations_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Catalog().add(_op(**fields))


def test_one_list_operation_per_counted_kind() -> None:
    catalog = Catalog()
    catalog.add(_op("vms.a", counted_kind="vms", lists_all=VmRef(name="a")))
    with pytest.raises(ValueError):
        catalog.add(_op("vms.b", counted_kind="vms", lists_all=VmRef(name="b")))
