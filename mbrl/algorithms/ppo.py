"""Proximal Policy Optimisation, clipped surrogate (Schulman et al. 2017, arXiv:1707.06347).

Details as in Stable-Baselines3 and CleanRL ("The 37 implementation details of
PPO", Huang et al. 2022): GAE, minibatch epochs, advantage normalisation per
minibatch, entropy bonus, global gradient clipping, orthogonal init, optional
value clipping, learning-rate annealing and KL early stopping.

    1. initialise policy pi_theta and value V_phi (separate MLPs)
    2. for each iteration:
    3.   run pi_theta for T steps in each of N environments
    4.   compute advantages A_t by GAE(gamma, lambda) with V_phi, and
         returns R_t = A_t + V_phi(s_t)  (time limits bootstrapped with V(final obs))
    5.   for K epochs, for each minibatch of M samples:
    6.     r_t = pi_theta(a_t|s_t) / pi_old(a_t|s_t)
    7.     L_clip = mean(min(r_t A_t, clip(r_t, 1-eps, 1+eps) A_t))
    8.     L_V = mean((V_phi(s_t) - R_t)^2)        (optionally clipped around V_old)
    9.     minimise -L_clip + c_V L_V - c_H H[pi_theta] by Adam, gradients clipped
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mbrl.training.config import EnvFields, OnPolicyFields, RunFields
from mbrl.training.rollout import (
    RolloutBuffer,
    adam,
    check_common_config,
    check_positive,
    explained_variance,
    on_policy_agent,
)

__all__ = ["PPO"]


@dataclass(frozen=True, kw_only=True)
class PPOConfig(OnPolicyFields, RunFields, EnvFields):
    """PPO hyperparameters; defaults are Stable-Baselines3's."""

    learning_rate: float = 3e-4
    """Adam learning rate; 1e-4-3e-3."""
    anneal_lr: bool = False
    """Decay the learning rate linearly to 0 over total_steps (CleanRL's default: on)."""
    batch_size: int = 64
    """Minibatch size M; 32-4096, at most T * N."""
    num_epochs: int = 10
    """Passes K over each rollout; 3-30."""
    clip_range: float = 0.2
    """Clipping epsilon of the probability ratio; 0.1-0.3."""
    clip_range_vf: float | None = None
    """Clip the value prediction to V_old +- this (None: no value clipping)."""
    normalize_advantage: bool = True
    """Normalise advantages per minibatch to mean 0, std 1."""
    ent_coef: float = 0.0
    """Entropy bonus c_H; 0-0.01."""
    vf_coef: float = 0.5
    """Value loss weight c_V; 0.5-1."""
    max_grad_norm: float = 0.5
    """Global gradient norm clip; 0.5-1."""
    target_kl: float | None = None
    """Stop the epochs early when the approximate KL exceeds 1.5 x this (None: never)."""

    def __post_init__(self):
        check_common_config(self)
        check_positive(self, "learning_rate", "clip_range", "batch_size", "num_epochs")
        check_positive(self, "max_grad_norm")
        if self.clip_range_vf is not None:
            check_positive(self, "clip_range_vf")
        if self.target_kl is not None:
            check_positive(self, "target_kl")
        for field in ("ent_coef", "vf_coef"):
            if getattr(self, field) < 0:
                raise ValueError(f"PPOConfig.{field} must be >= 0, got {getattr(self, field)}")
        if self.batch_size > self.num_steps * self.num_envs:
            raise ValueError(
                f"PPOConfig.batch_size ({self.batch_size}) must be <= num_steps * num_envs "
                f"({self.num_steps * self.num_envs})"
            )


@on_policy_agent
class PPO:
    """PPO agent: ``PPO("CartPole-v1", PPO.Config(...)).learn(100_000)``."""

    algo = "ppo"
    Config = PPOConfig

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Step 1's optimiser: Adam on both networks (eps 1e-5 as SB3)."""
        self._params = list(self.policy.parameters())
        self.optimizer = adam(self._params, self.config.learning_rate, eps=1e-5)
        return {"optimizer": self.optimizer}

    def update(self, buffer: RolloutBuffer, progress_remaining: float) -> dict[str, float]:
        """Steps 5-9 on one rollout; returns the loss metrics."""
        config, policy = self.config, self.policy
        lr = config.learning_rate * (progress_remaining if config.anneal_lr else 1.0)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        stop = False
        for _ in range(config.num_epochs):  # step 5
            for batch in buffer.minibatches(config.batch_size, self.loop.rng):
                params = policy.dist_params(batch["obs"])
                log_ratio = policy.log_prob(params, batch["actions"]) - batch["log_probs"]
                ratio = log_ratio.exp()  # step 6
                if config.target_kl is not None:
                    with torch.no_grad():
                        approx_kl = ((ratio - 1) - log_ratio).mean().item()
                    if approx_kl > 1.5 * config.target_kl:
                        stop = True
                        break
                advantages = batch["advantages"]
                if config.normalize_advantage and len(advantages) > 1:
                    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
                clipped = ratio.clamp(1 - config.clip_range, 1 + config.clip_range)
                policy_loss = -torch.min(ratio * advantages, clipped * advantages).mean()  # 7
                value = policy.value(batch["obs"])
                value_loss = (value - batch["returns"]).pow(2)  # step 8
                if config.clip_range_vf is not None:
                    old = batch["values"]
                    value_clipped = old + (value - old).clamp(
                        -config.clip_range_vf, config.clip_range_vf
                    )
                    value_loss = torch.max(value_loss, (value_clipped - batch["returns"]).pow(2))
                value_loss = value_loss.mean()
                entropy = policy.entropy(params).mean()
                loss = policy_loss + config.vf_coef * value_loss - config.ent_coef * entropy  # 9
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self._params, config.max_grad_norm)
                self.optimizer.step()
            if stop:
                break
        return {
            **self._statistics(buffer),
            "losses/policy_loss": policy_loss.item(),
            "losses/value_loss": value_loss.item(),
            "losses/entropy": entropy.item(),
            "charts/learning_rate": lr,
        }

    @torch.no_grad()
    def _statistics(self, buffer: RolloutBuffer) -> dict[str, float]:
        """KL and clip fraction of the updated policy on the rollout, explained variance."""
        data = buffer.flat()
        params = self.policy.dist_params(data["obs"])
        log_ratio = self.policy.log_prob(params, data["actions"]) - data["log_probs"]
        ratio = log_ratio.exp()
        return {
            "losses/approx_kl": ((ratio - 1) - log_ratio).mean().item(),
            "losses/clipfrac": ((ratio - 1).abs() > self.config.clip_range).float().mean().item(),
            "losses/explained_variance": explained_variance(data["returns"], data["values"]),
        }
