"""A real Prometheus (Debian's) scrapes the running stack; its HTTP API answers the job
counters and the per-hop latency quantiles, and it loaded nube's alert rules."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import requests
import yaml

from nube.tools.devstack import ROOT, Stack
from tests.conftest import need
from tests.observability.conftest import eventually, finished, submit

DASHBOARD = ROOT / "docs" / "grafana" / "nube-golden-signals.json"


def query(url: str, expr: str) -> list[dict[str, Any]]:
    answer = requests.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert answer["status"] == "success", answer
    return list(answer["data"]["result"])


def test_prometheus_scrapes_the_stack_and_answers_per_hop_quantiles(
    observed: Stack, token: str
) -> None:
    need(shutil.which("prometheus") is not None, "prometheus (Debian's package)")
    url = observed.start_prometheus(interval="1s")
    try:

        def targets_up() -> bool:
            up = query(url, "up")
            return len(up) == 3 and all(r["value"][1] == "1" for r in up)

        assert eventually(targets_up, timeout=30), query(url, "up")

        def runs() -> float:
            found = query(
                url, 'sum(nube_tasks_total{operation="containers.list",outcome="succeeded"})'
            )
            return float(found[0]["value"][1]) if found else 0.0

        before = runs()
        jobs = [submit(observed, token).json()["id"] for _ in range(5)]
        assert all(finished(observed, token, j)["status"] == "succeeded" for j in jobs)
        assert eventually(lambda: runs() >= before + 5, timeout=30)
        time.sleep(1.5)  # one more scrape after the last run
        # quantiles over every observation so far (a rate() over new series may have one sample)
        for hop in ("ingress", "worker"):
            [p90] = query(
                url,
                "histogram_quantile(0.9, sum by (le) "
                f'(nube_queue_wait_seconds_bucket{{hop="{hop}"}}))',
            )
            assert 0 < float(p90["value"][1]) < 60, (hop, p90)
        [run] = query(
            url,
            "histogram_quantile(0.5, sum by (le, role) "
            '(nube_task_duration_seconds_bucket{role="containers"}))',
        )
        assert 0 < float(run["value"][1]) < 60
        routed = query(url, 'sum(nube_relay_outcomes_total{outcome="routed"})')
        assert float(routed[0]["value"][1]) >= 5
        rules = requests.get(f"{url}/api/v1/rules", timeout=10).json()["data"]["groups"]
        names = {rule["name"] for group in rules for rule in group["rules"]}
        assert "NubeQueueWithoutConsumer" in names and "NubeAuditWriteFailures" in names
        dashboard = json.loads(DASHBOARD.read_text())
        for panel in dashboard["panels"]:  # every query of the Grafana dashboard is valid
            for target in panel["targets"]:
                query(url, target["expr"])
    finally:
        observed.stop("prometheus")


def test_the_scrape_configuration_names_the_api_every_service_and_the_rules(
    tmp_path: Path,
) -> None:
    stack = Stack(workdir=tmp_path, metrics=True)
    stack._metrics_env("agent")
    stack._metrics_env("worker-containers")
    config = yaml.safe_load(stack.prometheus_config("2s"))
    assert config["global"]["scrape_interval"] == "2s"
    jobs = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]
    }
    assert jobs["nube-api"] == [f"127.0.0.1:{stack.api_port}"]
    assert sorted(jobs["nube-services"]) == sorted(
        f"127.0.0.1:{port}" for port in stack.metrics_ports.values()
    )
    assert Path(config["rule_files"][0]).is_file()
