"""Model-based policy optimisation (MBPO).

Janner, Fu, Zhang, Levine (2019), "When to Trust Your Model: Model-Based Policy
Optimization", NeurIPS. The project's own :class:`~mbrl.algorithms.sac.SAC`, unchanged,
learns from short branched rollouts of a probabilistic ensemble: the model's part is
the hook :class:`~mbrl.training.dyna.BranchedRollouts`, so this file holds no second
SAC. Defaults follow the paper's configs: 7 members of 4x200 SiLU with 5 elites, a fit
every 250 real steps, 100k rollouts from real states per fit, one epoch of rollouts
retained, 5% real data in each minibatch, G = 20 SAC updates per real step.

    1. initialise the SAC agent, the ensemble p_theta, the real replay D_env and the
       model buffer D_model; act uniformly at random for learning_starts steps
    2. for each environment step:
    3.   every model_train_every steps: fit p_theta to D_env; k from the rollout
         schedule; from rollout_batch_size states drawn from D_env, roll the
         stochastic policy k steps in p_theta (a random elite each step), stopping at
         predicted terminals; add the transitions to D_model
    4.   a ~ pi(.|s); step the env; add the transition to D_env
    5.   G times: a SAC update on a minibatch of real_ratio D_env and the rest D_model
    6.   every eval_every steps: evaluate the deterministic policy in the real env

The progress log carries the imagined-step count beside the real one, the rollout
length, the fit's held-out score, and the seconds spent fitting, imagining and
updating the policy.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from torch import Tensor

from mbrl.algorithms.sac import SAC, SACConfig
from mbrl.training.dyna import BranchedRollouts, BranchFields, validate_branch_fields
from mbrl.training.offpolicy import check_continuous_env
from mbrl.training.replay import Batch

__all__ = ["MBPO", "MBPOConfig"]


@dataclass(frozen=True, kw_only=True)
class MBPOConfig(SACConfig, BranchFields):
    """MBPO (defaults: Janner et al. 2019's configs; SAC's own defaults otherwise)."""

    env: str = "Pendulum-v1"
    """Gymnasium id with flat Box observations and a Box action space."""
    total_steps: int = 100_000
    """Real environment steps to train for; MBPO learns in tens of thousands."""
    learning_starts: int = 5_000
    """Uniformly random steps before the first fit and SAC update (MBPO's initial
    exploration)."""
    gradient_steps: int = 20
    """G, SAC updates per real step (20 in the paper, 40 for HalfCheetah)."""
    eval_every: int = 1_000
    """Real steps between evaluations (one epoch)."""

    def __post_init__(self):
        super().__post_init__()
        validate_branch_fields(self)


class MBPO(SAC):
    """SAC on branched model rollouts (the surface of :class:`mbrl.Agent`)."""

    algo = "mbpo"
    Config = MBPOConfig
    FORMAT = "mbrl.mbpo/1"
    step_cost = 2_000.0

    def __init__(
        self,
        env: str,
        config: MBPOConfig | None = None,
        *,
        run_dir: str | Path | None = None,
        console: Console | None = None,
    ):
        obs_space, action_space = check_continuous_env(env, "MBPO")
        if len(obs_space.shape) != 1:
            raise ValueError(f"MBPO needs flat observations; {env} has {obs_space}")
        config = MBPOConfig(env=env) if config is None else dataclasses.replace(config, env=env)
        hook = BranchedRollouts(
            config, obs_space.shape[0], action_space, torch.device(config.device)
        )
        super().__init__(env, config, run_dir=run_dir, console=console, model_hook=hook)
        hook.console = self.console
        hook.bind(self.replay, self.rollout_policy)

    @torch.no_grad()
    def rollout_policy(self, obs: Tensor, generator: torch.Generator) -> Tensor:
        """The exploring policy's actions ``[B, A]`` in imagined states ``[B, D]``."""
        return self.actor(obs, generator)[0]

    def update(self, batch: Batch) -> dict[str, Any]:
        """One SAC update (step 5), timed; the row also carries the hook's metrics."""
        start = time.perf_counter()
        metrics = super().update(batch)
        seconds = self.hook.seconds
        seconds["policy"] += time.perf_counter() - start
        return metrics | self.hook.metrics() | {"time/policy_seconds": seconds["policy"]}
