"""Env steps per second: the exact MuJoCo model's batched step against a loop over gymnasium envs.

Both advance B worlds of one gymnasium task by one env step (``frame_skip`` MuJoCo
steps each) on the same random actions:

- ``batched``: :class:`mbrl.games.mujoco.MujocoModel`, one ``step`` over ``[B, S + 1]``
  states (``mujoco.rollout`` in C over the rows, then the observation, reward and
  termination of the batch in numpy); rows that terminate are replaced by fresh starts;
- ``loop``: the peer, a Python loop over B ``gymnasium.make(id)`` envs calling ``step``
  on each and ``reset`` where one ended.

The two alternate in chunks of steps, each timed in several windows; the best window
of each counts, and the ratio is printed.

    python benchmarks/mujoco_model.py                          # HalfCheetah-v5, B=256
    python benchmarks/mujoco_model.py --env-id Hopper-v5 --batch-size 64
    python benchmarks/mujoco_model.py --num-threads 2
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass

import gymnasium as gym
import mujoco
import numpy as np
import torch
import tyro

from mbrl.games.mujoco import MujocoConfig, MujocoModel


@dataclass(frozen=True, kw_only=True)
class Config:
    env_id: str = "HalfCheetah-v5"
    """A task of mbrl.games.mujoco.available()."""
    batch_size: int = 256
    """B, worlds stepped together."""
    num_threads: int = 1
    """Threads of the model's rollout pool."""
    steps_per_chunk: int = 10
    """Env steps of one method before switching to the other."""
    windows: int = 5
    """Timed windows per method; the best counts."""
    chunks_per_window: int = 3
    """Chunks of each method per window."""
    seed: int = 0


def batched_steps(config: Config, actions: np.ndarray):
    model = MujocoModel(MujocoConfig(env_id=config.env_id, num_threads=config.num_threads))
    rng = np.random.default_rng(config.seed)
    state = model.initial_state(config.batch_size, rng)
    actions_t = torch.from_numpy(actions)

    def run(start: int) -> None:
        nonlocal state
        for t in range(start, start + config.steps_per_chunk):
            result = model.step(state, actions_t[t % len(actions)])
            state = result.state
            if result.terminal.any():
                fresh = model.initial_state(config.batch_size, rng)
                state = torch.where(result.terminal[:, None], fresh, state)

    return run


def loop_steps(config: Config, actions: np.ndarray):
    envs = [gym.make(config.env_id) for _ in range(config.batch_size)]
    for i, env in enumerate(envs):
        env.reset(seed=config.seed + i)

    def run(start: int) -> None:
        for t in range(start, start + config.steps_per_chunk):
            action = actions[t % len(actions)]
            for i, env in enumerate(envs):
                _, _, terminated, truncated, _ = env.step(action[i])
                if terminated or truncated:
                    env.reset()

    return run


def main(config: Config) -> None:
    torch.set_num_threads(1)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cpus, mujoco {mujoco.__version__}, "
        f"gymnasium {gym.__version__}; {config.env_id}, B={config.batch_size}, "
        f"{config.num_threads} rollout thread(s)"
    )
    space = gym.make(config.env_id).action_space
    rng = np.random.default_rng(config.seed)
    shape = (64, config.batch_size, *space.shape)
    actions = rng.uniform(space.low, space.high, shape).astype(np.float32)
    runs = {"batched": batched_steps(config, actions), "loop": loop_steps(config, actions)}
    for run in runs.values():  # warm up
        run(0)
    best = dict.fromkeys(runs, 0.0)
    t = 0
    for _ in range(config.windows):
        elapsed = dict.fromkeys(runs, 0.0)
        for _ in range(config.chunks_per_window):
            for name, run in runs.items():
                start = time.perf_counter()
                run(t)
                elapsed[name] += time.perf_counter() - start
            t += config.steps_per_chunk
        done = config.chunks_per_window * config.steps_per_chunk * config.batch_size
        for name in runs:
            best[name] = max(best[name], done / elapsed[name])
    print("| method | env steps/s |")
    print("|---|---|")
    for name, rate in best.items():
        print(f"| {name} | {rate:,.0f} |")
    print(f"batched / loop: {best['batched'] / best['loop']:.2f}x")


if __name__ == "__main__":
    main(tyro.cli(Config))
