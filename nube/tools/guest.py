"""A small real guest for VM tests and for trying nube: no registry, no download.

Debian's kernel (``linux-image-amd64``, installed by ``scripts/setup.sh``) and an initramfs made
here from ``busybox-static`` and the kernel's own virtio, ATA and ISO 9660 modules. Its
``/init`` prints on the serial console (``ttyS0``):

- ``NUBE-GUEST-UP`` once running;
- ``NUBE-CIDATA hostname=<h> instance=<id>`` when a NoCloud seed (label ``cidata``) is attached,
  and runs its ``user-data`` when that is a ``#!`` script;
- ``NUBE-GUEST-IP <address>`` after DHCP on ``eth0`` (busybox ``udhcpc``);
- ``NUBE-DISK-ADDED <dev> <sectors>`` for every block device that appears later (hot-plug);

and answers ``nube-guest <hostname>`` on TCP port :data:`PORT`. Built once into
``~/.cache/nube/guest/<kernel release>-<recipe tag>/`` (``NUBE_GUEST_CACHE`` overrides),
rebuilt when missing: ``python -m nube.tools.guest`` prints the two paths.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

PORT = 7777
BUSYBOX = Path("/bin/busybox")
#: Modules the guest needs; their dependencies come from the kernel's ``modules.dep``.
MODULES = (
    "drivers/virtio/virtio_pci.ko",
    "drivers/block/virtio_blk.ko",
    "drivers/virtio/virtio_balloon.ko",
    "drivers/net/virtio_net.ko",
    "drivers/ata/ata_piix.ko",
    "drivers/scsi/sr_mod.ko",
    "fs/isofs/isofs.ko",
)
KERNEL_ARGS = "console=ttyS0 quiet panic=-1"

INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /etc/modules); do insmod "/lib/modules/$m" 2>/dev/null; done
echo "NUBE-GUEST-UP"
hostname nube-guest
sleep 1
if [ -b /dev/sr0 ] && mount -t iso9660 -o ro /dev/sr0 /mnt 2>/dev/null; then
  h=$(sed -n 's/^local-hostname: *//p' /mnt/meta-data)
  i=$(sed -n 's/^instance-id: *//p' /mnt/meta-data)
  [ -n "$h" ] && hostname "$h"
  echo "NUBE-CIDATA hostname=$h instance=$i"
  if head -c 2 /mnt/user-data | grep -q '#!'; then
    cp /mnt/user-data /user-data && chmod +x /user-data && /user-data
  fi
  umount /mnt
fi
ip link set lo up
ip link set eth0 up 2>/dev/null
udhcpc -i eth0 -s /etc/udhcpc.sh -q -n -t 30 -T 1 >/dev/null 2>&1
echo "NUBE-GUEST-IP $(ip -4 -o addr show eth0 | sed -n 's/.* inet \([0-9.]*\).*/\1/p')"
nc -ll -p PORT -e /bin/hello.sh &
known=" $(ls /sys/block | tr '\n' ' ') "
while true; do
  for b in $(ls /sys/block); do
    case "$known" in
      *" $b "*) ;;
      *) echo "NUBE-DISK-ADDED $b $(cat /sys/block/$b/size)"; known="$known$b " ;;
    esac
  done
  sleep 1
done
""".replace("PORT", str(PORT))

UDHCPC = r"""#!/bin/sh
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    for r in $router; do ip route add default via "$r" dev "$interface"; break; done
    ;;
esac
"""

HELLO = '#!/bin/sh\necho "nube-guest $(hostname)"\n'


@dataclass(frozen=True)
class Guest:
    """The built guest: boot ``kernel`` with ``initrd`` and :data:`KERNEL_ARGS`."""

    kernel: Path
    initrd: Path
    release: str
    cmdline: str = KERNEL_ARGS


def kernel_release(boot: Path = Path("/boot")) -> str:
    """The newest Debian kernel release in ``boot`` (``6.1.0-57-amd64``)."""
    found = sorted(p.name.removeprefix("vmlinuz-") for p in boot.glob("vmlinuz-*-amd64"))
    if not found:
        raise FileNotFoundError(
            "no /boot/vmlinuz-*-amd64: run scripts/setup.sh (linux-image-amd64)"
        )
    return found[-1]


def recipe_tag() -> str:
    """8 hex digits naming what goes into the initramfs (a changed recipe builds anew)."""
    recipe = "\0".join([INIT, UDHCPC, HELLO, *MODULES])
    return hashlib.sha256(recipe.encode()).hexdigest()[:8]


def cache_dir() -> Path:
    root = os.environ.get("NUBE_GUEST_CACHE") or str(Path.home() / ".cache" / "nube" / "guest")
    return Path(root)


def build(force: bool = False) -> Guest:
    """The cached guest, built first when missing (or with ``force``)."""
    release = kernel_release()
    out = cache_dir() / f"{release}-{recipe_tag()}"
    kernel, initrd = out / "vmlinuz", out / "initrd.img"
    if force or not (kernel.exists() and initrd.exists()):
        out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f"/boot/vmlinuz-{release}", out / "vmlinuz.tmp")
        (out / "initrd.tmp").write_bytes(initramfs(release))
        os.replace(out / "vmlinuz.tmp", kernel)
        os.replace(out / "initrd.tmp", initrd)
    return Guest(kernel=kernel, initrd=initrd, release=release)


def initramfs(release: str) -> bytes:
    """A gzip'd newc cpio archive: busybox, /init, the modules and their load order."""
    moddir = Path("/lib/modules") / release / "kernel"
    archive = Cpio()
    for d in ("bin", "dev", "etc", "proc", "sys", "mnt", "tmp", "lib", "lib/modules"):
        archive.add_dir(d)
    archive.add_file("bin/busybox", BUSYBOX.read_bytes(), 0o755)
    archive.add_file("init", INIT.encode(), 0o755)
    archive.add_file("etc/udhcpc.sh", UDHCPC.encode(), 0o755)
    archive.add_file("bin/hello.sh", HELLO.encode(), 0o755)
    loaded = []
    for rel in load_order(Path("/lib/modules") / release, MODULES):
        path = _module(moddir / rel)
        if path is None:
            continue
        name = path.name.removesuffix(".xz")
        archive.add_file(f"lib/modules/{name}", _read_module(path), 0o644)
        loaded.append(name)
    archive.add_file("etc/modules", ("\n".join(loaded) + "\n").encode(), 0o644)
    raw = archive.finish()
    return subprocess.run(["gzip", "-9", "-n"], input=raw, capture_output=True, check=True).stdout


def load_order(root: Path, wanted: tuple[str, ...]) -> list[str]:
    """``wanted`` (paths under ``kernel/``) with their dependencies, each after what it needs."""
    deps: dict[str, list[str]] = {}
    for line in (root / "modules.dep").read_text().splitlines():
        mod, _, needs = line.partition(":")
        deps[_plain(mod)] = [_plain(n) for n in needs.split()]
    order: list[str] = []

    def visit(mod: str) -> None:
        if mod in order:
            return
        for dep in deps.get(mod, []):
            visit(dep)
        order.append(mod)

    for mod in wanted:
        visit(mod)
    return order


def _plain(path: str) -> str:
    return path.removeprefix("kernel/").removesuffix(".xz")


def _module(path: Path) -> Path | None:
    for candidate in (path, path.with_name(path.name + ".xz")):
        if candidate.exists():
            return candidate
    return None


def _read_module(path: Path) -> bytes:
    if path.suffix == ".xz":
        return subprocess.run(["xz", "-dc", str(path)], capture_output=True, check=True).stdout
    return path.read_bytes()


class Cpio:
    """A minimal writer of the ``newc`` cpio format (what the kernel unpacks)."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.ino = 1

    def _entry(self, name: str, mode: int, data: bytes) -> None:
        encoded = name.encode() + b"\0"
        fields = [self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0]
        header = b"070701" + b"".join(f"{f:08x}".encode() for f in fields)
        self.ino += 1
        self.buf.write(header + encoded)
        self._pad()
        self.buf.write(data)
        self._pad()

    def _pad(self) -> None:
        self.buf.write(b"\0" * (-self.buf.tell() % 4))

    def add_dir(self, name: str) -> None:
        self._entry(name, 0o040755, b"")

    def add_file(self, name: str, data: bytes, perm: int) -> None:
        self._entry(name, 0o100000 | perm, data)

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0, b"")
        return self.buf.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild even when cached")
    guest = build(parser.parse_args().force)
    print(f"kernel  {guest.kernel}\ninitrd  {guest.initrd}\ncmdline {guest.cmdline}")


if __name__ == "__main__":
    main()
