"""Random playouts per second: native batched games against OpenSpiel, one run.

Three ways of playing uniformly random games to the end, same game:

- ``native kernel``: the fused numba playout kernel over a batch of games
  (what a random-rollout evaluator uses);
- ``native step``: the public batched ``Model`` interface, one ``step`` call
  per ply for the whole batch, random legal actions drawn in numpy;
- ``openspiel``: a plain Python loop over OpenSpiel (``legal_actions`` /
  ``apply_action`` per ply, one game at a time), the peer.

With ``--busy`` each figure is also measured while a busy-loop process holds
one core (pinned there; the benchmark is not pinned), idle and busy windows
alternating, and the slowdown busy / idle is printed per measurement; then
each native kernel (``step``, ``legal``, ``observe``, ``board``, ``playout``)
is timed alone at a small and a large batch, idle and busy.

    python benchmarks/games.py                      # all native games
    python benchmarks/games.py --busy               # and beside a busy core
    python benchmarks/games.py --games connect_four --seconds 5
"""

from __future__ import annotations

import os
import platform
import random
import time
from dataclasses import dataclass

import numpy as np
import pyspiel
import torch
import tyro
from _busy import BusyCore, seconds_per_call

from mbrl import games

BATCH = {"tic_tac_toe": 65536, "connect_four": 65536, "othello": 16384}


@dataclass(frozen=True, kw_only=True)
class Config:
    games: tuple[str, ...] = ("tic_tac_toe", "connect_four", "othello")
    """Native games to measure."""
    seconds: float = 3.0
    """Time spent on each measurement (after warm-up)."""
    seed: int = 0
    """Seed of the random moves."""
    busy: bool = False
    """Also measure beside a busy-loop process on one core and print busy / idle."""
    kernel_batches: tuple[int, ...] = (64, 16384)
    """Batch sizes of the per-kernel timing under ``--busy``."""


def timed(fn, seconds: float) -> float:
    """Units of work per second: ``fn()`` returns the units it did; run for ``seconds``."""
    fn()  # warm up (numba compilation, caches)
    done, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        done += fn()
    return done / elapsed


def timed_idle_busy(fn, seconds: float, windows: int = 3) -> tuple[float, float]:
    """``(idle, busy)`` units per second, best of ``windows`` alternating windows each."""
    fn()
    best = [0.0, 0.0]
    for _ in range(windows):
        for busy in (0, 1):
            with BusyCore() if busy else _Idle():
                done, start = 0, time.perf_counter()
                while (elapsed := time.perf_counter() - start) < seconds / windows:
                    done += fn()
            best[busy] = max(best[busy], done / elapsed)
    return best[0], best[1]


class _Idle:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


def kernel_cases(game, batch: int, rng: np.random.Generator):
    """``(kernel name, BatchKernel, args)`` for each native kernel on mid-game rows."""
    state = game.initial_state(batch)
    for _ in range(4):  # a few random plies, so the rows are not all the start position
        legal = game.legal_actions(state).numpy()
        actions = (rng.random(legal.shape) * legal).argmax(1)
        state = game.step(state, torch.from_numpy(actions)).state
    states = state.numpy()
    mask = np.empty((batch, game.spec.num_actions), np.bool_)
    game.kernels.legal(states, mask)
    actions = (rng.random(mask.shape) * mask).argmax(1).astype(np.int64)
    seeds = rng.integers(0, 2**63, size=batch, dtype=np.int64).view(np.uint64)
    out = (np.empty_like(states), np.empty(batch, np.float32), np.zeros(batch, np.int8))
    kernels = game.kernels
    yield "step", kernels.step, (states, actions, *out)
    yield "legal", kernels.legal, (states, mask)
    yield "observe", kernels.observe, (states, np.empty((batch, *game.spec.obs_shape), np.float32))
    yield "board", kernels.board, (states, np.empty((batch, *game.spec.board_shape), np.int8))
    yield "playout", kernels.playout, (states, seeds, np.empty(batch, np.float32))


def kernel_slowdowns(name: str, config: Config, rng):
    """Rows ``(game, kernel, B, idle us, busy us)``: each kernel as the game calls it."""
    game = games.make(name)
    rows = []
    for batch in config.kernel_batches:
        cases = list(kernel_cases(game, batch, rng))
        best = {}
        for _ in range(2):
            for busy in (False, True):
                with BusyCore() if busy else _Idle():
                    for kernel, fn, args in cases:
                        us = seconds_per_call(lambda fn=fn, args=args: fn(*args), 0.05) * 1e6
                        key = (kernel, busy)
                        best[key] = min(best.get(key, np.inf), us)
        for kernel, _, _ in cases:
            rows.append((name, kernel, batch, best[(kernel, False)], best[(kernel, True)]))
    return rows


def native_kernel(game, batch: int, rng: np.random.Generator):
    start = game.initial_state(batch)
    return lambda: len(game.random_playouts(start, rng))


def native_step(game, batch: int, rng: np.random.Generator):
    def run() -> int:
        state = game.initial_state(batch)
        while True:
            legal = game.legal_actions(state)
            live = legal.any(1)
            if not live.any():
                return batch
            scores = rng.random(legal.shape, dtype=np.float32) * legal.numpy()
            rows = torch.nonzero(live).flatten()
            actions = torch.from_numpy(scores.argmax(1))[rows]
            state[rows] = game.step(state[rows], actions).state

    return run


def openspiel_loop(name: str, seed: int):
    game = pyspiel.load_game(name)
    rand = random.Random(seed)

    def run() -> int:
        for _ in range(100):
            state = game.new_initial_state()
            while not state.is_terminal():
                state.apply_action(rand.choice(state.legal_actions()))
        return 100

    return run


def main(config: Config) -> None:
    rng = np.random.default_rng(config.seed)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cpus, "
        f"python {platform.python_version()}, "
        f"numba threads {__import__('numba').get_num_threads()}"
    )
    measure = (
        (lambda fn: timed_idle_busy(fn, 2 * config.seconds))
        if config.busy
        else (lambda fn: (timed(fn, config.seconds), None))
    )
    rows = []
    for name in config.games:
        game = games.make(name)
        batch = BATCH.get(name, 4096)
        peer = measure(openspiel_loop(name, config.seed))
        kernel = measure(native_kernel(game, batch, rng))
        step = measure(native_step(game, batch // 4, rng))
        rows.append((name, batch, kernel, step, peer))
        print(
            f"{name}: kernel {kernel[0]:,.0f}/s, step {step[0]:,.0f}/s, openspiel {peer[0]:,.0f}/s",
            flush=True,
        )
    print()
    print(
        "| game | batch | native kernel games/s | native step games/s | OpenSpiel games/s "
        "| kernel / OpenSpiel | step / OpenSpiel |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, batch, kernel, step, peer in rows:
        print(
            f"| {name} | {batch} | {kernel[0]:,.0f} | {step[0]:,.0f} | {peer[0]:,.0f} | "
            f"{kernel[0] / peer[0]:.0f}x | {step[0] / peer[0]:.1f}x |"
        )
    if not config.busy:
        return
    print()
    print("Beside a busy core: slowdown = idle rate / busy rate (above 1 is slower).")
    print()
    print("| game | native kernel | native step | OpenSpiel |")
    print("|---|---|---|---|")
    for name, _, kernel, step, peer in rows:
        cells = " | ".join(f"{idle / busy:.2f}x" for idle, busy in (kernel, step, peer))
        print(f"| {name} | {cells} |")
    print()
    print("| game | kernel | B | idle us/call | busy us/call | busy / idle |")
    print("|---|---|---|---|---|---|")
    for name in config.games:
        for game, kernel, batch, idle, busy in kernel_slowdowns(name, config, rng):
            print(
                f"| {game} | {kernel} | {batch} | {idle:,.1f} | {busy:,.1f} | {busy / idle:.2f}x |"
            )


if __name__ == "__main__":
    main(tyro.cli(Config))
