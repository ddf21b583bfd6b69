"""What only a real engine shows of user networks: containers reach each other by name and by
alias (the fake runs no ``nc``).

The network and volume contract (create, connect, disconnect, remove, prune, share, backup,
restore, redelivery, tenancy) runs on the fake and on this engine in ``tests/drivers``.
"""

from __future__ import annotations

from typing import Any

from nube.catalog import container_models as m
from tests.drivers.conftest import IMAGE, TENANT_A, TENANT_B, MakeCtx, Name
from workers.drivers import JobContext
from workers.drivers.docker import DockerDriver

SERVE = ["sh", "-c", "while true; do echo pong | nc -l -p 1234; done"]


def _serve(answer: str) -> list[str]:
    return ["sh", "-c", f"while true; do echo {answer} | nc -l -p 1234; done"]


def _ask(host: str) -> list[str]:
    """A client that retries until the server listens."""
    return ["sh", "-c", f"for i in $(seq 50); do nc {host} 1234 && exit 0; sleep 0.1; done"]


def _run(driver: DockerDriver, ctx: JobContext, **spec: Any) -> dict[str, Any]:
    return driver.run(m.ContainerRun.model_validate({"image": IMAGE} | spec), ctx)


def test_containers_on_one_user_network_reach_each_other_by_name(
    driver: DockerDriver, ctx: JobContext, make_ctx: MakeCtx, name: Name
) -> None:
    net = driver.network_create(m.ContainerNetworkCreate(name=name("net")), ctx)
    server = name("server")
    _run(driver, make_ctx(), name=server, network=net["name"], detach=True, command=SERVE)
    out = _run(driver, make_ctx(), network=net["name"], command=_ask(server))
    assert (out["exit_code"], out["stdout"]) == (0, "pong\n")
    inspected = driver.network_inspect(m.ContainerNetworkRef(id=net["name"]), make_ctx())
    assert [c["name"] for c in inspected["containers"].values()] == [server]


def test_a_connected_container_is_reached_by_its_alias_on_an_internal_network(
    driver: DockerDriver, ctx: JobContext, make_ctx: MakeCtx, name: Name
) -> None:
    net = driver.network_create(m.ContainerNetworkCreate(name=name("net"), internal=True), ctx)
    assert net["internal"] is True
    server = _run(driver, make_ctx(), detach=True, command=SERVE)
    connect = m.ContainerNetworkConnect(id=net["id"], container=server["id"], aliases=["db"])
    driver.network_connect(connect, make_ctx())
    out = _run(driver, make_ctx(), network=net["name"], command=_ask("db"))
    assert out["stdout"] == "pong\n"


def test_two_tenants_containers_called_web_each_reached_by_web_on_their_own_network(
    driver: DockerDriver, make_ctx: MakeCtx, name: Name
) -> None:
    """Names are per tenant (the engine holds ``n<tag>-web`` twice): on a user network the
    container is reached by its user name, an alias the driver adds, whether it was created on
    the network (tenant A's) or connected to it afterwards (tenant B's)."""
    net, web = name("net"), name("web")
    driver.network_create(m.ContainerNetworkCreate(name=net), make_ctx())
    spec = {"name": web, "network": net, "detach": True, "command": _serve("from-a")}
    _run(driver, make_ctx(), **spec)
    driver.network_create(m.ContainerNetworkCreate(name=net), make_ctx(tenant=TENANT_B))
    spec = {"name": web, "detach": True, "command": _serve("from-b")}
    _run(driver, make_ctx(tenant=TENANT_B), **spec)
    connect = m.ContainerNetworkConnect(id=net, container=web)
    driver.network_connect(connect, make_ctx(tenant=TENANT_B))
    for tenant, answer in ((TENANT_A, "from-a"), (TENANT_B, "from-b")):
        out = _run(driver, make_ctx(tenant=tenant), network=net, command=_ask(web))
        assert (out["exit_code"], out["stdout"]) == (0, f"{answer}\n")
        inspected = driver.network_inspect(m.ContainerNetworkRef(id=net), make_ctx(tenant=tenant))
        assert [c["name"] for c in inspected["containers"].values()] == [web]
    # a rename moves the name on the network: the new one answers, the old one no longer
    renamed = name("renamed")
    driver.rename(m.ContainerRename(id=web, name=renamed), make_ctx())
    out = _run(driver, make_ctx(), network=net, command=_ask(renamed))
    assert (out["exit_code"], out["stdout"]) == (0, "from-a\n")
    out = _run(driver, make_ctx(), network=net, command=["nc", "-w", "1", web, "1234"])
    assert out["exit_code"] != 0 and out["stdout"] == ""
