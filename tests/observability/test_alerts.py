"""nube's alert rules: valid for ``promtool check rules``, and each fires on what it is about
(``promtool test rules`` with series written here)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from nube.tools.devstack import ROOT
from tests.conftest import need

RULES = ROOT / "nube" / "observability" / "alerts.yml"

UNIT_TESTS = """
rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'nube_queue_messages{queue="vms"}'
        values: '3x10'
      - series: 'nube_queue_consumers{queue="vms"}'
        values: '0x10'
      - series: 'nube_queue_messages{queue="containers"}'
        values: '3x10'
      - series: 'nube_queue_consumers{queue="containers"}'
        values: '1x10'
      - series: 'nube_queue_oldest_message_age_seconds{queue="containers"}'
        values: '0+60x10'
      - series: 'nube_queue_time_limit_seconds{queue="containers"}'
        values: '300x10'
      - series: 'nube_refused_messages_total{reason="bad_seal"}'
        values: '0+1x10'
      - series: 'nube_audit_writes_total{outcome="failed",actor="agent"}'
        values: '0 0 0 1 1 1 1 1 1 1 1'
    alert_rule_test:
      - eval_time: 5m
        alertname: NubeQueueWithoutConsumer
        exp_alerts:
          - exp_labels: {severity: critical, queue: vms}
      - eval_time: 3m
        alertname: NubeQueueMessageTooOld
        exp_alerts: []
      - eval_time: 8m
        alertname: NubeQueueMessageTooOld
        exp_alerts:
          - exp_labels: {severity: warning, queue: containers}
      - eval_time: 7m
        alertname: NubeRefusedMessagesRising
        exp_alerts:
          - exp_labels: {severity: warning, reason: bad_seal}
      - eval_time: 4m
        alertname: NubeAuditWriteFailures
        exp_alerts:
          - exp_labels: {severity: critical}
      - eval_time: 10m
        alertname: NubeAuditWriteFailures
        exp_alerts: []
"""


def promtool() -> str:
    need(shutil.which("promtool") is not None, "promtool (Debian's prometheus package)")
    return "promtool"


def test_the_rules_pass_promtool_check_rules() -> None:
    done = subprocess.run(
        [promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 4 rules found" in done.stdout


def test_each_rule_fires_on_what_it_is_about(tmp_path: Path) -> None:
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:  # promtool compares annotations whole: test the rest
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    tests = tmp_path / "alerts_test.yml"
    tests.write_text(UNIT_TESTS)
    done = subprocess.run(
        [promtool(), "test", "rules", str(tests)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
