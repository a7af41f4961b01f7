"""Shared by the benchmarks: the machine's matrix-multiply rate on given shapes (fp32, or
another dtype such as bfloat16)."""

from __future__ import annotations

import time

import torch

__all__ = ["matmul_rate"]


def matmul_rate(
    shapes, members: int, rows: int, g: torch.Generator, seconds=1.0, dtype=torch.float32
) -> float:
    """FLOP/s of ``torch.matmul`` in ``dtype`` on ``[E, rows, in] x [E, in, out]`` for every
    ``(in, out)`` of ``shapes``, best of 3 windows of ``seconds``."""
    pairs = [
        (
            torch.randn(members, rows, i, generator=g).to(dtype),
            torch.randn(members, i, o, generator=g).to(dtype),
        )
        for i, o in shapes
    ]
    flops = sum(2 * members * rows * i * o for i, o in shapes)
    best = 0.0
    for _ in range(3):
        done, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            for x, w in pairs:
                torch.matmul(x, w)
            done += 1
        best = max(best, done * flops / elapsed)
    return best
