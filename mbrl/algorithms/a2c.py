"""Advantage Actor-Critic, the synchronous variant of A3C (Mnih et al. 2016, arXiv:1602.01783).

Defaults are Stable-Baselines3's A2C: 5-step rollouts, one RMSprop step per
rollout (alpha 0.99, eps 1e-5), n-step returns (GAE with lambda = 1), value
loss weight 0.5, gradient norm clipped at 0.5, no advantage normalisation.

    1. initialise policy pi_theta and value V_phi (separate MLPs, one optimiser)
    2. for each iteration:
    3.   run pi_theta for T steps (T = 5) in each of N environments
    4.   R_t = sum_{k<T-t} gamma^k r_{t+k} + gamma^{T-t} V_phi(s_T)  (n-step return;
         zero past an episode end, V(final obs) at a time limit); A_t = R_t - V_phi(s_t)
    5.   L = -mean(A_t log pi_theta(a_t|s_t)) + c_V mean((V_phi(s_t) - R_t)^2)
             - c_H mean(H[pi_theta(.|s_t)])
    6.   one RMSprop step on L with the gradient norm clipped
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mbrl.training.config import EnvFields, OnPolicyFields, RunFields
from mbrl.training.rollout import (
    RolloutBuffer,
    check_common_config,
    check_positive,
    explained_variance,
    on_policy_agent,
)

__all__ = ["A2C"]


@dataclass(frozen=True, kw_only=True)
class A2CConfig(OnPolicyFields, RunFields, EnvFields):
    """A2C hyperparameters; defaults are Stable-Baselines3's (num_envs as rl-zoo's CartPole)."""

    num_envs: int = 8
    """Environments stepped in parallel (N; SB3: 8 for Atari, 1-16)."""
    num_steps: int = 5
    """Steps per environment per update (T; the paper's t_max = 5)."""
    gae_lambda: float = 1.0
    """GAE lambda; 1 gives the n-step returns of the paper."""
    learning_rate: float = 7e-4
    """RMSprop learning rate; 1e-4-1e-3."""
    anneal_lr: bool = False
    """Decay the learning rate linearly to 0 over total_steps."""
    rms_prop_alpha: float = 0.99
    """RMSprop smoothing constant."""
    rms_prop_eps: float = 1e-5
    """RMSprop epsilon (1e-5 as SB3, for stability)."""
    normalize_advantage: bool = False
    """Normalise advantages of each rollout to mean 0, std 1."""
    ent_coef: float = 0.0
    """Entropy bonus c_H; 0-0.01."""
    vf_coef: float = 0.5
    """Value loss weight c_V; 0.25-1."""
    max_grad_norm: float = 0.5
    """Global gradient norm clip; 0.5-1."""

    def __post_init__(self):
        check_common_config(self)
        check_positive(self, "learning_rate", "rms_prop_eps", "max_grad_norm")
        if not 0 <= self.rms_prop_alpha < 1:
            raise ValueError(
                f"A2CConfig.rms_prop_alpha must be in [0, 1), got {self.rms_prop_alpha}"
            )
        for field in ("ent_coef", "vf_coef"):
            if getattr(self, field) < 0:
                raise ValueError(f"A2CConfig.{field} must be >= 0, got {getattr(self, field)}")


@on_policy_agent
class A2C:
    """A2C agent: ``A2C("CartPole-v1", A2C.Config(...)).learn(100_000)``."""

    algo = "a2c"
    Config = A2CConfig

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Step 1's optimiser: RMSprop on both networks (as the paper and SB3)."""
        config = self.config
        self.optimizer = torch.optim.RMSprop(
            self.policy.parameters(),
            lr=config.learning_rate,
            alpha=config.rms_prop_alpha,
            eps=config.rms_prop_eps,
            foreach=True,
        )
        return {"optimizer": self.optimizer}

    def update(self, buffer: RolloutBuffer, progress_remaining: float) -> dict[str, float]:
        """Steps 5-6 on one rollout; returns the loss metrics."""
        config, policy = self.config, self.policy
        lr = config.learning_rate * (progress_remaining if config.anneal_lr else 1.0)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        data = buffer.flat()
        advantages = data["advantages"]
        if config.normalize_advantage and len(advantages) > 1:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        params = policy.dist_params(data["obs"])
        policy_loss = -(advantages * policy.log_prob(params, data["actions"])).mean()  # step 5
        value_loss = (policy.value(data["obs"]) - data["returns"]).pow(2).mean()
        entropy = policy.entropy(params).mean()
        loss = policy_loss + config.vf_coef * value_loss - config.ent_coef * entropy
        self.optimizer.zero_grad(set_to_none=True)  # step 6
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), config.max_grad_norm)
        self.optimizer.step()
        return {
            "losses/policy_loss": policy_loss.item(),
            "losses/value_loss": value_loss.item(),
            "losses/entropy": entropy.item(),
            "losses/explained_variance": explained_variance(data["returns"], data["values"]),
            "charts/learning_rate": lr,
        }
