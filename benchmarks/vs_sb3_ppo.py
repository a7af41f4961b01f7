"""On-policy agents on CartPole-v1: sample efficiency, and PPO's speed against Stable-Baselines3.

    # PPO vs SB3 PPO, same hyperparameters (rl-zoo's CartPole set) and networks (64x64 tanh,
    # separate policy and value), one thread each, alternating per seed:
    python benchmarks/vs_sb3_ppo.py speed --seeds 0 1 2 --steps 100000

    # What an agent reaches in a budget (eval every 5k steps, 10 deterministic episodes):
    python benchmarks/vs_sb3_ppo.py learn --algo ppo --seeds 0 1 2 --steps 100000

Speed is environment steps per second of the whole ``learn`` call (rollouts and
updates; our run folder, CSV/TensorBoard rows and checkpoint included). Both
final returns are the mean of 20 deterministic episodes on the same seeds,
measured by the same function. Needs ``pip install stable-baselines3``.

Measured 2026-11-22 (2 shared CPU cores, torch 2.13 CPU, SB3 2.9.2, one thread each):

    speed, 3 seeds x 100k steps: mbrl 6579 steps/s, SB3 4397 steps/s: 1.50x
        (wall and CPU time alike); final returns 500/500/500 for both
        (an earlier run on a busier machine: 1.94x wall, 1.67x CPU time)
    learn ppo:  500/500/500 at 100k; eval >= 475 first at 15k, 40k, 15k steps
    learn trpo: 500/500/500 at 100k (sb3-contrib defaults); >= 475 at 16k, 20k, 20k
    learn vpg:  125.5/173.1/189.4 at 100k (Spinning Up defaults: 25 policy steps in 100k)
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time

import numpy as np
import torch

from mbrl.registry import agent_class
from mbrl.training.envs import evaluate

ENV = "CartPole-v1"
THRESHOLD = 475.0
EVAL_EPISODES = 20

# rl-baselines3-zoo's PPO hyperparameters for CartPole-v1 (clip range kept constant).
PPO_CARTPOLE = dict(
    num_envs=8,
    num_steps=32,
    batch_size=256,
    gae_lambda=0.8,
    gamma=0.98,
    num_epochs=20,
    ent_coef=0.0,
    learning_rate=1e-3,
    anneal_lr=True,
    clip_range=0.2,
)
CARTPOLE = {"ppo": PPO_CARTPOLE, "trpo": {}, "vpg": {}, "a2c": {}}


def run_ours(algo: str, seed: int, steps: int, root: str, eval_every: int) -> dict:
    cls = agent_class(algo)
    eval_episodes = 10 if eval_every else 0
    config = cls.Config(
        env=ENV,
        seed=seed,
        total_steps=steps,
        run_dir=root,
        eval_every=eval_every or 10**12,
        eval_episodes=eval_episodes,
        **CARTPOLE[algo],
    )
    agent = cls(ENV, config)
    start, cpu_start = time.perf_counter(), time.process_time()
    agent.learn(steps)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    returns = evaluate(ENV, agent.predict, EVAL_EPISODES, seed=10_000)
    reached = None
    with (agent.run_dir / "progress.csv").open() as f:
        for row in csv.DictReader(f):
            value = row.get("eval/mean_return", "")
            if value and float(value) >= THRESHOLD:
                reached = int(float(row["global_step"]))
                break
    return {
        "sps": steps / seconds,
        "cpu_sps": steps / cpu_seconds,
        "return": float(returns.mean()),
        "reached": reached,
    }


def run_sb3(seed: int, steps: int) -> dict:
    from stable_baselines3 import PPO as SB3PPO
    from stable_baselines3.common.env_util import make_vec_env

    p = PPO_CARTPOLE
    env = make_vec_env(ENV, n_envs=p["num_envs"], seed=seed)
    model = SB3PPO(
        "MlpPolicy",
        env,
        n_steps=p["num_steps"],
        batch_size=p["batch_size"],
        gae_lambda=p["gae_lambda"],
        gamma=p["gamma"],
        n_epochs=p["num_epochs"],
        ent_coef=p["ent_coef"],
        learning_rate=lambda remaining: p["learning_rate"] * remaining,
        clip_range=p["clip_range"],
        seed=seed,
        device="cpu",
        verbose=0,
    )
    start, cpu_start = time.perf_counter(), time.process_time()
    model.learn(steps)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    returns = evaluate(
        ENV, lambda obs: model.predict(obs, deterministic=True)[0], EVAL_EPISODES, seed=10_000
    )
    return {"sps": steps / seconds, "cpu_sps": steps / cpu_seconds, "return": float(returns.mean())}


def speed(seeds: list[int], steps: int) -> None:
    ours, theirs = [], []
    with tempfile.TemporaryDirectory() as root:
        for seed in seeds:
            ours.append(run_ours("ppo", seed, steps, root, eval_every=0))
            theirs.append(run_sb3(seed, steps))
            for name, r in (("mbrl", ours[-1]), ("sb3 ", theirs[-1])):
                print(
                    f"seed {seed} {name}: {r['sps']:.0f} steps/s wall, {r['cpu_sps']:.0f} "
                    f"steps/s of CPU time, final return {r['return']:.1f}",
                    flush=True,
                )
    print(f"PPO {ENV}, {steps} steps, seeds {seeds} (CPU time: robust to other load)")
    for name, results in (("mbrl", ours), ("sb3 ", theirs)):
        finals = [round(r["return"], 1) for r in results]
        print(
            f"  {name}: {np.mean([r['sps'] for r in results]):.0f} steps/s wall, "
            f"{np.mean([r['cpu_sps'] for r in results]):.0f} steps/s CPU, "
            f"final returns {finals}, mean {np.mean(finals):.1f}"
        )
    for kind in ("sps", "cpu_sps"):
        ratio = np.mean([r[kind] for r in ours]) / np.mean([r[kind] for r in theirs])
        print(f"  speed ratio mbrl / sb3 ({'wall' if kind == 'sps' else 'CPU'}): {ratio:.2f}x")


def learn(algo: str, seeds: list[int], steps: int) -> None:
    results = []
    with tempfile.TemporaryDirectory() as root:
        for seed in seeds:
            result = run_ours(algo, seed, steps, root, eval_every=5_000)
            results.append(result)
            print(
                f"{algo} seed {seed}: final return {result['return']:.1f}, "
                f"eval >= {THRESHOLD:g} first at {result['reached']} steps, "
                f"{result['sps']:.0f} steps/s (with evaluations)",
                flush=True,
            )
    finals = [r["return"] for r in results]
    print(f"{algo} {ENV} {steps} steps: final returns {finals}, mean {np.mean(finals):.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["speed", "learn"])
    parser.add_argument("--algo", default="ppo", choices=["ppo", "trpo", "vpg", "a2c"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=100_000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.mode == "speed":
        speed(args.seeds, args.steps)
    else:
        learn(args.algo, args.seeds, args.steps)


if __name__ == "__main__":
    main()
