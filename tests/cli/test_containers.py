"""``nube run``, ``nube ps`` and the container commands made from the catalog, on the stack's
Docker engine."""

from __future__ import annotations

from tests.cli.conftest import IMAGE, Cli, one_line, parsed, unique


def test_run_prints_the_output_and_exits_with_the_containers_code(docker_cli: Cli) -> None:
    done = docker_cli("run", IMAGE, "sh", "-c", "echo hi; echo oops >&2; exit 3")
    assert (done.returncode, done.stdout, done.stderr) == (3, "hi\n", "oops\n")
    dashed = docker_cli("run", "-e", "WHO=nube", IMAGE, "--", "sh", "-c", 'echo "hello $WHO"')
    assert (dashed.returncode, dashed.stdout) == (0, "hello nube\n")
    as_json = docker_cli("run", "--json", IMAGE, "sh", "-c", "echo out; exit 5")
    assert as_json.returncode == 5
    result = __import__("json").loads(as_json.stdout)
    assert result["exit_code"] == 5 and result["stdout"] == "out\n"


def test_ps_and_the_container_commands(docker_cli: Cli) -> None:
    name = unique("web")
    started = docker_cli("run", "--detach", "--name", name, IMAGE, "sleep", "60")
    assert started.returncode == 0, started.stderr
    container_id = started.stdout.strip()
    assert len(container_id) == 64

    table = docker_cli("ps")
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["ID", "NAME", "IMAGE", "STATE", "STATUS"]
    assert any(row.split()[:4] == [container_id[:12], name, IMAGE, "running"] for row in rows)
    listed = parsed(docker_cli("ps", "--json"))["containers"]
    assert [c["id"] for c in listed] == [container_id]
    assert parsed(docker_cli("containers", "ls", "--json"))["containers"][0]["name"] == name
    inspected = parsed(docker_cli("containers", "inspect", name, "--json"))
    assert inspected["state_detail"]["running"] is True
    assert "state_detail" in docker_cli("containers", "inspect", name).stdout

    ran = docker_cli("containers", "exec", name, "sh", "-c", "echo inside; exit 4")
    assert (ran.returncode, ran.stdout) == (4, "inside\n")
    assert docker_cli("containers", "stop", name, "--timeout", "0").returncode == 0
    assert parsed(docker_cli("ps", "--json"))["containers"] == []
    stopped = parsed(docker_cli("ps", "--all", "--json"))["containers"]
    assert [c["state"] for c in stopped] == ["exited"]
    removed = docker_cli("containers", "rm", name)
    assert removed.returncode == 0 and "removed" in removed.stdout
    assert parsed(docker_cli("ps", "-a", "--json"))["containers"] == []


def test_a_refused_request_is_one_line_with_its_code_and_exit_1(docker_cli: Cli) -> None:
    missing = docker_cli("containers", "inspect", "nubetest-cli-missing")
    assert missing.returncode == 1 and missing.stdout == ""
    assert one_line(missing.stderr) == (
        "error: not_found: container 'nubetest-cli-missing' was not found"
    )
    no_image = docker_cli("run", "nube-no-such-image:1")
    assert no_image.returncode == 1
    assert one_line(no_image.stderr).startswith("error: not_found: image 'nube-no-such-image:1'")
    as_json = docker_cli("containers", "stop", "nubetest-cli-missing", "--json")
    assert as_json.returncode == 1 and one_line(as_json.stderr).startswith("error: not_found")


def test_volumes_and_networks(docker_cli: Cli) -> None:
    volume, network = unique("vol"), unique("net")
    made = parsed(
        docker_cli("volumes", "create", "--name", volume, "--labels", "app=cli", "--json")
    )
    assert made["name"] == volume and made["labels"]["app"] == "cli"
    assert volume in docker_cli("volumes", "ls").stdout
    assert docker_cli("volumes", "rm", volume).returncode == 0
    assert parsed(docker_cli("volumes", "ls", "--json"))["volumes"] == []

    created = docker_cli("networks", "create", network, "--internal")
    assert created.returncode == 0, created.stderr
    listed = parsed(docker_cli("networks", "list", "--json"))["networks"]
    assert [(n["name"], n["internal"]) for n in listed] == [(network, True)]
    taken = docker_cli("networks", "create", network)
    assert taken.returncode == 1 and one_line(taken.stderr).startswith("error: conflict: ")
    assert docker_cli("networks", "rm", network).returncode == 0
    predefined = docker_cli("networks", "create", "bridge")
    assert predefined.returncode == 2 and "predefined" in one_line(predefined.stderr)
