"""MVE's TD-k trick on and off (the authors' ``drop_tdk`` ablation) on the tests' point
mass: MVE-TD3 with the learning test's settings, the return of 5 evaluation episodes
after 1,500 steps, per seed, beside the PD controller's and doing nothing's.

    python benchmarks/td_k_pointmass.py                   # seeds 0-5, one thread
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import tyro

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mbrl.algorithms.mve import MVETD3
from mbrl.training.envs import evaluate
from tests.agents.pointmass import ENV_ID, pd_action
from tests.agents.test_expansion import SMALL


@dataclass(frozen=True, kw_only=True)
class Config:
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4, 5)
    total_steps: int = 1_500
    episodes: int = 5
    threads: int = 1


def main(config: Config) -> None:
    torch.set_num_threads(config.threads)
    starts = 10_000  # the learning test's evaluation seeds
    reference = evaluate(ENV_ID, pd_action, config.episodes, starts).mean()
    idle = evaluate(ENV_ID, lambda obs: np.zeros((1, 1)), config.episodes, starts).mean()
    print(f"PD controller {reference:.2f}, doing nothing {idle:.2f}")
    print("| td_k | " + " | ".join(f"seed {s}" for s in config.seeds) + " | mean |")
    print("|---" * (len(config.seeds) + 2) + "|")
    for td_k in (True, False):
        returns = []
        for seed in config.seeds:
            with tempfile.TemporaryDirectory() as run_dir:
                fields = SMALL | dict(env=ENV_ID, total_steps=config.total_steps, seed=seed,
                                      gradient_steps=2, td_k=td_k, run_dir=run_dir)  # fmt: skip
                agent = MVETD3(ENV_ID, MVETD3.Config(**fields))
                agent.learn()
                agent.config = dataclasses.replace(agent.config, eval_episodes=config.episodes)
                returns.append(agent.evaluate()["eval/mean_return"])
        cells = " | ".join(f"{r:.2f}" for r in returns)
        print(f"| {td_k} | {cells} | {np.mean(returns):.2f} |", flush=True)


if __name__ == "__main__":
    main(tyro.cli(Config))
