"""SAC speed and returns against Stable-Baselines3, same process, same hyperparameters.

    python benchmarks/vs_sb3_sac.py --env Pendulum-v1 --steps 10000 --seed 1

Both agents: 256x256 actor and critics, batch 256, Adam 3e-4, buffer 1e6, one
gradient step per environment step, alpha learned from 1.0 with target -dim(A),
`--learning-starts` uniformly random steps, one torch thread, CPU. Speed is
environment steps per second over ``learn`` (acting and updates included; our
final evaluation and checkpoint, timed separately, are subtracted). Returns are
the deterministic policy's mean over the same seeded evaluation episodes.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch

from mbrl.envs import evaluate
from mbrl.sac import SAC


def run_ours(args, run_dir: str) -> tuple[float, float]:
    config = SAC.Config(
        env=args.env,
        total_steps=args.steps,
        seed=args.seed,
        run_dir=run_dir,
        learning_starts=args.learning_starts,
        batch_size=256,
        hidden_sizes=(256, 256),
        eval_every=10 * args.steps,
        eval_episodes=args.eval_episodes,
        checkpoint_every=10 * args.steps,
    )
    agent = SAC(args.env, config)
    start = time.perf_counter()
    agent.learn()
    seconds = time.perf_counter() - start
    start = time.perf_counter()  # learn ends with one evaluation and one checkpoint
    returns = evaluate(args.env, agent.predict, args.eval_episodes, args.seed + 10_000)
    agent.save(agent.checkpoint_path, include_replay=True)
    seconds -= time.perf_counter() - start
    return args.steps / seconds, float(returns.mean())


def run_sb3(args) -> tuple[float, float]:
    import gymnasium as gym
    from stable_baselines3 import SAC as SB3SAC

    model = SB3SAC(
        "MlpPolicy",
        gym.make(args.env),
        learning_rate=3e-4,
        buffer_size=1_000_000,
        learning_starts=args.learning_starts,
        batch_size=256,
        tau=0.005,
        gamma=0.99,
        train_freq=1,
        gradient_steps=1,
        ent_coef="auto",
        policy_kwargs={"net_arch": [256, 256]},
        seed=args.seed,
        device="cpu",
        verbose=0,
    )
    start = time.perf_counter()
    model.learn(args.steps)
    seconds = time.perf_counter() - start

    def act(obs: np.ndarray) -> np.ndarray:
        return model.predict(obs, deterministic=True)[0]

    returns = evaluate(args.env, act, args.eval_episodes, args.seed + 10_000)
    return args.steps / seconds, float(returns.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="Pendulum-v1")
    parser.add_argument("--steps", type=int, default=10_000, help="environment steps per agent")
    parser.add_argument("--learning-starts", type=int, default=1_000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", choices=["ours", "sb3"], default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {}
    if args.only in (None, "ours"):
        with tempfile.TemporaryDirectory() as run_dir:
            results["mbrl"] = run_ours(args, run_dir)
    if args.only in (None, "sb3"):
        results["sb3"] = run_sb3(args)
    print(f"SAC on {args.env}, {args.steps} steps, seed {args.seed}, {args.threads} thread(s)")
    for name, (sps, mean_return) in results.items():
        print(f"  {name:5s} {sps:8.1f} steps/s   eval return {mean_return:9.1f}")
    if len(results) == 2:
        print(f"  ratio mbrl / sb3: {results['mbrl'][0] / results['sb3'][0]:.2f}x")


if __name__ == "__main__":
    main()
