"""What only a real engine shows of a container: a published port serves HTTP on the host.

The container contract (life cycle, run, exec, logs, diff, commit, ports, stats, tenancy) runs
on the fake and on this engine in ``tests/drivers``.
"""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
import requests

from nube.catalog import container_models as m
from tests.conftest import wait_http
from tests.drivers.conftest import IMAGE
from workers.drivers import JobContext
from workers.drivers.docker import DockerDriver


def test_port_mapping_serves_http_on_the_mapped_host_port(
    driver: DockerDriver, ctx: JobContext
) -> None:
    script = "mkdir -p /www && echo hello-nube > /www/index.html && httpd -f -p 8080 -h /www"
    spec = {"image": IMAGE, "command": ["sh", "-c", script], "detach": True}
    started = driver.run(m.ContainerRun.model_validate(spec | {"ports": ["127.0.0.1::8080"]}), ctx)
    host_port = driver.port(m.ContainerRef(id=started["id"]), ctx)["ports"][0]["host_port"]
    url = f"http://127.0.0.1:{host_port}/index.html"
    deadline = time.monotonic() + 10
    while (response := wait_http(url)).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert response.text == "hello-nube\n"
    with pytest.raises(requests.ConnectionError):  # published on 127.0.0.1 only
        requests.get(url.replace("127.0.0.1", "127.0.0.2"), timeout=1)


def test_a_first_delivery_does_not_look_for_an_earlier_attempts_container(
    driver: DockerDriver, ctx: JobContext
) -> None:
    """A redelivery adopts what an earlier attempt made (found by the job label); a first
    delivery (attempt 1) cannot have an earlier attempt, so the engine is not asked: a
    container with the job's label left there (as if by an earlier attempt) is not adopted."""
    spec = m.ContainerRun.model_validate({"image": IMAGE, "command": ["true"], "detach": True})
    earlier = driver.run(spec, ctx)  # attempt unknown (0): made, as an earlier attempt would
    again = driver.run(spec, replace(ctx, attempt=2))  # a redelivery: adopts it
    first = driver.run(spec, replace(ctx, attempt=1))  # a first delivery: makes its own
    assert again["id"] == earlier["id"]
    assert first["id"] != earlier["id"]
    labelled = driver.client.containers.list(all=True, filters={"label": f"nube.job={ctx.job_id}"})
    assert sorted(c.id for c in labelled) == sorted([earlier["id"], first["id"]])
