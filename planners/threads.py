"""Threads of the numba kernels: how many, and when a batch is worth them.

Every batched kernel of the tree search (:mod:`mbrl.planners._kernels`) and of
the native games (:mod:`mbrl.games`) is compiled twice from one function, a
serial loop and a ``prange`` loop; :class:`BatchKernel` runs one or the
other. The choice, measured on a 2-core machine with and without a busy-loop
process on one core (BENCHMARKS.md, "MCTS and game kernels after the tree
record"; ``benchmarks/kernel_threads.py``):

- **Serial below a threshold.** Starting a parallel region costs a few
  microseconds, more than a whole kernel at small B (a B=1 tree walk is
  about a microsecond), so each kernel runs serially below its measured
  ``min_parallel_batch`` (32 rows for the tree kernels; 64 to 16384 for the
  game kernels, from the cheap ``legal`` to the long ``playout``).
- **Above it, all threads or one, whichever has been faster.** When another
  process holds a core, every parallel region waits at its end for the
  thread the scheduler has put behind that process: a connect-four
  ``legal`` at B=4096 took 8 ms instead of 7 us. Each kernel therefore
  times its calls and runs its ``prange`` build on one thread while that is
  faster per row, trying all threads again now and then (at most
  :data:`PROBE_SHARE` of the time). The slowdown beside a busy core is then
  the kernel's parallel speedup, about 2x, instead of 100-1000x.
- **Layer and wait policy: numba's default, OpenMP, with GNU OpenMP's
  default spin-then-sleep.** Threads that sleep at once
  (``OMP_WAIT_POLICY=passive``, numba's ``workqueue`` layer) do not collapse
  beside a busy core, but waking them costs 50-90 us per region on an idle
  virtual machine, which loses the parallel gain below ~1000 rows; shorter
  spins (``GOMP_SPINCOUNT`` 1000, 10000) were no better idle and no better
  busy once the thread count adapts. TBB is not installed here.
- **Thread count.** :func:`set_num_threads` bounds the numba threads (the
  CLI's ``--threads``); with one thread every kernel runs on one. Ray
  self-play actors sharing a machine should each get ``cores // actors``
  threads (at least 1): two actors' kernels on one core are the busy-core
  case above, paid for at every call.
"""

from __future__ import annotations

import math
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field

import numba

__all__ = [
    "COST_WEIGHT",
    "PROBE_SHARE",
    "BatchKernel",
    "batch_kernel",
    "get_num_threads",
    "set_num_threads",
]


def set_num_threads(num_threads: int) -> int:
    """Bound the threads of the numba kernels to ``num_threads`` (at least 1).

    Capped at the threads numba started with (``NUMBA_NUM_THREADS``, by
    default the core count). Applies to kernels launched from the calling
    thread (numba's rule). Returns the count in effect.
    """
    if not isinstance(num_threads, int) or isinstance(num_threads, bool) or num_threads < 1:
        raise ValueError(f"num_threads must be a positive int, got {num_threads!r}")
    count = min(num_threads, numba.config.NUMBA_NUM_THREADS)
    numba.set_num_threads(count)
    return count


def get_num_threads() -> int:
    """Threads a parallel numba kernel launched from this thread would use."""
    return numba.get_num_threads()


_clock = time.perf_counter

PROBE_SHARE = 0.02
"""Most of the wall time a :class:`BatchKernel` spends trying the thread count it is not using."""
COST_WEIGHT = 0.1
"""Weight of the latest call in a :class:`BatchKernel`'s average cost per row.

Small enough that stalls at one call in twenty still show in the average of
all threads (a probe that happens to be fast does not undo a stall's record),
large enough that a stall moves the average past one thread's at once.
"""


@dataclass(eq=False)
class BatchKernel:
    """A numba kernel over rows in two builds: ``serial`` and ``parallel`` (``prange``).

    Calling it runs ``serial`` when argument ``batch_arg`` (an array, batch
    first) has fewer than ``min_parallel_batch`` rows, and ``parallel``
    otherwise, on all of the calling thread's numba threads or on one of
    them: whichever has been faster per row. Every such call is timed (an
    exponential average of seconds per row for each thread count, weight
    :data:`COST_WEIGHT`, the first call of each left out as compilation), and
    now and then the other count runs to check: the next such probe comes
    ``elapsed / PROBE_SHARE`` after a probe that took ``elapsed``. On an idle
    machine all threads win; when another process takes a core, a parallel
    region waits for the thread that lost its core, the average jumps, and
    one thread takes over until probes find the core free again. One thread
    runs the ``prange`` build rather than the serial one because the
    ``prange`` build is the faster loop (numba hoists the loads of a record's
    fields out of it). The builds and thread counts compute the same thing,
    so the choice changes only the speed.
    """

    serial: Callable
    parallel: Callable
    min_parallel_batch: int
    batch_arg: int = 0
    _cost: list[float] = field(default_factory=lambda: [math.nan, math.nan], repr=False)
    """Seconds per row on one thread and on all threads."""
    _calls: list[int] = field(default_factory=lambda: [0, 0], repr=False)
    _next_probe: float = field(default=0.0, repr=False)

    def __call__(self, *args):
        batch_size = args[self.batch_arg].shape[0]
        if batch_size < self.min_parallel_batch:
            return self.serial(*args)
        return self._run_faster(batch_size, args)

    def for_batch(self, batch_size: int) -> Callable:
        """What a batch of ``batch_size`` rows runs: the serial build, or this chooser."""
        return self.serial if batch_size < self.min_parallel_batch else self

    def _run_faster(self, batch_size: int, args):
        cost, calls = self._cost, self._calls
        probe = False
        if calls[0] < 2:  # not timed yet (the first call may compile)
            all_threads = 0
        elif calls[1] < 2:
            all_threads = 1
        else:
            all_threads = 0 if cost[0] < cost[1] else 1
            probe = _clock() >= self._next_probe
            if probe:
                all_threads = 1 - all_threads
        start = _clock()
        out = self.parallel(*args) if all_threads else self._on_one_thread(args)
        end = _clock()
        calls[all_threads] += 1
        per_row = (end - start) / batch_size
        if calls[all_threads] == 2:
            cost[all_threads] = per_row
        elif calls[all_threads] > 2:
            cost[all_threads] += COST_WEIGHT * (per_row - cost[all_threads])
        if probe:
            self._next_probe = end + (end - start) / PROBE_SHARE
        return out

    def _on_one_thread(self, args):
        threads = numba.get_num_threads()
        if threads == 1:
            return self.parallel(*args)
        numba.set_num_threads(1)
        try:
            return self.parallel(*args)
        finally:
            numba.set_num_threads(threads)


def batch_kernel(min_parallel_batch: int, batch_arg: int = 0) -> Callable[[Callable], BatchKernel]:
    """Decorator: compile a ``prange`` kernel serially and in parallel (see :class:`BatchKernel`).

    Argument ``batch_arg`` of the kernel is an array whose first axis is the
    batch. Both builds are cached on disk; the parallel one is compiled from a
    copy of the function under another qualified name, because numba's cache
    keys a function by its name and line, not by its compile flags.
    """

    def wrap(fn: Callable) -> BatchKernel:
        twin = types.FunctionType(
            fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__
        )
        twin.__qualname__ = f"{fn.__qualname__}__parallel"
        twin.__doc__ = fn.__doc__
        serial = numba.njit(cache=True)(fn)
        parallel = numba.njit(cache=True, parallel=True)(twin)
        return BatchKernel(serial, parallel, min_parallel_batch, batch_arg)

    return wrap
