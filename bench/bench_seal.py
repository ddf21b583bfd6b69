"""Seal+open cost per message vs plain JSON, at 1 KiB and 64 KiB.

Prints µs per message for: json dumps+loads (baseline), the nube-sealed kombu serializer
(json + AES-256-GCM seal + open + replay guard in memory), and the bare seal+open of bytes;
and the ratio to the baseline. The agent hop's latency/throughput cost (issue 5) is measured
in `bench/bench_message_path.py` (publish → agent → worker against publish → worker).

    .venv/bin/python bench/bench_seal.py [--n 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from kombu.serialization import dumps, loads

from nube.sealing.keyring import Keyring, generate_key
from nube.sealing.replay import MemoryNonceStore, ReplayGuard
from nube.sealing.sealer import Binding, Sealer
from nube.sealing.serializer import BINDING_KEY, TASK_CONTENT_TYPE, TASK_SERIALIZER, register


def _body(size: int) -> list[Any]:
    blob = os.urandom(size // 2).hex()[:size]
    binding = {"task": "containers.run", "job": "0" * 32, "tenant": "acme"}
    return [
        [],
        {"params": {"image": "busybox", "env": {"BLOB": blob}}},
        {"callbacks": None, BINDING_KEY: binding},
    ]


def _time(fn: Callable[[], object], n: int, repeat: int = 5) -> float:
    """Best-of-``repeat`` mean µs per call."""
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter() - t0) / n * 1e6)
    return min(runs) if runs else statistics.mean(runs)


def _measure(size: int, n: int, sealer: Sealer, binding: Binding) -> tuple[float, float, float]:
    """µs per message at ``size``: json, the sealed serializer, the bare seal+open."""
    body = _body(size)
    raw = json.dumps(body).encode()
    base = _time(lambda: json.loads(json.dumps(body)), n)
    sealed = _time(
        lambda: loads(
            dumps(body, serializer=TASK_SERIALIZER)[2],
            TASK_CONTENT_TYPE,
            "utf-8",
            accept=[TASK_CONTENT_TYPE],
        ),
        n,
    )
    bare = _time(lambda: sealer.open(sealer.seal(raw, binding)), n)
    return base, sealed, bare


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    n = ap.parse_args().n
    ring = Keyring([generate_key("bench")])
    sealer = Sealer(ring)
    register(sealer, ReplayGuard(MemoryNonceStore()))
    binding = Binding("containers.run", "0" * 32, "acme")
    print(f"{'size':>7} {'json µs':>9} {'sealed µs':>10} {'ratio':>6} {'seal+open µs':>13}")
    for size in (1024, 64 * 1024):
        base, sealed, bare = _measure(size, n, sealer, binding)
        label = f"{size // 1024} KiB"
        print(f"{label:>7} {base:9.1f} {sealed:10.1f} {sealed / base:6.2f} {bare:13.1f}")


if __name__ == "__main__":
    main()
