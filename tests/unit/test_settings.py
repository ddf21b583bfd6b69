"""Settings: read from NUBE_* (and *_FILE), a bad value names its variable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nube.broker import check_visibility_timeout
from nube.settings import SettingsError, load_settings


def test_defaults_and_overrides() -> None:
    s = load_settings({"NUBE_MAX_WAIT_SECONDS": "30", "NUBE_LIBVIRT_URI": "qemu:///system"})
    assert s.max_wait_seconds == 30 and s.libvirt_uri == "qemu:///system"
    assert load_settings({}).redis_url.startswith("redis://")


def test_secret_from_file(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    s = load_settings({"NUBE_REDIS_PASSWORD_FILE": str(secret), "NUBE_REDIS_URL": "redis://h:1/0"})
    assert s.redis_password == "s3cret"
    assert s.redis_dsn == s.broker == "redis://:s3cret@h:1/0"


def test_unreadable_secret_file_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="NUBE_REDIS_PASSWORD_FILE"):
        load_settings({"NUBE_REDIS_PASSWORD_FILE": "/nonexistent/pw"})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("NUBE_MAX_WAIT_SECONDS", "soon"),
        ("NUBE_NODE", "bad/node"),
        ("NUBE_LOG_LEVEL", "LOUD"),
        ("NUBE_REDIS_URL", "http://x"),
    ],
)
def test_bad_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings({name: value})


def test_visibility_timeout_must_exceed_time_limits() -> None:
    with pytest.raises(SettingsError, match="NUBE_VISIBILITY_TIMEOUT"):
        check_visibility_timeout(load_settings({"NUBE_VISIBILITY_TIMEOUT": "60"}))
    check_visibility_timeout(load_settings({}))


def test_service_stops_with_one_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "agents"],
        env={"NUBE_MAX_WAIT_SECONDS": "soon", "PATH": "/usr/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "nube: invalid setting NUBE_MAX_WAIT_SECONDS: "
        "Input should be a valid integer, unable to parse string as an integer"
    ]


def test_settings_that_name_files_are_values(tmp_path: Path) -> None:
    s = load_settings(
        {
            "NUBE_AUDIT_FILE": str(tmp_path / "audit.jsonl"),
            "NUBE_POLICY_FILE": str(tmp_path / "policy.yaml"),
        }
    )
    assert s.audit_file == tmp_path / "audit.jsonl" and s.policy_file == tmp_path / "policy.yaml"


def test_vm_settings_reach_the_driver() -> None:
    from workers.drivers import load_driver
    from workers.drivers.libvirt import LibvirtDriver

    s = load_settings({"NUBE_VM_DOMAIN_TYPE": "qemu", "NUBE_VM_POOL_ROOT": "/srv/pools"})
    driver = load_driver("vms", s)
    assert isinstance(driver, LibvirtDriver)
    assert driver._wanted_type == "qemu" and driver.pool_root == "/srv/pools"
    with pytest.raises(SettingsError, match="NUBE_VM_DOMAIN_TYPE"):
        load_settings({"NUBE_VM_DOMAIN_TYPE": "xen"})
