"""Fake drivers: the driver interfaces kept in memory, like Nova's ``nova/virt/fake.py``.

:class:`FakeContainerDriver` and :class:`FakeHypervisorDriver` keep the contracts of
:class:`~workers.drivers.containers.ContainerDriver` and
:class:`~workers.drivers.hypervisor.HypervisorDriver` (idempotent creates keyed by the job,
tenancy, ``NotFound``/``Conflict``, the VM state table) without Docker or libvirt; the contract
suite in ``tests/drivers`` runs every test on them and on the real drivers. A worker uses them
with ``NUBE_CONTAINER_DRIVER=fake`` / ``NUBE_VM_DRIVER=fake``. Their state lives in the worker
process, so run such a worker with one process (``--concurrency 1``).
"""

from workers.drivers.fake.containers import FakeContainerDriver
from workers.drivers.fake.hypervisor import FakeHypervisorDriver

__all__ = ["FakeContainerDriver", "FakeHypervisorDriver"]
