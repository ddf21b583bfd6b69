"""Seal+open cost per message against raw AES-256-GCM and plain JSON, at 1 KiB and 64 KiB.

Prints CPU µs per message, all measured in the same run, interleaved (best of ``--rounds``):

- ``aes``: raw AES-256-GCM encrypt+decrypt of the same serialized bytes with a reused
  ``AESGCM`` object and a header-sized associated data: the cipher at its best;
- ``sealer``: the bare :class:`~nube.sealing.sealer.Sealer` seal+open of those bytes;
- ``serializer``: the ``nube-sealed`` kombu serializer through kombu's ``dumps``/``loads`` (json,
  seal, open, json, binding checks, replay guard with its nonce store in memory);
- ``json``: stdlib ``json.dumps`` + ``json.loads`` of the body;
- ``kombu json``: kombu's ``json`` serializer through the same registry calls, what a plain
  Celery task message pays.

And the ratios: ``serializer / (json + aes)``, and ``(serializer - json) / aes``, the sealing
overhead above plain JSON against raw AES. The goal row of issue 10 ("sealed serializer / raw
AES-256-GCM seal+open of the same bytes, <= 2x") is read as the second: the serializer's cost
above JSON, against raw AES. ``--profile`` adds a cProfile of the 1 KiB serializer round trip.

    .venv/bin/python bench/bench_seal.py [--n 2000] [--rounds 7] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import time
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from kombu.serialization import dumps, loads

from nube.sealing.keyring import Keyring, generate_key
from nube.sealing.replay import MemoryNonceStore, ReplayGuard
from nube.sealing.sealer import Binding, Header, Sealer
from nube.sealing.serializer import BINDING_KEY, TASK_CONTENT_TYPE, TASK_SERIALIZER, register

WAYS = ("aes", "sealer", "serializer", "json", "kombu json")
GOAL = 2.0


def _body(size: int) -> list[Any]:
    blob = os.urandom(size // 2).hex()[:size]
    binding = {"task": "containers.run", "job": "0" * 32, "tenant": "acme"}
    return [
        [],
        {"params": {"image": "busybox", "env": {"BLOB": blob}}},
        {"callbacks": None, BINDING_KEY: binding},
    ]


def _ways(size: int, sealer: Sealer, binding: Binding) -> dict[str, Callable[[], object]]:
    """One message's round trip, each way (all of the same body)."""
    body = _body(size)
    raw = json.dumps(body).encode()
    aes = AESGCM(os.urandom(32))
    nonce = os.urandom(12)
    aad = Header(1, "A256GCM", "bench", 1767348900123, "A" * 16, *vars(binding).values()).aad()
    accept = [TASK_CONTENT_TYPE]

    def serializer() -> object:
        data = dumps(body, serializer=TASK_SERIALIZER)[2]
        return loads(data, TASK_CONTENT_TYPE, "utf-8", accept=accept)

    def kombu_json() -> object:
        ctype, enc, data = dumps(body, serializer="json")
        return loads(data, ctype, enc, accept=["application/json"])

    return {
        "aes": lambda: aes.decrypt(nonce, aes.encrypt(nonce, raw, aad), aad),
        "sealer": lambda: sealer.open(sealer.seal(raw, binding)),
        "serializer": serializer,
        "json": lambda: json.loads(json.dumps(body)),
        "kombu json": kombu_json,
    }


def _per_call_us(fn: Callable[[], object], n: int) -> float:
    """Mean CPU µs per call: the process's CPU time, so other load on the machine counts less."""
    t0 = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - t0) / n * 1e6


def measure(size: int, n: int, rounds: int, sealer: Sealer, binding: Binding) -> dict[str, float]:
    """Best-of-``rounds`` µs per call of each way, the ways interleaved within each round."""
    ways = _ways(size, sealer, binding)
    best = {name: float("inf") for name in ways}
    for _ in range(rounds):
        for name, fn in ways.items():
            best[name] = min(best[name], _per_call_us(fn, n))
    return best


def _profile(sealer: Sealer, binding: Binding, n: int) -> str:
    serializer = _ways(1024, sealer, binding)["serializer"]
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(n):
        serializer()
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(18)
    return out.getvalue()


LABELS = {
    "aes": "raw AES-256-GCM, reused AESGCM",
    "sealer": "bare Sealer seal+open",
    "serializer": "nube-sealed serializer",
    "json": "json dumps+loads",
    "kombu json": "kombu json serializer",
}


def ratios(us: dict[str, float]) -> dict[str, float]:
    """The goal row's ratios from one size's figures."""
    return {
        "serializer / (json + aes)": us["serializer"] / (us["json"] + us["aes"]),
        "(serializer - json) / aes  [goal <= 2x]": (us["serializer"] - us["json"]) / us["aes"],
        "(serializer - kombu json) / aes": (us["serializer"] - us["kombu json"]) / us["aes"],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000, help="calls per timing (1 KiB)")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    sealer = Sealer(Keyring([generate_key("bench")]))
    register(sealer, ReplayGuard(MemoryNonceStore()))
    binding = Binding("containers.run", "0" * 32, "acme")
    sizes = (1024, 64 * 1024)
    figures = []
    for size in sizes:
        n = max(50, args.n * 1024 // size)
        figures.append(measure(size, n, args.rounds, sealer, binding))
    print(f"CPU µs per message round trip, best of {args.rounds} interleaved rounds")
    print(f"{'':42}" + "".join(f"{f'{size // 1024} KiB':>10}" for size in sizes))
    for way in WAYS:
        print(f"{LABELS[way]:42}" + "".join(f"{us[way]:10.1f}" for us in figures))
    rows = [ratios(us) for us in figures]
    for name in rows[0]:
        print(f"{name:42}" + "".join(f"{row[name]:9.2f}x" for row in rows))
    print(
        f"goal (issue 10): the sealing overhead above plain JSON, (serializer - json) / aes, "
        f"<= {GOAL:.0f}x at 1 KiB"
    )
    if args.profile:
        print(_profile(sealer, binding, args.n * 5))


if __name__ == "__main__":
    main()
