"""Training steps per second: the batched ensemble against a loop over member networks.

One training step is forward, backward and an Adam step of an ensemble of E
probabilistic members (Gaussian NLL with PETS's bounded log-variance), each on its
own batch, inputs shaped like HalfCheetah's (17 observation + 6 action dims), targets
the observation delta and the reward:

- ``batched``: :class:`mbrl.models.Ensemble`, one ``baddbmm`` per layer over all
  members (``[E, B, in] x [E, in, out]``);
- ``loop``: the peer, E separate ``nn.Sequential`` member networks of the same sizes,
  the same loss written per member, summed, one Adam over all their parameters.

The two alternate in chunks of steps, each timed in several windows; the best window
of each counts. The ratio is printed, and the share of the machine's fp32 matmul rate
each reaches: the rate of ``torch.matmul`` on the ensemble's own layer shapes
(``[E, B, in] x [E, in, out]``), measured in the same run, against the step's matmul
work (forward 2 B in out per layer and member, backward twice that).

    python benchmarks/ensemble.py                       # E=7, 4x200 SiLU, batch 256
    python benchmarks/ensemble.py --num-members 5 --batch-size 32
"""

from __future__ import annotations

import itertools
import os
import platform
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import tyro
from _matmul import matmul_rate
from torch import nn

from mbrl.models import Ensemble, EnsembleConfig


@dataclass(frozen=True, kw_only=True)
class Config:
    num_members: int = 7
    """E, members (7 in MBPO)."""
    hidden_sizes: tuple[int, ...] = (200, 200, 200, 200)
    """Hidden widths (4x200 in MBPO)."""
    batch_size: int = 256
    """Rows per member per step (256 in MBPO)."""
    obs_dim: int = 17
    """Observation dims (HalfCheetah: 17)."""
    action_dim: int = 6
    """Action dims (HalfCheetah: 6)."""
    steps_per_chunk: int = 20
    """Training steps of one method before switching to the other."""
    windows: int = 6
    """Timed windows per method; the best counts."""
    chunks_per_window: int = 5
    """Chunks of each method per window."""
    threads: int = 1
    """torch threads."""
    seed: int = 0


class LoopMember(nn.Module):
    """One member as a plain network, with PETS's bounded log-variance."""

    def __init__(self, sizes: list[int], num_targets: int):
        super().__init__()
        layers: list[nn.Module] = []
        for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
            layers.append(nn.Linear(fan_in, fan_out))
            if i < len(sizes) - 2:
                layers.append(nn.SiLU())
        self.net = nn.Sequential(*layers)
        self.num_targets = num_targets
        self.max_log_var = nn.Parameter(torch.full((num_targets,), 0.5))
        self.min_log_var = nn.Parameter(torch.full((num_targets,), -10.0))

    def loss(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        k = self.num_targets
        mean, raw = out[:, :k], out[:, k:]
        log_var = self.max_log_var - F.softplus(self.max_log_var - raw)
        log_var = self.min_log_var + F.softplus(log_var - self.min_log_var)
        nll = ((mean - target) ** 2 * torch.exp(-log_var) + log_var).mean()
        return nll + 0.01 * (self.max_log_var.sum() - self.min_log_var.sum())


def batched_step(config: Config, g: torch.Generator):
    ensemble_config = EnsembleConfig(
        obs_dim=config.obs_dim,
        action_dim=config.action_dim,
        num_members=config.num_members,
        num_elites=config.num_members,
        hidden_sizes=config.hidden_sizes,
    )
    ensemble = Ensemble(ensemble_config, generator=g)
    optimizer = torch.optim.Adam(ensemble.parameters(), lr=1e-4, fused=True)
    e, b = config.num_members, config.batch_size
    inputs = torch.randn(e, b, ensemble_config.num_inputs, generator=g)
    targets = torch.randn(e, b, ensemble_config.num_targets, generator=g) * 0.1

    def step() -> None:
        loss = ensemble.loss(inputs, targets).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def loop_step(config: Config, g: torch.Generator):
    num_inputs = config.obs_dim + config.action_dim
    num_targets = config.obs_dim + 1
    sizes = [num_inputs, *config.hidden_sizes, 2 * num_targets]
    members = nn.ModuleList(LoopMember(sizes, num_targets) for _ in range(config.num_members))
    optimizer = torch.optim.Adam(members.parameters(), lr=1e-4, fused=True)
    e, b = config.num_members, config.batch_size
    inputs = torch.randn(e, b, num_inputs, generator=g)
    targets = torch.randn(e, b, num_targets, generator=g) * 0.1

    def step() -> None:
        loss = sum(member.loss(inputs[i], targets[i]) for i, member in enumerate(members))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def layer_shapes(config: Config) -> list[tuple[int, int]]:
    num_inputs = config.obs_dim + config.action_dim
    sizes = [num_inputs, *config.hidden_sizes, 2 * (config.obs_dim + 1)]
    return list(itertools.pairwise(sizes))


def main(config: Config) -> None:
    torch.set_num_threads(config.threads)
    g = torch.Generator().manual_seed(config.seed)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cpus, torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch thread(s)"
    )
    steps = {"batched": batched_step(config, g), "loop": loop_step(config, g)}
    for step in steps.values():  # warm up
        for _ in range(3):
            step()
    best = dict.fromkeys(steps, 0.0)
    for _ in range(config.windows):
        elapsed = dict.fromkeys(steps, 0.0)
        for _ in range(config.chunks_per_window):
            for name, step in steps.items():
                start = time.perf_counter()
                for _ in range(config.steps_per_chunk):
                    step()
                elapsed[name] += time.perf_counter() - start
        done = config.chunks_per_window * config.steps_per_chunk
        for name in steps:
            best[name] = max(best[name], done / elapsed[name])
    peak = matmul_rate(layer_shapes(config), config.num_members, config.batch_size, g)
    # Forward 2 B in out per layer and member; backward (input and weight gradients) twice.
    step_flops = 3 * sum(
        2 * config.num_members * config.batch_size * i * o for i, o in layer_shapes(config)
    )
    hidden = "x".join(map(str, config.hidden_sizes))
    print(
        f"E={config.num_members}, {hidden} SiLU, batch {config.batch_size}, "
        f"inputs {config.obs_dim}+{config.action_dim}"
    )
    print(f"torch.matmul on the layer shapes: {peak / 1e9:.1f} GFLOP/s")
    print("| method | train steps/s | GFLOP/s | share of matmul rate |")
    print("|---|---|---|---|")
    for name, rate in best.items():
        print(
            f"| {name} | {rate:,.1f} | {rate * step_flops / 1e9:.1f} | "
            f"{rate * step_flops / peak:.0%} |"
        )
    print(f"batched / loop: {best['batched'] / best['loop']:.2f}x")


if __name__ == "__main__":
    main(tyro.cli(Config))
