"""SAC speed and returns against Stable-Baselines3, same process, same hyperparameters.

    python benchmarks/vs_sb3_sac.py --env Pendulum-v1 --steps 10000 --seed 1
    python benchmarks/vs_sb3_sac.py --update-costs     # ms per update, and the matmul floor

Both agents: 256x256 actor and critics, batch 256, Adam 3e-4, buffer 1e6, one
gradient step per environment step, alpha learned from 1.0 with target -dim(A),
`--learning-starts` uniformly random steps, one torch thread, CPU. Speed is
environment steps per second over ``learn`` (acting and updates included; our
evaluations and checkpoints, timed separately, are subtracted). The two agents
learn in alternating chunks of ``--chunk`` steps, so that on a shared machine
both see the same load. Returns are the deterministic policy's mean over the
same seeded evaluation episodes.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch

from mbrl.algorithms.sac import SAC
from mbrl.training.envs import evaluate


class Timed:
    """Wall time of the calls to ``fn`` (our evaluations and checkpoints, left out of SPS)."""

    def __init__(self, fn):
        self.fn, self.seconds = fn, 0.0

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start


def make_ours(args, run_dir: str) -> SAC:
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
    agent.evaluate = Timed(agent.evaluate)  # learn() evaluates and checkpoints when it returns
    agent.checkpoint = Timed(agent.checkpoint)
    return agent


def make_sb3(args):
    import gymnasium as gym
    from stable_baselines3 import SAC as SB3SAC

    return SB3SAC(
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


def race(args, run_dir: str) -> dict[str, tuple[float, float]]:
    """Both agents learn in alternating chunks of ``--chunk`` steps, so that both see the
    same load on a shared machine; returns (steps per second, eval return) of each."""
    ours, sb3 = make_ours(args, run_dir), make_sb3(args)
    seconds = {"mbrl": 0.0, "sb3": 0.0}
    done = 0
    while done < args.steps:
        done = min(done + args.chunk, args.steps)
        start = time.perf_counter()
        ours.learn(done)
        seconds["mbrl"] += time.perf_counter() - start
        start = time.perf_counter()
        sb3.learn(done - sb3.num_timesteps, reset_num_timesteps=False)
        seconds["sb3"] += time.perf_counter() - start
    seconds["mbrl"] -= ours.evaluate.seconds + ours.checkpoint.seconds

    def act_sb3(obs: np.ndarray) -> np.ndarray:
        return sb3.predict(obs, deterministic=True)[0]

    results = {}
    for name, act in [("mbrl", ours.predict), ("sb3", act_sb3)]:
        returns = evaluate(args.env, act, args.eval_episodes, args.seed + 10_000)
        results[name] = (args.steps / seconds[name], float(returns.mean()))
    return results


def update_costs(args, run_dir: str, repeats: int = 300) -> None:
    """Milliseconds per gradient update (no env steps) of both agents on the same kind
    of minibatch, and the floor: the update's 15 products of 256x256x256 alone."""
    import statistics

    from mbrl.training.replay import Batch

    ours, sb3 = make_ours(args, run_dir), make_sb3(args)
    sb3.learn(args.learning_starts + 300)  # fills SB3's replay buffer, builds its logger
    obs_dim, action_dim = ours.obs_shape[0], ours.actor.scale.action_scale.numel()
    batch = Batch(
        torch.randn(256, obs_dim),
        torch.rand(256, action_dim) * 2 - 1,
        torch.randn(256),
        torch.randn(256, obs_dim),
        torch.zeros(256),
    )
    left, right = torch.randn(256, 256), torch.randn(256, 256)

    def floor() -> None:
        for _ in range(15):
            left @ right

    runs = {
        "mbrl": lambda: [ours.update(batch) for _ in range(repeats)],
        "sb3": lambda: sb3.train(gradient_steps=repeats, batch_size=256),
        "floor": lambda: [floor() for _ in range(repeats)],
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(5):  # interleaved, median of 5
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append((time.perf_counter() - start) / repeats * 1e3)
    ms = {name: statistics.median(values) for name, values in times.items()}
    print(f"SAC update on {args.env}, batch 256, 256x256, {args.threads} thread(s), ms/update:")
    for name, value in ms.items():
        print(f"  {name:5s} {value:6.2f}")
    print(f"  ratio sb3 / mbrl: {ms['sb3'] / ms['mbrl']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="Pendulum-v1")
    parser.add_argument("--steps", type=int, default=10_000, help="environment steps per agent")
    parser.add_argument("--learning-starts", type=int, default=1_000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--chunk", type=int, default=500, help="steps per turn of each agent")
    parser.add_argument(
        "--update-costs", action="store_true", help="time the gradient updates alone instead"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as run_dir:
        if args.update_costs:
            update_costs(args, run_dir)
            return
        results = race(args, run_dir)
    print(f"SAC on {args.env}, {args.steps} steps, seed {args.seed}, {args.threads} thread(s)")
    for name, (sps, mean_return) in results.items():
        print(f"  {name:5s} {sps:8.1f} steps/s   eval return {mean_return:9.1f}")
    print(f"  ratio mbrl / sb3: {results['mbrl'][0] / results['sb3'][0]:.2f}x")


if __name__ == "__main__":
    main()
