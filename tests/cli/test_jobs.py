"""``nube jobs ls|get|wait|cancel|watch`` and ``--no-wait``."""

from __future__ import annotations

import json
import time

from nube.tools.client import NubeClient
from tests.cli.conftest import IMAGE, Cli, one_line, parsed


def _submitted(cli: Cli, *run: str) -> str:
    done = cli("run", "--no-wait", IMAGE, *run)
    assert done.returncode == 0, done.stderr
    job_id, status = done.stdout.split()
    assert status in ("queued", "running")
    return job_id


def test_watch_get_wait_and_ls(docker_cli: Cli) -> None:
    job_id = _submitted(docker_cli, "sh", "-c", "sleep 1; echo watched")
    watched = docker_cli("jobs", "watch", job_id)
    assert watched.returncode == 0, watched.stderr
    events = [line.split()[1] for line in watched.stdout.splitlines() if line[:2].isdigit()]
    assert events[0] == "queued" and events[-1] == "succeeded" and "running" in events
    assert '"stdout":"watched\\n"' in watched.stdout

    job = parsed(docker_cli("jobs", "get", job_id, "--json"))
    assert job["status"] == "succeeded" and job["result"]["stdout"] == "watched\n"
    shown = docker_cli("jobs", "get", job_id).stdout
    assert "containers.run" in shown and "succeeded" in shown
    waited = docker_cli("jobs", "wait", job_id)
    assert waited.returncode == 0 and "succeeded" in waited.stdout
    assert job_id in [j["id"] for j in parsed(docker_cli("jobs", "ls", "--json"))["jobs"]]
    table = docker_cli("jobs", "ls", "--status", "succeeded", "--limit", "5").stdout
    assert table.splitlines()[0].split()[:3] == ["ID", "OPERATION", "STATUS"]
    assert job_id in table

    as_json = docker_cli("jobs", "watch", job_id, "--json")  # ended: one event, the job
    assert [_json(line)["event"] for line in as_json.stdout.splitlines()] == ["job"]


def _json(line: str) -> dict[str, object]:
    return dict(json.loads(line))


def test_a_failed_job_exits_1_with_its_error(docker_cli: Cli) -> None:
    job_id = docker_cli("run", "--no-wait", "nube-no-such-image:1").stdout.split()[0]
    waited = docker_cli("jobs", "wait", job_id)
    assert waited.returncode == 1
    assert one_line(waited.stderr).startswith("error: not_found: image 'nube-no-such-image:1'")
    watched = docker_cli("jobs", "watch", job_id)
    assert watched.returncode == 1 and "failed" in watched.stdout
    assert one_line(watched.stderr).startswith("error: not_found: ")
    unknown = docker_cli("jobs", "get", "00000000-0000-0000-0000-000000000000")
    assert unknown.returncode == 1 and one_line(unknown.stderr).startswith("error: not_found: ")


def test_cancel_a_queued_job_and_not_a_running_one(
    docker_cli: Cli, engine_client: NubeClient
) -> None:
    # The stack's container worker runs two jobs at once: with two sleeping, a third waits.
    busy = [_submitted(docker_cli, "sleep", "10") for _ in range(2)]
    deadline = time.monotonic() + 30
    while any(engine_client.job(j)["status"] != "running" for j in busy):
        assert time.monotonic() < deadline, [engine_client.job(j) for j in busy]
        time.sleep(0.2)
    waiting = _submitted(docker_cli, "echo", "never")
    cancelled = docker_cli("jobs", "cancel", waiting)
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.split() == [waiting, "cancelled"]
    running = docker_cli("jobs", "cancel", busy[0])
    assert running.returncode == 1
    assert one_line(running.stderr) == (
        f"error: conflict: job {busy[0]} is running and cannot be cancelled"
    )
    gave_up = docker_cli("jobs", "wait", busy[1], "--timeout", "1")
    assert gave_up.returncode == 124
    assert one_line(gave_up.stderr) == f"error: job {busy[1]} is still running after 1 s"
    assert parsed(docker_cli("jobs", "get", waiting, "--json"))["status"] == "cancelled"
    assert docker_cli("jobs", "wait", waiting).returncode == 1  # cancelled: not succeeded
    for job_id in busy:
        assert docker_cli("jobs", "wait", job_id).returncode == 0
