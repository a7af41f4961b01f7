"""Add a learned model to a model-free agent: TD3 on Pendulum-v1, then the same TD3 with
model-based value expansion (MVE) in its critic targets, side by side.

python examples/mve_td3_pendulum.py               # 10k steps each, about 5 minutes on one core
python examples/mve_td3_pendulum.py --steps 2000  # the API only (too short to learn)

The change is three lines: import the hook, make it, pass it as ``model_hook``. The
hook fits its own ensemble to the agent's replay every ``model_train_every`` steps and
is saved in the agent's checkpoints; ``TD3.resume(run, model_hook=MVE(...))`` continues
a run. ``mbrl train mve-td3`` is the same agent from the command line.
"""

import argparse
import tempfile

import torch

from mbrl.algorithms.mve import MVE  # 1. the hook (STEVE: mbrl.algorithms.steve.STEVE)
from mbrl.algorithms.td3 import TD3


def main(steps: int = 10_000, seed: int = 0) -> None:
    torch.set_num_threads(1)  # small MLPs: one thread is about as fast as several
    with tempfile.TemporaryDirectory() as runs:
        config = TD3.Config(env="Pendulum-v1", total_steps=steps, learning_starts=1_000,
                            seed=seed, run_dir=runs)  # fmt: skip
        plain = TD3("Pendulum-v1", config)
        hook = MVE(expansion_horizon=3)  # 2. its settings: horizon, ensemble, fits, TD-k
        expanded = TD3("Pendulum-v1", config, model_hook=hook)  # 3. the model in the targets
        for name, agent in [("TD3", plain), ("MVE-TD3", expanded)]:
            result = agent.learn()
            print(f"{name}: evaluation return after {steps} steps: "
                  f"{result['eval/mean_return']:.1f}")  # fmt: skip
        print(f"imagined steps of MVE-TD3: {hook.counters['imagined_steps']:,}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(args.steps, args.seed)
