"""Random playouts per second: native batched games against OpenSpiel, one run.

Three ways of playing uniformly random games to the end, same game:

- ``native kernel``: the fused numba playout kernel over a batch of games
  (what a random-rollout evaluator uses);
- ``native step``: the public batched ``Model`` interface, one ``step`` call
  per ply for the whole batch, random legal actions drawn in numpy;
- ``openspiel``: a plain Python loop over OpenSpiel (``legal_actions`` /
  ``apply_action`` per ply, one game at a time), the peer.

    python benchmarks/games.py                      # all native games
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


def timed(fn, seconds: float) -> float:
    """Units of work per second: ``fn()`` returns the units it did; run for ``seconds``."""
    fn()  # warm up (numba compilation, caches)
    done, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        done += fn()
    return done / elapsed


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
    rows = []
    for name in config.games:
        game = games.make(name)
        batch = BATCH.get(name, 4096)
        peer = timed(openspiel_loop(name, config.seed), config.seconds)
        kernel = timed(native_kernel(game, batch, rng), config.seconds)
        step = timed(native_step(game, batch // 4, rng), config.seconds)
        rows.append((name, batch, kernel, step, peer))
        print(
            f"{name}: kernel {kernel:,.0f}/s, step {step:,.0f}/s, openspiel {peer:,.0f}/s",
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
            f"| {name} | {batch} | {kernel:,.0f} | {step:,.0f} | {peer:,.0f} | "
            f"{kernel / peer:.0f}x | {step / peer:.1f}x |"
        )


if __name__ == "__main__":
    main(tyro.cli(Config))
