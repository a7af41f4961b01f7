"""Threads of the numba kernels: how many, how they wait, and when a batch is worth them.

Every batched kernel of the tree search (:mod:`mbrl.planners._kernels`) and of
the native games (:mod:`mbrl.games`) is compiled twice from one function, a
serial loop and a ``prange`` loop, and :class:`BatchKernel` picks the serial
one below a batch size measured per kernel. The measured choice (the numbers
are in BENCHMARKS.md, "MCTS and game kernels after the tree record"):

- **Serial below a threshold.** Waking a second thread costs a few
  microseconds on an idle machine, which is more than a whole kernel at small
  B (a B=1 tree walk is about a microsecond), so every kernel runs serially
  below its ``min_parallel_batch``.
- **Layer: OpenMP (numba's default here), threads that spin briefly.** When
  another process holds a core, a parallel region waits at its end for the
  thread that the scheduler has put behind that process. A thread that spins
  forever between regions (GNU OpenMP's default spin is ~300k iterations)
  uses up its time slice and is descheduled for a whole slice (milliseconds)
  at random calls; a thread that sleeps at once (``OMP_WAIT_POLICY=passive``,
  or numba's ``workqueue`` layer) costs a 50-90 us wake-up per call on an
  idle virtual machine. A short spin (``GOMP_SPINCOUNT``, see
  :data:`SPIN_COUNT`) keeps the wake-up cheap between the calls of one search
  and lets a thread that has nothing to do sleep before it is charged a time
  slice, so a woken thread gets the core back promptly.
- **Thread count.** :func:`set_num_threads` bounds the numba threads (the
  CLI's ``--threads``); with one thread every kernel runs serially. Ray
  self-play actors should each get ``cores // actors`` threads (at least 1):
  kernels of two actors sharing a core are the busy-core case above.

The spin count is set for numba's OpenMP runtime only: it is read when that
runtime loads, at the first parallel kernel, from the environment; this
module sets it there unless the user has (``GOMP_SPINCOUNT`` or
``OMP_WAIT_POLICY`` in the environment win), and torch's own OpenMP runtime,
loaded earlier with torch, is not affected.
"""

from __future__ import annotations

import os
import types
from collections.abc import Callable
from dataclasses import dataclass

import numba

__all__ = ["SPIN_COUNT", "BatchKernel", "batch_kernel", "get_num_threads", "set_num_threads"]

SPIN_COUNT = 10_000
"""GOMP_SPINCOUNT of numba's OpenMP threads: busy-wait iterations before sleeping."""


def _configure_runtime() -> None:
    if "GOMP_SPINCOUNT" not in os.environ and "OMP_WAIT_POLICY" not in os.environ:
        os.environ["GOMP_SPINCOUNT"] = str(SPIN_COUNT)


_configure_runtime()


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


@dataclass(frozen=True)
class BatchKernel:
    """A numba kernel over rows in two builds: ``serial`` and ``parallel`` (``prange``).

    Calling it runs ``parallel`` when argument ``batch_arg`` (an array, batch
    first) has at least ``min_parallel_batch`` rows, else ``serial``; both
    take the same arguments.
    """

    serial: Callable
    parallel: Callable
    min_parallel_batch: int
    batch_arg: int = 0

    def __call__(self, *args):
        if args[self.batch_arg].shape[0] >= self.min_parallel_batch:
            return self.parallel(*args)
        return self.serial(*args)

    def for_batch(self, batch_size: int) -> Callable:
        """The build a batch of ``batch_size`` rows runs (to hoist the choice out of a loop)."""
        return self.parallel if batch_size >= self.min_parallel_batch else self.serial


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
