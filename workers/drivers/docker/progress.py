"""Progress of streamed engine operations (pull, push, build), reported on the job."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator
from typing import Any

from nube.errors import InvalidRequest
from workers.drivers.base import JobContext
from workers.drivers.docker.errors import from_message

_STEP = re.compile(r"^Step (\d+)/(\d+)")


class Reporter:
    """Calls ``ctx.report_progress`` at most every ``interval`` seconds (and at the end)."""

    def __init__(self, ctx: JobContext, phase: str, interval: float = 0.5) -> None:
        self._ctx, self._phase, self._interval = ctx, phase, interval
        self._last = 0.0

    def report(self, progress: dict[str, Any], final: bool = False) -> None:
        now = time.monotonic()
        if final or now - self._last >= self._interval:
            self._last = now
            self._ctx.report_progress({"phase": self._phase, **progress})


class LayerProgress:
    """Aggregates per-layer ``progressDetail`` of a pull or push stream."""

    def __init__(self) -> None:
        self.layers: dict[str, tuple[int, int]] = {}
        self.done: set[str] = set()

    def feed(self, event: dict[str, Any]) -> None:
        layer, detail = event.get("id"), event.get("progressDetail") or {}
        status = str(event.get("status", ""))
        if not layer or ":" in layer:
            return
        if detail.get("total"):
            self.layers[layer] = (int(detail.get("current", 0)), int(detail["total"]))
        if status.startswith(("Pull complete", "Already exists", "Pushed", "Layer already")):
            self.done.add(layer)

    def snapshot(self) -> dict[str, Any]:
        return {
            "current": sum(c for c, _ in self.layers.values()),
            "total": sum(t for _, t in self.layers.values()),
            "layers": len(self.layers | dict.fromkeys(self.done, (0, 0))),
            "layers_done": len(self.done),
        }


def layer_stream(
    events: Iterable[dict[str, Any]], reporter: Reporter, kind: str, id: str
) -> Iterator[dict[str, Any]]:
    """Follow a pull/push stream: report progress, raise its error, yield every event."""
    progress = LayerProgress()
    for event in events:
        _raise_error(event, kind, id)
        progress.feed(event)
        reporter.report(progress.snapshot())
        yield event
    reporter.report(progress.snapshot() | {"done": True}, final=True)


def build_stream(events: Iterable[dict[str, Any]], reporter: Reporter) -> Iterator[dict[str, Any]]:
    """Follow a build stream: report ``step``/``steps``, raise a failed step, yield events."""
    for event in events:
        _raise_error(event, "image", "", build=True)
        match = _STEP.match(str(event.get("stream", "")))
        if match:
            reporter.report({"step": int(match[1]), "steps": int(match[2])}, final=True)
        yield event


def _raise_error(event: dict[str, Any], kind: str, id: str, build: bool = False) -> None:
    if "error" not in event:
        return
    message = str((event.get("errorDetail") or {}).get("message") or event["error"])
    if build:
        raise InvalidRequest(f"the build failed: {message.strip()}")
    raise from_message(message, kind, id)
