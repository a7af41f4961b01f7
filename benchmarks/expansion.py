"""The cost of the model in model-based value expansion: milliseconds per environment
step of TD3 against MVE-TD3 and STEVE-TD3, and of SAC against MVE-SAC, side by side.

Each pair starts from the same state: ``learning_starts`` random steps in the real env
(the variant's ensemble fitted once to them). Then, in alternating chunks, each agent
runs ``chunk`` environment steps of its own loop body (act, step, store, one update:
``gradient_steps = 1``); the best window of each counts. A fit of the ensemble is timed
apart (it runs every ``model_train_every`` steps, so its share of a step is its time
divided by that: one warm-started fit on everything collected, as a run's next fit),
and the step time with the fit's share is the cost a run sees.

    python benchmarks/expansion.py                     # Pendulum-v1, H = 3, one thread
    python benchmarks/expansion.py --env HalfCheetah-v5
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from dataclasses import dataclass

import torch
import tyro

from mbrl.registry import agent_class
from mbrl.training.modelbased import fit_dynamics


@dataclass(frozen=True, kw_only=True)
class Config:
    env: str = "Pendulum-v1"
    """Gymnasium id with a Box action space."""
    pairs: tuple[str, ...] = ("td3:mve-td3", "td3:steve-td3", "sac:mve-sac")
    """plain:variant pairs of registered agents."""
    expansion_horizon: int = 3
    """H of the variants."""
    learning_starts: int = 1_000
    """Random real steps before the timed steps (the variants' first fit is on them)."""
    chunk: int = 50
    """Environment steps of one side before switching to the other."""
    windows: int = 4
    """Timed windows per side; the best counts."""
    threads: int = 1
    """Torch threads (bench cells run on one)."""


def loop_step(agent) -> None:
    """One step of the off-policy loop body (``train_off_policy`` without its logging)."""
    agent.collector.step(agent.act(agent.collector.obs))
    agent.counters["steps"] += 1
    batch = agent.hook.sample(agent.replay, agent.config.batch_size, agent.rng)
    agent.update(batch.to(agent.device))


def timed_steps(agent, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        loop_step(agent)
    return (time.perf_counter() - start) / steps


def main(config: Config) -> None:
    with tempfile.TemporaryDirectory() as runs:
        compare(config, runs)


def compare(config: Config, runs: str) -> None:
    torch.set_num_threads(config.threads)
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, {config.threads} thread(s), {config.env}")  # fmt: skip
    print("| pair | plain ms/step | variant ms/step | ratio | variant fit s | "
          "ms/step with fits | ratio with fits |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for pair in config.pairs:
        plain_name, variant_name = pair.split(":")
        plain_cls, variant_cls = agent_class(plain_name), agent_class(variant_name)
        common = {"learning_starts": config.learning_starts, "eval_episodes": 0,
                  "total_steps": 10**6, "run_dir": runs}  # fmt: skip
        plain = plain_cls(config.env, plain_cls.Config(env=config.env, **common))
        variant = variant_cls(
            config.env,
            variant_cls.Config(
                env=config.env, expansion_horizon=config.expansion_horizon, **common
            ),
        )
        for agent in (plain, variant):  # random steps; the variant's first fit
            for _ in range(config.learning_starts):
                agent.collector.step(agent.collector.random_action())
                agent.counters["steps"] += 1
            loop_step(agent)
        best = {"plain": float("inf"), "variant": float("inf")}
        for _ in range(config.windows):
            best["plain"] = min(best["plain"], timed_steps(plain, config.chunk))
            best["variant"] = min(best["variant"], timed_steps(variant, config.chunk))
        start = time.perf_counter()
        fit_dynamics(variant.hook)
        fit = time.perf_counter() - start
        with_fits = best["variant"] + fit / variant.config.model_train_every
        plain_ms, variant_ms = 1e3 * best["plain"], 1e3 * best["variant"]
        print(
            f"| {plain_name} vs {variant_name} | {plain_ms:.1f} | {variant_ms:.1f} | "
            f"{variant_ms / plain_ms:.1f}x | {fit:.1f} | {1e3 * with_fits:.1f} | "
            f"{1e3 * with_fits / plain_ms:.1f}x |",
            flush=True,
        )


if __name__ == "__main__":
    main(tyro.cli(Config))
