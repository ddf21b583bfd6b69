"""Reading a VM: its serial console's log and its statistics (``domstats``)."""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

import libvirt

from nube.catalog import vm_models as m
from workers.drivers.base import JobContext
from workers.drivers.console_follow import LogFile, follow
from workers.drivers.libvirt.base import LibvirtBase, jsonable
from workers.drivers.libvirt.guests import owned_domain, state_of, vm_name
from workers.drivers.libvirt.xml import parse_domain

#: Longest console line returned; the rest of a line is cut.
LINE_LIMIT = 4096


def tail_lines(path: Path, count: int) -> tuple[list[str], bool]:
    """The last ``count`` lines of ``path`` (none when it does not exist) and whether there
    were more."""
    try:
        with path.open("rb") as fh:
            kept: deque[bytes] = deque(maxlen=count + 1)
            for line in fh:
                kept.append(line[:LINE_LIMIT])
    except FileNotFoundError:
        return [], False
    lines = [b.decode("utf-8", "replace").rstrip("\r\n") for b in kept]
    truncated = len(lines) > count
    return lines[-count:], truncated


def group_stats(raw: dict[str, Any]) -> dict[str, Any]:
    """libvirt's flat ``domstats`` keys grouped: ``cpu``, ``memory`` (balloon), ``vcpu``, and
    the per-device lists ``block`` and ``net``."""
    out: dict[str, Any] = {"cpu": {}, "memory": {}, "vcpu": {}, "block": [], "net": []}
    devices: dict[str, dict[int, dict[str, Any]]] = {"block": {}, "net": {}}
    for key, value in raw.items():
        head, _, rest = key.partition(".")
        if head in devices:
            index, _, field = rest.partition(".")
            if index.isdigit():
                devices[head].setdefault(int(index), {})[field] = value
        elif head == "cpu":
            out["cpu"][rest] = value
        elif head == "balloon":
            out["memory"][rest] = value
        elif head == "vcpu":
            out["vcpu"][rest] = value
    for kind, found in devices.items():
        out[kind] = [found[i] for i in sorted(found)]
    return jsonable(out)


class ConsolesMixin(LibvirtBase):
    """``domain_console`` and ``domain_stats``."""

    def domain_console(self, params: m.VmConsole, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.domain_console`. The log is the file libvirt's virtlogd
        writes on this host (``<serial><log file=...>``), so the worker must run on the VM's
        hypervisor host."""

        def call(conn: libvirt.virConnect) -> dict[str, Any]:
            dom, _ = owned_domain(conn, params.name, ctx)
            log = parse_domain(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)).console_log
            lines, truncated = tail_lines(Path(log), params.tail) if log else ([], False)
            return {"name": vm_name(dom), "lines": lines, "truncated": truncated, "log": bool(log)}

        return self._run(call)

    def follow_console(self, params: m.VmConsoleFollow, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.follow_console` (the log as :meth:`domain_console`
        reads it)."""

        def call(conn: libvirt.virConnect) -> tuple[str, str | None]:
            dom, _ = owned_domain(conn, params.name, ctx)
            log = parse_domain(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)).console_log
            return vm_name(dom), log

        name, log = self._run(call)
        if not log:
            return {"name": name, **follow(lambda: [], params.seconds, ctx)}
        first = tail_lines(Path(log), params.tail)[0] if params.tail else []
        source = LogFile(Path(log))
        return {"name": name, **follow(source.new_lines, params.seconds, ctx, first)}

    def domain_stats(self, params: m.VmRef, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.domain_stats`."""

        def call(conn: libvirt.virConnect) -> dict[str, Any]:
            dom, _ = owned_domain(conn, params.name, ctx)
            found = conn.domainListGetStats([dom], 0, 0)
            raw = found[0][1] if found else {}
            return {"name": vm_name(dom), "state": state_of(dom).value, **group_stats(raw)}

        return self._run(call)
