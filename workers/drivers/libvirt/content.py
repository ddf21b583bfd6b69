"""Volume content: import (upload) checked against size, SHA-256 and format; download; clone.

Content travels through libvirt streams (``virStorageVol.upload``/``download``), so it works on
any connection, remote ones too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

import libvirt

from nube.catalog import PAYLOAD_LIMIT
from nube.catalog import vm_models as m
from nube.errors import Conflict, InvalidRequest
from workers.drivers.base import JobContext
from workers.drivers.libvirt.base import LibvirtBase
from workers.drivers.libvirt.provision import lookup_pool, lookup_volume
from workers.drivers.libvirt.storage import describe_volume
from workers.drivers.libvirt.streams import download, upload
from workers.drivers.libvirt.xml import parse_volume, volume_xml

QCOW2_MAGIC = b"QFI\xfb"


def decode_content(p: m.StorageVolumeUpload) -> bytes:
    """The upload's bytes, after checking them against its size, digest and format."""
    try:
        data = base64.b64decode(p.content, validate=True)
    except (binascii.Error, ValueError) as err:
        raise InvalidRequest("content is not valid base64", field="content") from err
    if len(data) != p.size:
        raise InvalidRequest(f"content is {len(data)} bytes, not {p.size}", field="size")
    digest = hashlib.sha256(data).hexdigest()
    if digest != p.sha256:
        raise InvalidRequest(f"content has SHA-256 {digest}, not {p.sha256}", field="sha256")
    if (p.format == "qcow2") != data.startswith(QCOW2_MAGIC):
        found = "qcow2" if data.startswith(QCOW2_MAGIC) else "not qcow2"
        raise InvalidRequest(f"content is {found}, but format is {p.format}", field="format")
    return data


def qcow2_virtual_size(data: bytes) -> int:
    """The virtual size in a qcow2 header (big-endian u64 at offset 24)."""
    return int.from_bytes(data[24:32], "big")


class ContentMixin(LibvirtBase):
    """``upload_volume``, ``download_volume`` and ``clone_volume``."""

    def upload_volume(self, params: m.StorageVolumeUpload, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.upload_volume`."""
        data = decode_content(params)
        return self._run(lambda c: self._upload(c, params, data))

    def _upload(
        self, conn: libvirt.virConnect, p: m.StorageVolumeUpload, data: bytes
    ) -> dict[str, Any]:
        pool = lookup_pool(conn, p.pool)
        if not pool.isActive():
            raise Conflict(f"storage pool '{p.pool}' is not active")
        if p.name in pool.listVolumes():
            vol = pool.storageVolLookupByName(p.name)
            try:
                same = hashlib.sha256(download(conn, vol, len(data))).hexdigest() == p.sha256
            except InvalidRequest:  # more bytes than the upload: other content
                same = False
            if not same:
                raise Conflict(f"a volume named '{p.name}' already exists in '{p.pool}'")
            return {**describe_volume(pool, vol), "sha256": p.sha256}
        capacity = qcow2_virtual_size(data) if p.format == "qcow2" else len(data)
        vol = pool.createXML(volume_xml(p.name, capacity, p.format, unit="bytes"), 0)
        try:
            upload(conn, vol, data)
        except Exception:
            vol.delete(0)
            raise
        pool.refresh(0)
        vol = pool.storageVolLookupByName(p.name)
        return {**describe_volume(pool, vol), "sha256": p.sha256}

    def download_volume(self, params: m.StorageVolumeRef, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.download_volume`."""

        def call(conn: libvirt.virConnect) -> dict[str, Any]:
            pool = lookup_pool(conn, params.pool)
            vol = lookup_volume(pool, params.name)
            info = describe_volume(pool, vol)
            data = download(conn, vol, PAYLOAD_LIMIT)
            return {
                "name": params.name,
                "pool": params.pool,
                "format": info["format"],
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "content": base64.b64encode(data).decode(),
            }

        return self._run(call)

    def grow_volume(self, params: m.StorageVolumeGrow, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.grow_volume`."""

        def call(conn: libvirt.virConnect) -> dict[str, Any]:
            pool = lookup_pool(conn, params.pool)
            vol = lookup_volume(pool, params.name)
            wanted, capacity = params.capacity_mib << 20, vol.info()[1]
            if wanted < capacity:
                raise Conflict(
                    f"volume '{params.name}' holds {capacity} bytes; it only grows",
                    capacity_bytes=capacity,
                )
            if wanted > capacity:
                vol.resize(wanted, 0)
            return describe_volume(pool, vol)

        return self._run(call)

    def clone_volume(self, params: m.StorageVolumeClone, ctx: JobContext) -> dict[str, Any]:
        """See :meth:`HypervisorDriver.clone_volume`."""
        return self._run(lambda c: self._clone(c, params))

    def _clone(self, conn: libvirt.virConnect, p: m.StorageVolumeClone) -> dict[str, Any]:
        pool = lookup_pool(conn, p.pool)
        src = lookup_volume(pool, p.name)
        source = describe_volume(pool, src)
        if p.target in pool.listVolumes():
            found = describe_volume(pool, pool.storageVolLookupByName(p.target))
            if p.backing and found["backing"] == source["path"]:
                return found
            copy = (None, source["format"], source["capacity_bytes"])
            if (
                not p.backing
                and (found["backing"], found["format"], found["capacity_bytes"]) == copy
            ):
                return found
            raise Conflict(f"a volume named '{p.target}' already exists in '{p.pool}'")
        if p.backing:
            backing = (source["path"], source["format"] or "raw")
            xml = volume_xml(p.target, source["capacity_bytes"], "qcow2", "bytes", backing)
            vol = pool.createXML(xml, 0)
        else:
            xml = volume_xml(p.target, source["capacity_bytes"], source["format"] or "raw", "bytes")
            vol = pool.createXMLFrom(xml, src, 0)
        return describe_volume(pool, vol)


def volume_format(vol: libvirt.virStorageVol) -> str:
    return str(parse_volume(vol.XMLDesc(0))["format"] or "raw")
