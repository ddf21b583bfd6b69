"""cloud-init NoCloud seed ISOs (label ``cidata``), made with ``genisoimage``.

The user data may hold secrets: it is written to a private temporary directory only for the
time ``genisoimage`` reads it, and never logged.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from nube.catalog.vm_models import VmCloudInit
from nube.errors import BackendFailed

GENISOIMAGE = "genisoimage"


def meta_data(ci: VmCloudInit, instance_id: str, hostname: str) -> str:
    """The given meta-data, or ``instance-id`` and ``local-hostname``; SSH keys appended as
    ``public-keys``."""
    text = ci.meta_data or f"instance-id: {instance_id}\nlocal-hostname: {hostname}\n"
    if ci.ssh_authorized_keys:
        keys = "".join(f"  - {key}\n" for key in ci.ssh_authorized_keys)
        text = text.rstrip("\n") + "\npublic-keys:\n" + keys
    return text


def seed_iso(ci: VmCloudInit, instance_id: str, hostname: str) -> bytes:
    """The bytes of a NoCloud seed ISO with ``user-data``, ``meta-data`` and, when given,
    ``network-config``."""
    if shutil.which(GENISOIMAGE) is None:
        raise BackendFailed(reason="genisoimage is not installed (scripts/setup.sh installs it)")
    files = {
        "user-data": ci.user_data or "#cloud-config\n{}\n",
        "meta-data": meta_data(ci, instance_id, hostname),
    }
    if ci.network_config:
        files["network-config"] = ci.network_config
    with tempfile.TemporaryDirectory(prefix="nube-seed-") as tmp:
        for name, text in files.items():
            (Path(tmp) / name).write_text(text)
        iso = Path(tmp) / "seed.iso"
        cmd = [GENISOIMAGE, "-quiet", "-output", str(iso), "-volid", "cidata", "-joliet", "-rock"]
        done = subprocess.run([*cmd, *files], cwd=tmp, capture_output=True, text=True)
        if done.returncode != 0:
            raise BackendFailed(reason=f"genisoimage failed: {done.stderr.strip()[:300]}")
        return iso.read_bytes()
