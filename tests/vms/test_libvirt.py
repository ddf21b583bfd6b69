"""What the libvirt driver does that the contract (``tests/drivers``, fake and QEMU) cannot say:
the domain XML libvirt keeps, and libvirt's mock hypervisor (``test:///default``)."""

from __future__ import annotations

import pytest

from nube.catalog import NoParams
from nube.catalog import vm_models as m
from nube.errors import InvalidRequest
from tests.drivers.conftest import MakeCtx, Name
from tests.drivers.test_hypervisor_contract import define_network, make_pool, vm_spec
from workers.drivers import JobContext
from workers.drivers.libvirt import LibvirtDriver
from workers.drivers.libvirt.xml import parse_domain
from workers.drivers.names import backend_name

from .conftest import MOCK

pytestmark = pytest.mark.libvirt


def test_domain_xml_round_trips(
    driver: LibvirtDriver, ctx: JobContext, make_ctx: MakeCtx, name: Name
) -> None:
    vm = name("vm")
    pool = make_pool(driver, ctx, name)
    net = define_network(driver, ctx, name)
    spec = vm_spec(
        vm,
        vcpus=2,
        boot=["network", "hd"],
        disks=[{"pool": pool, "capacity_mib": 4, "format": "qcow2"}],
        interfaces=[{"network": net, "mac": "52:54:00:0a:0b:0c"}, {"network": net}],
    )
    driver.define_domain(spec, ctx)
    xml = driver.domain_xml(m.VmRef(name=vm), make_ctx(tenant=ctx.tenant, admin=True))["xml"]
    parsed = parse_domain(xml)
    # the XML holds the libvirt name: the tenant's name behind its prefix
    assert (parsed.name, parsed.memory_mib, parsed.vcpus) == (backend_name(ctx.tenant, vm), 64, 2)
    assert parsed.boot == ("network", "hd") and parsed.serial_console
    assert [(d.pool, d.format) for d in parsed.disks] == [(pool, "qcow2")]
    assert [n.network for n in parsed.interfaces] == [net, net]
    assert parsed.interfaces[0].mac == "52:54:00:0a:0b:0c"


def test_the_mock_hypervisor(mock: LibvirtDriver, ctx: JobContext, name: Name) -> None:
    info = mock.hypervisor_info(NoParams(), ctx)
    assert (info["uri"], info["domain_type"]) == (MOCK, "test")
    net = define_network(mock, ctx, name)
    with pytest.raises(InvalidRequest):  # it has no DHCP server
        mock.network_leases(m.VmNetworkRef(name=net), ctx)
