"""The metrics each process serves after real jobs: the API's /metrics (routes, the cluster's
queues and consumers, sealing, audit), the agent's and the worker's ports (hops, runs)."""

from __future__ import annotations

import json
import re

import requests

from nube.tools.devstack import Stack
from tests.observability.conftest import eventually, finished, submit


def scrape(url: str) -> str:
    answer = requests.get(url, timeout=10)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain")
    return answer.text


def value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    total, found = 0.0, False
    for line in text.splitlines():
        match = re.fullmatch(r"([a-z_:]+)(?:\{(.*)\})? (\S+)", line)
        if not match or match[1] != name:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', match[2] or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total, found = total + float(match[3]), True
    assert found, f"no sample {name}{labels}"
    return total


def test_every_process_counts_the_jobs_that_pass_through_it(observed: Stack, token: str) -> None:
    agent = f"http://127.0.0.1:{observed.metrics_ports['agent']}/metrics"
    worker = f"http://127.0.0.1:{observed.metrics_ports['worker-containers']}/metrics"
    api = f"{observed.api_url}/metrics"
    before_runs = _or_zero(
        lambda: value(
            scrape(worker), "nube_tasks_total", operation="containers.list", outcome="succeeded"
        )
    )
    jobs = [submit(observed, token).json()["id"] for _ in range(3)]
    assert all(finished(observed, token, j)["status"] == "succeeded" for j in jobs)

    def counted() -> bool:  # a run is counted just after its job ends
        text = scrape(worker)
        done = value(text, "nube_tasks_total", operation="containers.list", outcome="succeeded")
        return done >= before_runs + 3

    assert eventually(counted)
    text = scrape(worker)
    # prefork children count into the multiprocess files the main process serves
    assert value(text, "nube_task_duration_seconds_count", role="containers") >= 3
    assert value(text, "nube_queue_wait_seconds_count", hop="worker") >= 3
    assert value(text, "nube_sealing_total", action="open", outcome="ok") >= 3

    text = scrape(agent)
    assert (
        value(text, "nube_relay_outcomes_total", operation="containers.list", outcome="routed") >= 3
    )
    assert value(text, "nube_queue_wait_seconds_count", hop="ingress") >= 3
    assert value(text, "nube_messages_published_total", hop="worker", role="agent") >= 3
    assert value(text, "nube_audit_writes_total", outcome="written", actor="agent") >= 3
    assert value(text, "nube_sealing_key_info") == 1

    text = scrape(api)
    assert value(text, "nube_http_requests_total", route="/v1/containers", status="202") >= 3
    assert (
        value(text, "nube_http_request_duration_seconds_bucket", route="/v1/containers", le="+Inf")
        >= 3
    )
    assert value(text, "nube_messages_published_total", hop="ingress", role="api") >= 3
    assert value(text, "nube_queue_consumers", queue="containers") == 1
    assert value(text, "nube_queue_consumers", queue="nube.ingress") == 1
    assert value(text, "nube_queue_messages", queue="containers") == 0
    assert value(text, "nube_queue_time_limit_seconds", queue="containers") > 0
    assert value(text, "nube_audit_records") >= 3
    assert value(text, "nube_jobs", status="succeeded") >= 3
    assert value(text, "nube_jobs", status="queued") == 0


def test_a_waiting_message_shows_its_queue_depth_and_age(observed: Stack) -> None:
    """A message on a queue nobody serves: counted, and aged from its job's last change."""
    client = observed.redis()
    queue = "vms"  # this stack runs no VM worker
    job_id = "00000000-0000-4000-8000-000000000001"
    record = {
        "id": job_id,
        "operation": "vms.list",
        "tenant": "t",
        "queue": queue,
        "submitted_at": "2020-01-01T00:00:00+00:00",
        "history": [],
    }
    client.set(f"nube:job:{job_id}", json.dumps(record))
    client.lpush(queue, json.dumps({"headers": {"id": job_id, "task": "vms.list"}, "body": ""}))
    try:
        text = scrape(f"{observed.api_url}/metrics")
        assert value(text, "nube_queue_messages", queue=queue) == 1
        assert value(text, "nube_queue_consumers", queue=queue) == 0
        assert value(text, "nube_queue_oldest_message_age_seconds", queue=queue) > 3600
    finally:
        client.delete(queue, f"nube:job:{job_id}")


def _or_zero(read: object) -> float:
    try:
        return float(read())  # type: ignore[operator]
    except AssertionError:
        return 0.0


def test_a_refused_message_is_counted_by_its_reason(observed: Stack) -> None:
    """An unsealed message on the ingress queue: the agent refuses it, audits it, counts it."""
    from celery import Celery

    from nube.broker import INGRESS_QUEUE, RELAY_TASK

    agent = f"http://127.0.0.1:{observed.metrics_ports['agent']}/metrics"

    def refused() -> float:
        text = scrape(agent)
        return (
            value(text, "nube_refused_messages_total")
            if "nube_refused_messages_total{" in text
            else 0.0
        )

    before = refused()
    plain = Celery("test-plain", broker=observed.broker_url)
    try:
        plain.send_task(RELAY_TASK, args=({"job_id": "none"},), queue=INGRESS_QUEUE)
    finally:
        plain.close()
    assert eventually(lambda: refused() >= before + 1)
    assert "nube_refused_messages_total{reason=" in scrape(agent)
