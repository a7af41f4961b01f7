"""Serial or parallel numba kernels, idle and beside a busy core, and which thread runtime.

Every batch kernel of the native games (``step``, ``legal``, ``observe``,
``board``, ``playout``) and of the tree search (``select``,
``expand_and_backup``, ``halving_root_action``) is a
``mbrl.planners.threads.BatchKernel`` with a serial and a ``prange`` build.
This script times both builds over batch sizes B, first on an idle machine
and then with a busy-loop process pinned to one core, and prints per kernel
and B: the two builds' microseconds per call, idle and busy, the build the
kernel's ``min_parallel_batch`` picks, and that build's busy / idle ratio.

Game kernels run on mid-game positions (random play from the start); the
tree kernels are timed inside real searches (connect four, Gumbel root,
uniform evaluator, 32 simulations) with the build forced.

``--compare-runtimes`` repeats a shorter measurement of the parallel builds
once per thread-runtime option, each in a fresh process (the OpenMP settings
are read when numba's runtime loads): GNU OpenMP's default spin, a short
spin, passive waiting, spinning forever, numba's workqueue layer, and one
thread. The chooser's own thread count is left out there: each figure is the
``prange`` build on all threads.

    python benchmarks/kernel_threads.py                      # about two minutes
    python benchmarks/kernel_threads.py --compare-runtimes --window 0.05   # about four
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass

import numba
import numpy as np
import torch
import tyro
from _busy import BusyCore, seconds_per_call

import mbrl.planners._kernels as tree_kernels
from mbrl import games
from mbrl.planners.evaluators import UniformEvaluator
from mbrl.planners.mcts import MCTSConfig, RootPolicy, search
from mbrl.planners.threads import BatchKernel

RUNTIMES = {
    "GNU OpenMP default spin (chosen)": {},
    "short spin (GOMP_SPINCOUNT=10000)": {"GOMP_SPINCOUNT": "10000"},
    "shorter spin (GOMP_SPINCOUNT=1000)": {"GOMP_SPINCOUNT": "1000"},
    "passive (OMP_WAIT_POLICY=passive)": {"OMP_WAIT_POLICY": "passive"},
    "spin forever (OMP_WAIT_POLICY=active)": {"OMP_WAIT_POLICY": "active"},
    "numba workqueue layer": {"NUMBA_THREADING_LAYER": "workqueue"},
    "one thread (NUMBA_NUM_THREADS=1)": {"NUMBA_NUM_THREADS": "1"},
}
TREE_KERNELS = ("select", "expand_and_backup", "halving_root_action")


@dataclass(frozen=True, kw_only=True)
class Config:
    games: tuple[str, ...] = ("tic_tac_toe", "connect_four", "othello")
    """Native games whose kernels are timed."""
    game_batches: tuple[int, ...] = (1, 256, 4096, 65536)
    """Batch sizes of the game kernels (othello's playout stops at 4096)."""
    tree_batches: tuple[int, ...] = (1, 16, 64, 256, 1024)
    """Batch sizes of the tree kernels."""
    window: float = 0.03
    """Seconds per timing window (best of 3 windows per figure)."""
    rounds: int = 2
    """Idle and busy passes alternate this many times; each figure is the best round."""
    compare_runtimes: bool = False
    """Compare the thread-runtime options (one subprocess each) instead."""
    worker: str = ""
    """Internal: run as the subprocess of one runtime option and print JSON."""
    seed: int = 0


# ------------------------------------------------------------ game kernels
def mid_game_positions(game, count: int, rng: np.random.Generator) -> torch.Tensor:
    """``count`` states after a random number of random plies (most of them not over)."""
    state = game.initial_state(count)
    plies = rng.integers(0, game.spec.max_episode_length // 2, size=count)
    for ply in range(int(plies.max())):
        legal = game.legal_actions(state)
        live = legal.any(1) & torch.from_numpy(plies > ply)
        if not live.any():
            break
        scores = rng.random(legal.shape, dtype=np.float32) * legal.numpy()
        rows = torch.nonzero(live).flatten()
        state[rows] = game.step(state[rows], torch.from_numpy(scores.argmax(1))[rows]).state
    return state


def game_cases(name: str, batches, rng):
    """Yield ``(kernel name, B, BatchKernel, args)`` for one game's kernels."""
    game = games.make(name)
    positions = mid_game_positions(game, 4096, rng).numpy()
    kernels = game.kernels
    for B in batches:
        states = np.ascontiguousarray(np.resize(positions, (B, positions.shape[1])))
        mask = np.empty((B, game.spec.num_actions), np.bool_)
        kernels.legal(states, mask)
        legal_or_any = np.where(mask.any(1, keepdims=True), mask, True)
        actions = (rng.random(mask.shape) * legal_or_any).argmax(1).astype(np.int64)
        seeds = rng.integers(0, 2**63, size=B, dtype=np.int64).view(np.uint64)
        yield "legal", B, kernels.legal, (states, mask)
        yield (
            "step",
            B,
            kernels.step,
            (
                states,
                actions,
                np.empty_like(states),
                np.empty(B, np.float32),
                np.zeros(B, np.int8),
            ),
        )
        obs = np.empty((B, *game.spec.obs_shape), np.float32)
        yield "observe", B, kernels.observe, (states, obs)
        yield "board", B, kernels.board, (states, np.empty((B, *game.spec.board_shape), np.int8))
        if name != "othello" or B <= 4096:
            yield "playout", B, kernels.playout, (states, seeds, np.empty(B, np.float32))


def time_game_kernel(kernel: BatchKernel, args, window: float) -> dict[str, float]:
    builds = {"serial": kernel.serial, "parallel": kernel.parallel, "auto": kernel}
    return {
        build: seconds_per_call(lambda fn=fn: fn(*args), window) * 1e6
        for build, fn in builds.items()
    }


# ------------------------------------------------------------ tree kernels
class _Timer:
    def __init__(self, fn):
        self.fn, self.seconds, self.calls = fn, 0.0, 0

    def __call__(self, *args):
        start = time.perf_counter()
        out = self.fn(*args)
        self.seconds += time.perf_counter() - start
        self.calls += 1
        return out


def time_tree_kernels(B: int, build: str, window: float) -> dict[str, float]:
    """Microseconds per call of each tree kernel inside searches, ``build`` forced
    (``"auto"``: as the search runs it, the kernel's own choice)."""
    game = games.make("connect_four")
    evaluator = UniformEvaluator(game)
    config = MCTSConfig(num_simulations=32, root_policy=RootPolicy.GUMBEL)
    root = game.initial_state(B)
    rng = np.random.default_rng(0)
    originals = {name: getattr(tree_kernels, name) for name in TREE_KERNELS}
    best = dict.fromkeys(TREE_KERNELS, float("inf"))
    try:
        search(game, evaluator, root, config, rng)  # warm up both builds' compilation
        for _ in range(3):
            timers = {}
            for name, kernel in originals.items():
                timers[name] = _Timer(
                    kernel.for_batch(B) if build == "auto" else getattr(kernel, build)
                )
                forced = BatchKernel(timers[name], timers[name], 0, kernel.batch_arg)
                setattr(tree_kernels, name, forced)
            start = time.perf_counter()
            while time.perf_counter() - start < window:
                search(game, evaluator, root, config, rng)
            for name, timer in timers.items():
                best[name] = min(best[name], timer.seconds / timer.calls * 1e6)
    finally:
        for name, kernel in originals.items():
            setattr(tree_kernels, name, kernel)
    return best


# ---------------------------------------------------------------- passes
def measure(config: Config, busy: bool, rng, only=None) -> dict[tuple, dict[str, float]]:
    """``{(group, kernel, B): {"serial": us, "parallel": us}}``, idle or beside a busy core.

    ``only``: a set of such keys to measure (default all).
    """
    out: dict[tuple, dict[str, float]] = {}
    with BusyCore() if busy else _nothing():
        for name in config.games:
            for kernel_name, B, kernel, args in game_cases(name, config.game_batches, rng):
                if only is None or (name, kernel_name, B) in only:
                    out[(name, kernel_name, B)] = time_game_kernel(kernel, args, config.window)
        for B in config.tree_batches:
            if only is not None and not any(k[0] == "mcts" and k[2] == B for k in only):
                continue
            times = {build: time_tree_kernels(B, build, config.window * 4) for build in BUILDS}
            for kernel_name in TREE_KERNELS:
                out[("mcts", kernel_name, B)] = {b: times[b][kernel_name] for b in BUILDS}
    return out


BUILDS = ("serial", "parallel", "auto")


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


def best_of_rounds(config: Config, rng, only=None):
    """Idle and busy passes, alternated ``config.rounds`` times; the best figure of each."""
    idle: dict = {}
    busy: dict = {}
    for _ in range(config.rounds):
        for side, busy_core in ((idle, False), (busy, True)):
            for key, times in measure(config, busy_core, rng, only).items():
                old = side.setdefault(key, times)
                side[key] = {b: min(old[b], times[b]) for b in BUILDS}
    return idle, busy


def min_parallel_batch(group: str, kernel: str) -> int:
    if group == "mcts":
        return getattr(tree_kernels, kernel).min_parallel_batch
    return getattr(games.make(group).kernels, kernel).min_parallel_batch


def report(idle, busy) -> None:
    """One row per kernel and B: microseconds per call of each build, idle / busy."""
    print(
        "| kernel | B | parallel from B | serial idle / busy us | parallel idle / busy us "
        "| as called idle / busy us | as called busy / idle |"
    )
    print("|---|---|---|---|---|---|---|")
    worst = {}
    for (group, kernel, B), times in idle.items():
        b = busy[(group, kernel, B)]
        ratio = b["auto"] / times["auto"]
        label = f"{group} {kernel}"
        worst[label] = max(worst.get(label, 0.0), ratio)
        cells = " | ".join(f"{times[k]:,.1f} / {b[k]:,.1f}" for k in BUILDS)
        print(f"| {label} | {B} | {min_parallel_batch(group, kernel):,} | {cells} | {ratio:.2f}x |")
    print()
    print("| kernel | worst busy / idle over B, as called |")
    print("|---|---|")
    for label, ratio in worst.items():
        print(f"| {label} | {ratio:.2f}x |")


# --------------------------------------------------------- runtime options
RUNTIME_CASES = {
    ("tic_tac_toe", "step", 65536),
    ("connect_four", "legal", 65536),
    ("connect_four", "observe", 4096),
    ("connect_four", "playout", 256),
    ("connect_four", "playout", 4096),
    ("othello", "playout", 256),
    ("mcts", "select", 256),
    ("mcts", "expand_and_backup", 256),
    ("mcts", "select", 1024),
}


def worker(config: Config) -> None:
    rng = np.random.default_rng(config.seed)
    small = dataclasses.replace(config, game_batches=(256, 4096, 65536), tree_batches=(256, 1024))
    idle, busy = best_of_rounds(small, rng, RUNTIME_CASES)
    rows = [
        {"case": list(key), "idle": idle[key], "busy": busy[key]}
        for key in idle
        if key in RUNTIME_CASES
    ]
    layer = numba.threading_layer() if numba.config.NUMBA_NUM_THREADS > 1 else "none"
    print(json.dumps({"layer": layer, "threads": numba.get_num_threads(), "rows": rows}))


def compare_runtimes(config: Config) -> None:
    results = {}
    for label, env in RUNTIMES.items():
        child_env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY", "NUMBA_THREADING_LAYER")
        }
        child_env.update(env)
        command = [sys.executable, __file__, "--worker", label, "--window", str(config.window)]
        command += ["--rounds", str(config.rounds)]
        done = subprocess.run(command, env=child_env, capture_output=True, text=True, check=True)
        results[label] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{label}: done ({results[label]['layer']} layer)", flush=True)
    print()
    cases = [tuple(row["case"]) for row in next(iter(results.values()))["rows"]]
    serial = {tuple(r["case"]): r["idle"]["serial"] for r in results[next(iter(RUNTIMES))]["rows"]}
    print(
        "Parallel build, microseconds per call idle / beside a busy core (x: busy / idle); "
        "serial idle for reference."
    )
    print()
    print("| kernel | B | serial idle | " + " | ".join(RUNTIMES) + " |")
    print("|---|---|---|" + "---|" * len(RUNTIMES))
    for case in cases:
        cells = []
        for label in RUNTIMES:
            row = next(r for r in results[label]["rows"] if tuple(r["case"]) == case)
            idle, busy = row["idle"]["parallel"], row["busy"]["parallel"]
            cells.append(f"{idle:,.0f} / {busy:,.0f} ({busy / idle:.1f}x)")
        print(f"| {case[0]} {case[1]} | {case[2]} | {serial[case]:,.0f} | " + " | ".join(cells))


def main(config: Config) -> None:
    torch.set_num_threads(1)
    if config.worker:
        worker(config)
        return
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cpus, python "
        f"{platform.python_version()}, numba {numba.__version__} "
        f"({numba.get_num_threads()} threads), load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    if config.compare_runtimes:
        compare_runtimes(config)
        return
    idle, busy = best_of_rounds(config, np.random.default_rng(config.seed))
    print(f"threading layer: {numba.threading_layer()}")
    print()
    report(idle, busy)


if __name__ == "__main__":
    main(tyro.cli(Config))
