"""Row 29 on RabbitMQ: a member of a three-node RabbitMQ cluster SIGKILLed during a burst.

The cluster (:class:`tests.brokers.RabbitCluster`) runs on this machine: three ``rabbitmq-server``
nodes on 127.0.0.1 with distinct node names, AMQP and distribution ports and data directories,
one Erlang cookie. nube's services (API, agent, a container and a VM worker; Redis for the job
store) are given kombu's failover URL list of the three nodes (``amqp://a;amqp://b;amqp://c``):
they connect to the first, so the quorum queues they declare are led by it, with a replica on
each node. The test SIGKILLs that node mid-burst: the other two elect new leaders, every
service reconnects to the next node of its list without a restart, and each accepted job ends
once, with at most one effect. The counts are printed.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from nube.tokens import Scope, TokenStore
from nube.tools.devstack import Stack
from tests.brokers import RabbitCluster, rabbitmq_available
from tests.conftest import (
    TEST_POLICY,
    docker_available,
    logs_shown_on_failure,
    need,
    remove_docker_resources,
)
from tests.faults.test_message_path_faults import _container_creations
from tests.faults.test_worker_and_redis_faults import records
from tests.mesh.conftest import TERMINAL, Report

#: Submissions in the burst: cheap reads (``vms.list``) and detached containers (the effect
#: counted for duplicates), mixed.
READS, CONTAINERS = 216, 24
#: The leader is killed once this share of the burst has been answered.
KILL_AT = 1 / 3
DETACHED = {"image": "busybox:latest", "command": ["true"], "detach": True}
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitCluster]:
    need(rabbitmq_available(), "rabbitmq-server")
    made = RabbitCluster(tmp_path_factory.mktemp("rabbit-cluster"))
    started = time.monotonic()
    try:
        made.start()
        print(f"\nthree-node RabbitMQ cluster formed in {time.monotonic() - started:.1f} s")
        yield made
    finally:
        made.stop()


@pytest.fixture(scope="module")
def stack(cluster: RabbitCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    need(docker_available(), "Docker")
    workdir = tmp_path_factory.mktemp("rabbit-cluster-stack")
    (workdir / "policy.yaml").write_text(TEST_POLICY)
    made = Stack(
        workdir=workdir,
        extra_env={
            "NUBE_BROKER_URL": cluster.url("t1"),
            "NUBE_POLICY_FILE": str(workdir / "policy.yaml"),
            "NUBE_AUDIT_FILE": str(workdir / "audit.jsonl"),
            "NUBE_RATE_LIMIT": "0",
        },
    )
    try:
        with logs_shown_on_failure(workdir):
            made.start_redis()
            made.start_agent()
            made.start_worker("containers")
            made.start_worker("vms")
            made.start_api()
            made.wait_ready(["nube.ingress", "containers", "vms"], timeout=90)
            yield made
    finally:
        made.stop_all()


def submit(session: requests.Session, url: str, container: bool) -> tuple[int, str | None]:
    """One submission: (HTTP status, job id or None); 0 for no answer."""
    try:
        if container:
            r = session.post(url + "/v1/containers", json=DETACHED, timeout=30)
        else:
            r = session.get(url + "/v1/vms", timeout=30)
        return r.status_code, (r.json().get("id") if r.status_code == 202 else None)
    except (requests.RequestException, ValueError):
        return 0, None


def burst(stack: Stack, token: str, on_answer: Any) -> list[tuple[bool, int, str | None]]:
    """READS + CONTAINERS submissions, interleaved, from 6 threads: (container?, status, id)."""
    kinds = [i % (READS // CONTAINERS + 1) == 0 for i in range(READS + CONTAINERS)]
    local = threading.local()
    answers: list[tuple[bool, int, str | None]] = []
    lock = threading.Lock()

    def one(container: bool) -> None:
        if not hasattr(local, "session"):
            local.session = requests.Session()
            local.session.headers.update(
                {"Authorization": f"Bearer {token}", "Prefer": "respond-async"}
            )
        status, job_id = submit(local.session, stack.api_url, container)
        if status != 202:
            time.sleep(0.5)  # a client backs off before its next submission
        with lock:
            answers.append((container, status, job_id))
            done = len(answers)
        on_answer(done)

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(one, kinds))
    return answers


def test_a_quorum_member_sigkilled_mid_burst(
    cluster: RabbitCluster, stack: Stack, report: Report
) -> None:
    tenant = f"t{secrets.token_hex(4)}"
    token, _ = TokenStore(stack.redis()).create(tenant, [Scope.READ, Scope.WRITE])
    pids = {name: proc.pid for name, proc in stack.procs.items()}
    try:
        # the queues exist (declared by the services) and are replicated on every node
        queues = cluster.quorum_queues("t1")
        everyone = sorted(n.nodename for n in cluster.nodes)
        for name in ("nube.ingress", "containers", "vms"):
            assert sorted(str(m) for m in queues[name]["members"]) == everyone, queues[name]
        leader = cluster.node_named(str(queues["containers"]["leader"]))
        assert leader is cluster.nodes[0], queues  # led where the services are connected

        total = READS + CONTAINERS
        killed = threading.Event()
        killed_at: list[float] = []

        def on_answer(done: int) -> None:
            if done >= total * KILL_AT and not killed.is_set():
                killed.set()
                cluster.kill(leader)
                killed_at.append(time.monotonic())

        since = time.time()
        started = time.monotonic()
        answers = burst(stack, token, on_answer)
        took = time.monotonic() - started
        assert killed.is_set()

        accepted = [job_id for _, status, job_id in answers if status == 202 and job_id]
        refused = Counter(status for _, status, _ in answers if status != 202)
        creating = [job_id for c, status, job_id in answers if c and status == 202 and job_id]
        deadline = time.monotonic() + 180
        while True:
            jobs = records(stack, accepted)
            open_ = [i for i, j in jobs.items() if j.get("status") not in TERMINAL]
            if not open_ or time.monotonic() > deadline:
                break
            time.sleep(1)
        ended_after = time.monotonic() - killed_at[0]

        statuses = Counter(str(j.get("status", "missing")) for j in jobs.values())
        twice_ended = [
            i
            for i, j in jobs.items()
            if sum(1 for e in j.get("history", []) if e["event"] in TERMINAL) > 1
        ]
        twice_made = [i for i in creating if _container_creations(i, since) > 1]
        counts: dict[str, Any] = {
            "submitted": total,
            "accepted": len(accepted),
            "terminal": sum(statuses[s] for s in TERMINAL),
            "lost": len(open_),
            "duplicates": len(twice_made) + len(twice_ended),
            "statuses": dict(statuses),
            "not accepted": dict(refused),
        }
        new_leaders = cluster.quorum_queues("t1")
        report(
            f"[rabbitmq cluster] leader {leader.nodename} SIGKILLed after "
            f"{int(total * KILL_AT)} answers; burst {took:.1f} s, every accepted job ended "
            f"{ended_after:.1f} s after the kill: {counts}; new leaders: "
            f"{ {q: new_leaders[q]['leader'] for q in ('nube.ingress', 'containers', 'vms')} }"
        )
        assert counts["lost"] == 0 and counts["duplicates"] == 0, counts
        assert counts["accepted"] == counts["terminal"], counts
        assert set(statuses) <= {"succeeded"}, counts
        assert counts["accepted"] >= total * 0.9, counts  # the API kept accepting
        for name in ("nube.ingress", "containers", "vms"):
            assert new_leaders[name]["leader"] != leader.nodename, new_leaders[name]

        # no service was restarted: the same processes, all alive, and a job after the failover
        assert {name: proc.pid for name, proc in stack.procs.items()} == pids
        assert all(proc.poll() is None for proc in stack.procs.values())
        after = requests.post(
            stack.api_url + "/v1/containers",
            json=DETACHED,
            headers={"Authorization": f"Bearer {token}", "Prefer": "wait=30"},
            timeout=40,
        )
        assert after.status_code in (200, 201, 202), after.text
        job_id = after.json().get("id") or after.json().get("job", "").rsplit("/", 1)[-1]
        assert wait_ended(stack, job_id) == "succeeded"
    finally:
        with contextlib.suppress(Exception):
            remove_docker_resources(tenant)


def wait_ended(stack: Stack, job_id: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = str(records(stack, [job_id])[job_id].get("status"))
        if status in TERMINAL:
            return status
        time.sleep(0.5)
    return "not ended"


def test_readyz_checks_the_cluster(cluster: RabbitCluster, stack: Stack) -> None:
    """``/readyz`` on the failover list: ready while one node takes connections (the first is
    dead after the previous test)."""
    body = requests.get(stack.api_url + "/readyz", timeout=10).json()
    assert body["broker"] == "ok", body
