"""The namespace helpers every harness shares (:mod:`nube.tools.netns`), on real namespaces of
this test's own prefix (``nbx-``)."""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest

from nube.tools import netns
from tests.conftest import need

PREFIX = "nbx-"


@pytest.fixture
def clean() -> Iterator[None]:
    need(os.geteuid() == 0 and shutil.which("ip") is not None, "root and iproute2")
    netns.remove_all(PREFIX)
    yield
    netns.remove_all(PREFIX)


def test_remove_all_ends_what_runs_inside_and_removes_only_its_prefix(clean: None) -> None:
    netns.ip("netns", "add", f"{PREFIX}a")
    netns.ip("link", "add", f"{PREFIX}a", "type", "veth", "peer", "name", f"{PREFIX}a-p")
    netns.ip("link", "add", f"{PREFIX}br", "type", "bridge")
    sleeper = subprocess.Popen(["ip", "netns", "exec", f"{PREFIX}a", "sleep", "300"])
    try:
        assert netns.namespaces(PREFIX) == [f"{PREFIX}a"]
        assert set(netns.links(PREFIX)) == {f"{PREFIX}a", f"{PREFIX}a-p", f"{PREFIX}br"}
        deadline = time.monotonic() + 10
        while sleeper.pid not in netns.pids_inside(f"{PREFIX}a") and time.monotonic() < deadline:
            time.sleep(0.05)  # `ip netns exec` enters the namespace, then runs sleep
        assert sleeper.pid in netns.pids_inside(f"{PREFIX}a")
        others = set(netns.links("")) - set(netns.links(PREFIX))
        removed = netns.remove_all(PREFIX)
        assert f"netns {PREFIX}a" in removed
        assert sleeper.wait(timeout=15) is not None  # ended by remove_all
        assert netns.namespaces(PREFIX) == [] and netns.links(PREFIX) == []
        assert others <= set(netns.links(""))  # nothing else was touched
        assert netns.remove_all(PREFIX) == []
    finally:
        if sleeper.poll() is None:
            sleeper.kill()


def test_a_range_in_use_is_refused_unless_it_is_the_harness_own(clean: None) -> None:
    subnet = ipaddress.ip_network("10.229.0.0/24")
    netns.check_range_free(subnet, PREFIX)
    netns.ip("link", "add", f"{PREFIX}br", "type", "bridge")
    netns.ip("addr", "add", "10.229.0.1/24", "dev", f"{PREFIX}br")
    netns.check_range_free(subnet, PREFIX)  # its own bridge
    with pytest.raises(netns.NetError, match=r"10\.229\.0\.0/24 is in use on nbx-br"):
        netns.check_range_free(subnet, "nbm-")
    with pytest.raises(netns.NetError, match="ip link add"):
        netns.ip("link", "add", f"{PREFIX}br", "type", "bridge")  # exists already
