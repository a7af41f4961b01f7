"""Seconds per CEM planning step through a learned ensemble, at PETS's cartpole settings.

One planning step is :meth:`mbrl.planners.trajectory.CEM.plan` for B start states:
5 iterations of N=350 sequences x P=20 particles x H=15 steps through a
:class:`mbrl.models.LearnedModel` over an ensemble of 7 probabilistic 4x200 SiLU
members (5 elites, TS-inf propagation), inputs shaped like continuous cartpole's
(4 observation + 1 action dims), a known reward and termination (as mbrl-lib's PETS
cartpole). The weights are untrained: the cost of a plan does not depend on them.

Printed: the best of several timed plans, the share of it spent in ``model.step``
(the same steps timed alone), the matmul work of the ensemble's forward passes, and
the share of the machine's fp32 matmul rate that work reaches: the rate of
``torch.matmul`` on the same shapes (``[E', C, in] x [E', in, out]``, the elites'
rows grouped per member as ``forward_rows`` does), measured in the same run.

    python benchmarks/trajectory.py                 # B=1, PETS cartpole settings
    python benchmarks/trajectory.py --batch-size 4  # four environments planned at once
"""

from __future__ import annotations

import itertools
import os
import platform
import time
from dataclasses import dataclass
from typing import Literal

import torch
import tyro
from _matmul import matmul_rate

from mbrl.models import Ensemble, EnsembleConfig, LearnedModel, Propagation
from mbrl.planners.trajectory import CEM, CEMConfig


@dataclass(frozen=True, kw_only=True)
class Config:
    batch_size: int = 1
    """B, environments planned for at once."""
    population_size: int = 350
    """N (mbrl-lib's PETS cartpole)."""
    num_elites: int = 35
    """K, a tenth of N."""
    num_particles: int = 20
    """P (PETS)."""
    horizon: int = 15
    """H (mbrl-lib's PETS cartpole)."""
    num_iterations: int = 5
    """CEM iterations (PETS)."""
    num_members: int = 7
    """E, ensemble members."""
    num_elite_members: int = 5
    """Members propagation uses."""
    hidden_sizes: tuple[int, ...] = (200, 200, 200, 200)
    """Hidden widths."""
    obs_dim: int = 4
    """Observation dims (cartpole: 4)."""
    action_dim: int = 1
    """Action dims (cartpole: 1)."""
    precision: Literal["float32", "bfloat16"] = "float32"
    """Arithmetic of the members' products (LearnedModel's compute_dtype)."""
    repeats: int = 5
    """Timed plans; the best counts."""
    threads: int = 1
    """torch threads."""
    seed: int = 0


def cartpole_reward(obs, action, next_obs):
    """A cartpole-like known reward: upright pole at the centre, small actions."""
    return -(next_obs[:, 0] ** 2) - next_obs[:, 2] ** 2 - 0.01 * (action**2).sum(1)


def cartpole_termination(obs, action, next_obs):
    """Cart off the track or pole past 12 degrees (gymnasium's CartPole thresholds)."""
    return (next_obs[:, 0].abs() > 2.4) | (next_obs[:, 2].abs() > 0.2094)


def make_model(config: Config, g: torch.Generator) -> LearnedModel:
    ensemble = Ensemble(
        EnsembleConfig(
            obs_dim=config.obs_dim,
            action_dim=config.action_dim,
            num_members=config.num_members,
            num_elites=config.num_elite_members,
            hidden_sizes=config.hidden_sizes,
            learn_reward=False,
        ),
        generator=g,
    )
    return LearnedModel(
        ensemble,
        propagation=Propagation.TS_INF,
        reward_fn=cartpole_reward,
        termination_fn=cartpole_termination,
        action_low=[-1.0] * config.action_dim,
        action_high=[1.0] * config.action_dim,
        compute_dtype=getattr(torch, config.precision),
    )


def layer_shapes(config: Config, model: LearnedModel) -> list[tuple[int, int]]:
    sizes = [model.ensemble.config.num_inputs, *config.hidden_sizes]
    return list(itertools.pairwise([*sizes, model.ensemble.config.num_outputs]))


def main(config: Config) -> None:
    torch.set_num_threads(config.threads)
    g = torch.Generator().manual_seed(config.seed)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cpus, torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch thread(s)"
    )
    model = make_model(config, g)
    planner = CEM(
        CEMConfig(
            horizon=config.horizon,
            num_particles=config.num_particles,
            population_size=config.population_size,
            num_elites=config.num_elites,
            num_iterations=config.num_iterations,
        )
    )
    obs = 0.05 * torch.randn(config.batch_size, config.obs_dim, generator=g)
    state = model.initial_state(obs)
    # The model steps of one plan alone: iterations x H steps of the same B N P rows.
    rows = config.batch_size * config.population_size * config.num_particles
    particles = model.initial_state(obs, rows // config.batch_size, g)
    actions = torch.rand(rows, config.action_dim, generator=g) * 2 - 1

    def plan() -> None:
        planner.reset()
        planner.plan(model, state, g)

    def steps() -> None:
        for _ in range(config.num_iterations * config.horizon):
            model.step(particles, actions, g)

    plan()  # warm up
    best = {"plan": float("inf"), "steps": float("inf")}
    for _ in range(config.repeats):  # alternated, so both see the same load
        for name, work in (("plan", plan), ("steps", steps)):
            start = time.perf_counter()
            work()
            best[name] = min(best[name], time.perf_counter() - start)
    plan_seconds, step_seconds = best["plan"], best["steps"]
    shapes = layer_shapes(config, model)
    flops = config.num_iterations * config.horizon * rows * sum(2 * i * o for i, o in shapes)
    members = config.num_elite_members
    peak = max(matmul_rate(shapes, members, -(-rows // members), g) for _ in range(2))
    hidden = "x".join(map(str, config.hidden_sizes))
    print(
        f"CEM: B={config.batch_size}, N={config.population_size}, K={config.num_elites}, "
        f"P={config.num_particles}, H={config.horizon}, {config.num_iterations} iterations; "
        f"ensemble E={config.num_members} ({members} elites), {hidden} SiLU, "
        f"inputs {config.obs_dim}+{config.action_dim}, TS-inf"
    )
    print(f"torch.matmul on the layer shapes: {peak / 1e9:.1f} GFLOP/s")
    print("| B | s per plan | model steps alone | matmul work | GFLOP/s | share of matmul rate |")
    print("|---|---|---|---|---|---|")
    print(
        f"| {config.batch_size} | {plan_seconds:.3f} | {step_seconds:.3f} s "
        f"({step_seconds / plan_seconds:.0%}) | {flops / 1e9:.1f} GFLOP | "
        f"{flops / plan_seconds / 1e9:.1f} | {flops / plan_seconds / peak:.0%} |"
    )


if __name__ == "__main__":
    main(tyro.cli(Config))
