"""Several hosts on one machine: nube's services in network namespaces joined by a bridge.

``python -m nube.tools.mesh up`` (``make mesh``) makes the network (:mod:`nube.tools.mesh_net`),
starts Redis on the host's bridge address (``10.213.0.1``, bound to it alone) and the services in
the nodes, each under its own node name (``NUBE_NODE``):

=========  ============================================================================
node       runs
=========  ============================================================================
``ctl``    the API (``10.213.0.10:8080``) and the agent
``edge``   a second API (``10.213.0.11:8080``), for clients while ``ctl`` is cut off
``n1``     a container worker and a VM worker (queues ``containers``, ``containers.n1``,
           ``vms``, ``vms.n1``)
``n2``     the same as ``n1``, as ``n2``
=========  ============================================================================

With ``NUBE_BROKER_URL=amqp://...`` the messages go through that RabbitMQ instead (job records,
tokens and the audit log stay on the mesh's Redis); it must listen on an address the nodes reach,
such as the bridge address, where the mesh tests start their own node once the network exists
(``tests/mesh/conftest.py``).

Ctrl-C stops the services and removes the network. ``down`` removes whatever a crashed run left
(every namespace and link named ``nbm-*`` and the processes in those namespaces); ``status``
shows what exists; ``cut NODE`` / ``heal NODE`` take a node's link down and up again.

What is simulated: the network (separate addresses, links that can be cut). The nodes share the
machine's kernel, file system, clock, Docker engine (its unix socket) and libvirtd (its unix
socket; each VM worker has its own node name and pool root), so a "node" loses its network, not
its disks or its engine.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
import requests

from nube.registry import Registry
from nube.tools import mesh_net, netns
from nube.tools.devstack import ROOT, Stack, _interrupt, _wait_until, _write_env
from nube.tools.mesh_net import HOST, MeshError, Node

#: The port every API listens on, inside its own node.
API_PORT = 8080

#: Node name → the services it runs (``api``, ``agent``, ``containers``, ``vms``).
LAYOUT: dict[str, tuple[str, ...]] = {
    "ctl": ("api", "agent"),
    "edge": ("api",),
    "n1": ("containers", "vms"),
    "n2": ("containers", "vms"),
}


def nodes_of(layout: dict[str, tuple[str, ...]]) -> dict[str, Node]:
    return {name: Node(name, i) for i, name in enumerate(layout)}


@dataclass
class Mesh(Stack):
    """A :class:`Stack` whose Redis listens on the bridge address and whose services run in
    the nodes of ``layout``. ``broker_url_override`` (``NUBE_BROKER_URL``) puts the messages on
    another broker; job records, tokens and the audit log stay on this Redis."""

    layout: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(LAYOUT))
    broker_url_override: str | None = None
    worker_concurrency: int = 2

    @property
    def nodes(self) -> dict[str, Node]:
        return nodes_of(self.layout)

    @property
    def redis_url(self) -> str:
        return f"redis://{HOST}:{self.redis_port}/0"

    @property
    def broker_url(self) -> str:
        return (
            self.broker_url_override or f"redis://:{self.redis_password}@{HOST}:{self.redis_port}/0"
        )

    @property
    def api_url(self) -> str:
        return self.api_url_of(self.api_nodes()[0])

    def api_url_of(self, node: str) -> str:
        return f"http://{self.nodes[node].address}:{API_PORT}"

    def api_nodes(self) -> list[str]:
        return [n for n, roles in self.layout.items() if "api" in roles]

    def env(self, **extra: str) -> dict[str, str]:
        env = super().env(**extra)
        if self.broker_url_override:
            env.setdefault("NUBE_BROKER_URL", self.broker_url_override)
        return env

    def redis(self) -> redis.Redis:
        return redis.Redis(
            host=HOST, port=self.redis_port, password=self.redis_password, decode_responses=True
        )

    def redis_config(self) -> str:
        return super().redis_config().replace('bind "127.0.0.1"', f'bind "{HOST}"')

    # --- the network and the services ---------------------------------------------------------
    def build_network(self) -> None:
        mesh_net.up(list(self.nodes.values()))

    def spawn_in(self, node: str, name: str, argv: list[str], **env: str) -> None:
        self.spawn(name, self.nodes[node].exec_argv(argv), NUBE_NODE=node, **env)

    def start_node(self, node: str) -> None:
        """Start the services ``layout`` gives ``node`` (an API is waited for)."""
        for role in self.layout[node]:
            self.start_role(node, role)

    def start_role(self, node: str, role: str) -> None:
        py = sys.executable
        name = f"{node}.{role}"
        if role == "api":
            argv = [py, "-m", "gunicorn", "-c", "api/gunicorn_conf.py", "api.app:create_app()"]
            bind = f"{self.nodes[node].address}:{API_PORT}"
            self.spawn_in(node, name, argv, NUBE_API_BIND=bind, NUBE_API_WORKERS="1")
            url = self.api_url_of(node)
            _wait_until(lambda: requests.get(url + "/healthz", timeout=2).ok, 60, name)
        elif role == "agent":
            self.spawn_in(node, name, [py, "-m", "agents", "--concurrency", "2"])
        else:
            conc = "1" if role == "vms" else str(self.worker_concurrency)
            pools = self.workdir / "pools" / node
            argv = [py, "-m", "workers", role, "--concurrency", conc]
            self.spawn_in(node, name, argv, NUBE_VM_POOL_ROOT=str(pools))

    def start_mesh(self) -> None:
        """The network, Redis on the bridge address, every node's services; until every queue
        (``nube.ingress``, each service's shared queue and each node's own) has a consumer."""
        self.build_network()
        self.start_redis()
        for node in self.layout:
            self.start_node(node)
        self.wait_served(self.queues(), timeout=120)

    def wait_served(self, queues: list[str], timeout: float = 60) -> None:
        """Until the registry shows a live consumer on each of ``queues`` (``/readyz`` shows
        only the shared ones)."""
        registry = Registry(self.redis())
        _wait_until(lambda: set(queues) <= registry.served_queues(), timeout, f"queues {queues}")

    def queues(self) -> list[str]:
        found = ["nube.ingress"]
        for node, roles in self.layout.items():
            for role in roles:
                if role in ("containers", "vms"):
                    found += [q for q in (role, f"{role}.{node}") if q not in found]
        return found

    def stop_node(self, node: str) -> None:
        """Stop ``node``'s services (as a host that goes away: its link is left as it is)."""
        for name in [n for n in self.procs if n.split(".")[0] == node]:
            self.stop(name, signal.SIGKILL)
        netns.kill_inside(self.nodes[node].netns)

    def cut(self, node: str) -> None:
        mesh_net.cut(self.nodes[node])

    def heal(self, node: str) -> None:
        mesh_net.heal(self.nodes[node])

    def stop_mesh(self) -> None:
        """Every service, Redis, then the network."""
        self.stop_all()
        mesh_net.down()


# --- the command -------------------------------------------------------------------------------


def _up(workdir: Path) -> None:
    from nube.tokens import Scope, TokenStore

    workdir.mkdir(parents=True, exist_ok=True)
    mesh_net.down()  # what a crashed run left
    uri = os.environ.get("NUBE_LIBVIRT_URI", "test:///default")
    mesh = Mesh(
        workdir=workdir, libvirt_uri=uri, broker_url_override=os.environ.get("NUBE_BROKER_URL")
    )
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        print(f"making the mesh {list(mesh.layout)} and starting its services ...", flush=True)
        mesh.start_mesh()
        token, _ = TokenStore(mesh.redis()).create("local", [Scope.ADMIN], "make mesh")
        _write_env(
            workdir / "mesh.env",
            {
                "NUBE_URL": mesh.api_url,
                "NUBE_TOKEN": token,
                "NUBE_REDIS_URL": mesh.redis_url,
                "NUBE_REDIS_PASSWORD": mesh.redis_password,
            },
        )
        print(f"\nthe mesh is up (Redis {mesh.redis_url}).")
        for node, roles in mesh.layout.items():
            print(f"  {node:<5} {mesh.nodes[node].address:<12} {', '.join(roles)}")
        print(f"  APIs  {', '.join(mesh.api_url_of(n) for n in mesh.api_nodes())}")
        print(f"  token {token}   (admin, tenant 'local'; also in {workdir / 'mesh.env'})")
        print("\ntry: python -m nube.tools.mesh cut n1 / heal n1; Ctrl-C stops everything.")
        while mesh.procs["redis"].poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
    except (RuntimeError, MeshError) as e:
        print(f"nube mesh: {e}; see {workdir}/*.log", file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        mesh.stop_mesh()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m nube.tools.mesh", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="make the mesh, start its services (Ctrl-C: stop and remove)")
    sub.add_parser("down", help="remove every namespace and link of the mesh, and their processes")
    sub.add_parser("status", help="the mesh's namespaces and links")
    for name in ("cut", "heal"):
        sub.add_parser(name, help=f"{name} a node's link").add_argument("node", choices=LAYOUT)
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            mesh_net.check_can_run()
            _up(ROOT / ".nube" / "mesh")
        elif args.command == "down":
            print("\n".join(mesh_net.down()) or "nothing to remove")
        elif args.command == "status":
            print("\n".join(mesh_net.describe()) or "no mesh")
        else:
            node = nodes_of(LAYOUT)[args.node]
            (mesh_net.cut if args.command == "cut" else mesh_net.heal)(node)
    except (MeshError, subprocess.SubprocessError) as e:
        print(f"nube mesh: {e}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
