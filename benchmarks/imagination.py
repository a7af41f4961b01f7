"""Imagined environment steps per second of the ``VectorEnv`` view of a learned ensemble,
against the machine's fp32 matrix-multiply rate on the same products.

The view is :class:`mbrl.models.ModelVectorEnv` over a :class:`mbrl.models.LearnedModel`
of E members (TS1: a random elite per row and step, learned reward head), stepped with
numpy actions as an agent steps it (MBPO's branched rollouts, ME-TRPO's and MB-MPO's
imagined episodes). Beside it, in alternating chunks, the members' bare forward on the
same number of rows (``Ensemble.forward_rows``, one member per row: the model's share of
a step). The limit is ``torch.matmul`` on the layer shapes, ``[E, B / E, in] x
[E, in, out]``, measured in the same run; a step's matmul work is ``2 B in out`` per
layer (each row through one member). Best window of each counts.

    python benchmarks/imagination.py                          # MBPO's 5 x 4x200 SiLU
    python benchmarks/imagination.py --hidden-sizes 1024 1024 --deterministic   # ME-TRPO's
"""

from __future__ import annotations

import itertools
import os
import platform
import time
from dataclasses import dataclass

import numpy as np
import torch
import tyro
from _matmul import matmul_rate

from mbrl.models import (
    Ensemble,
    EnsembleConfig,
    EnsembleKind,
    LearnedModel,
    ModelVectorEnv,
    Propagation,
    VectorEnvConfig,
    observation_starts,
)


@dataclass(frozen=True, kw_only=True)
class Config:
    batch_sizes: tuple[int, ...] = (1_000, 3_000, 10_000)
    """B, imagined environments stepped together."""
    num_members: int = 5
    """E, members (all of them elites)."""
    hidden_sizes: tuple[int, ...] = (200, 200, 200, 200)
    """Hidden widths (4x200 SiLU in MBPO; ME-TRPO: 2x1024 ReLU)."""
    deterministic: bool = False
    """Deterministic members (ME-TRPO, MB-MPO); default probabilistic (MBPO)."""
    obs_dim: int = 17
    """Observation dims (HalfCheetah: 17)."""
    action_dim: int = 6
    """Action dims (HalfCheetah: 6)."""
    steps_per_chunk: int = 5
    """Steps of one side before switching to the other."""
    windows: int = 4
    """Timed windows per side; the best counts."""
    chunks_per_window: int = 3
    threads: int = 1
    """torch threads."""
    seed: int = 0


def layer_shapes(config: Config, ensemble: Ensemble) -> list[tuple[int, int]]:
    sizes = [ensemble.config.num_inputs, *config.hidden_sizes, ensemble.weights[-1].shape[-1]]
    return list(itertools.pairwise(sizes))


def main(config: Config) -> None:
    torch.set_num_threads(config.threads)
    g = torch.Generator().manual_seed(config.seed)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cpus, torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch thread(s)"
    )
    kind = EnsembleKind.DETERMINISTIC if config.deterministic else EnsembleKind.PROBABILISTIC
    ensemble = Ensemble(
        EnsembleConfig(
            obs_dim=config.obs_dim,
            action_dim=config.action_dim,
            kind=kind,
            num_members=config.num_members,
            num_elites=config.num_members,
            hidden_sizes=config.hidden_sizes,
        ),
        generator=g,
    )
    low, high = -np.ones(config.action_dim), np.ones(config.action_dim)
    model = LearnedModel(ensemble, propagation=Propagation.TS1, action_low=low, action_high=high)
    shapes = layer_shapes(config, ensemble)
    hidden = "x".join(map(str, config.hidden_sizes))
    print(f"E={config.num_members}, {hidden} {kind.value}, inputs "
          f"{config.obs_dim}+{config.action_dim}, TS1")  # fmt: skip
    print("| B | VectorEnv steps/s | imagined env-steps/s | bare forward env-steps/s | "
          "matmul GFLOP/s | VectorEnv share | forward share |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for b in config.batch_sizes:
        best = best_rates(config, ensemble, model, b, g)
        rows = -(-b // config.num_members)
        peak = matmul_rate(shapes, config.num_members, rows, g, seconds=0.5)
        flops = sum(2 * b * i * o for i, o in shapes)  # per step of the B envs
        view, forward = best["view"] * b, best["forward"] * b
        print(
            f"| {b:,} | {best['view']:,.1f} | {view:,.0f} | {forward:,.0f} | "
            f"{peak / 1e9:.1f} | {best['view'] * flops / peak:.0%} | "
            f"{best['forward'] * flops / peak:.0%} |"
        )


def best_rates(config: Config, ensemble: Ensemble, model: LearnedModel, b: int, g):
    """Steps/s of the view and of the bare forward at batch ``b``, best window each."""
    starts = torch.randn(4 * b, config.obs_dim, generator=g)
    env = ModelVectorEnv(
        model,
        starts,
        start_state=observation_starts(model),
        config=VectorEnvConfig(num_envs=b, horizon=1_000_000),
    )
    env.reset(seed=config.seed)
    rng = np.random.default_rng(config.seed)
    actions = rng.uniform(-1, 1, (b, config.action_dim)).astype(np.float32)
    inputs = ensemble.features(starts[:b], torch.as_tensor(actions))
    member = torch.randint(config.num_members, (b,), generator=g)

    def view_step() -> None:
        env.step(actions)

    @torch.no_grad()
    def forward_step() -> None:
        ensemble.forward_rows(inputs, member)

    sides = {"view": view_step, "forward": forward_step}
    for step in sides.values():
        step()
    best = dict.fromkeys(sides, 0.0)
    for _ in range(config.windows):
        elapsed = dict.fromkeys(sides, 0.0)
        for _ in range(config.chunks_per_window):
            for name, step in sides.items():
                start = time.perf_counter()
                for _ in range(config.steps_per_chunk):
                    step()
                elapsed[name] += time.perf_counter() - start
        done = config.chunks_per_window * config.steps_per_chunk
        for name in sides:
            best[name] = max(best[name], done / elapsed[name])
    env.close()
    return best


if __name__ == "__main__":
    main(tyro.cli(Config))
