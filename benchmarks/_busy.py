"""Shared by the benchmarks: a busy-loop process on one core, and best-of-windows timing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable


class BusyCore:
    """A pure-Python busy loop in another process, pinned to one core, while in the block.

    The core is the last one this process may run on; the benchmark itself is
    not pinned, so the scheduler is free to move its threads off that core.

        with BusyCore():
            ...  # measured beside a core that another process keeps busy
    """

    def __init__(self, cpu: int | None = None):
        self.cpu = max(os.sched_getaffinity(0)) if cpu is None else cpu
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> BusyCore:
        self.process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        os.sched_setaffinity(self.process.pid, {self.cpu})
        time.sleep(0.2)  # let it start and take its core
        return self

    def __exit__(self, *exc) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


def seconds_per_call(fn: Callable[[], object], window: float, windows: int = 3) -> float:
    """Mean seconds per ``fn()`` call over the best of ``windows`` windows.

    Each window runs at least ``window`` seconds and three calls, so time slices
    lost to another process (a few milliseconds each) are averaged in, not
    dodged; the best window drops a burst of unrelated load.
    """
    fn()  # warm up (compilation, caches)
    best = float("inf")
    for _ in range(windows):
        calls, start = 0, time.perf_counter()
        while True:
            fn()
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= window and calls >= 3:
                break
        best = min(best, elapsed / calls)
    return best
