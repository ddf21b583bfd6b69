"""Run a module under cProfile, every thread, only between two ``SIGUSR2`` signals.

    python -m bench._profiler OUT.prof -m agents --pool solo

The first ``SIGUSR2`` starts profiling (the main thread at once; every other thread at its next
Python-level event, each with its own profiler); the second stops it and writes the merged
profile (all threads) to ``OUT.prof``, then ``OUT.prof.done``. Start-up (imports) and shutdown
are outside the window. The default timer is wall time, so a thread blocked in a call (a poll,
a socket read, a sleep) counts that wait to the call. Used by ``bench/profile_message_path.py``;
``SIGUSR2`` is free in a Celery worker unless ``CELERY_RDBSIG`` is set.
"""

from __future__ import annotations

import cProfile
import pstats
import runpy
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any


class _Snapshot:
    """What ``pstats.Stats`` loads: a profiler's stats taken without ``disable()``, which must
    run in the profiler's own thread (the GIL keeps ``getstats`` from racing the thread)."""

    def __init__(self, profile: cProfile.Profile) -> None:
        profile.snapshot_stats()
        self.stats = profile.stats

    def create_stats(self) -> None:
        pass


class Window:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.active = False
        self.done = False
        self.main = cProfile.Profile()
        self.threads: list[cProfile.Profile] = []
        self.lock = threading.Lock()

    def thread_hook(self, frame: FrameType, event: str, arg: Any) -> None:
        """A thread's profile function until the window opens: then its own profiler (which
        replaces this function for the thread)."""
        if self.active and not self.done:
            profile = cProfile.Profile()
            with self.lock:
                self.threads.append(profile)
            profile.enable()

    def toggle(self, signum: int, frame: FrameType | None) -> None:
        if not self.active:
            self.active = True
            self.main.enable()
            return
        if self.done:
            return
        self.main.disable()
        self.done = True
        stats = pstats.Stats(_Snapshot(self.main))  # type: ignore[arg-type]
        with self.lock:
            for profile in self.threads:
                stats.add(_Snapshot(profile))  # type: ignore[arg-type]
        stats.dump_stats(str(self.out))
        Path(f"{self.out}.done").write_text(f"{1 + len(self.threads)} threads\n")


def main(argv: list[str]) -> None:
    if len(argv) < 3 or argv[1] != "-m":
        print("usage: python -m bench._profiler OUT.prof -m MODULE [ARGS ...]", file=sys.stderr)
        raise SystemExit(2)
    window = Window(Path(argv[0]))
    signal.signal(signal.SIGUSR2, window.toggle)
    threading.setprofile(window.thread_hook)
    sys.argv = [argv[2], *argv[3:]]
    runpy.run_module(argv[2], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
