"""Vanilla Policy Gradient with a learned baseline (Williams 1992; Sutton et al. 2000).

As in Spinning Up's VPG (Achiam 2018, "vpg" pseudocode): GAE-lambda
advantages (Schulman et al. 2016), one policy-gradient step per epoch, and a
separate value function regressed onto rewards-to-go with several steps.

    1. initialise policy pi_theta and value V_phi
    2. for each epoch:
    3.   collect trajectories D by running pi_theta (T steps in each of N environments)
    4.   rewards-to-go R_t = sum_k gamma^k r_{t+k}  (bootstrapped with V at the rollout's
         end and at time limits)
    5.   advantages A_t by GAE(gamma, lambda) with V_phi, normalised to mean 0, std 1
    6.   policy gradient g = mean_t grad_theta log pi_theta(a_t|s_t) A_t
    7.   one Adam step on theta along g
    8.   fit V_phi: `value_iters` Adam steps on mean((V_phi(s_t) - R_t)^2)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mbrl.training.config import EnvFields, OnPolicyFields, RunFields
from mbrl.training.returns import discounted_returns
from mbrl.training.rollout import (
    RolloutBuffer,
    adam,
    check_common_config,
    check_positive,
    explained_variance,
    on_policy_agent,
)

__all__ = ["VPG"]


@dataclass(frozen=True, kw_only=True)
class VPGConfig(OnPolicyFields, RunFields, EnvFields):
    """VPG hyperparameters; defaults are Spinning Up's."""

    num_steps: int = 4000
    """Steps per environment per epoch (T; Spinning Up: 4000 per epoch)."""
    gae_lambda: float = 0.97
    """GAE lambda (Spinning Up: 0.97)."""
    policy_lr: float = 3e-4
    """Adam learning rate of the policy; 1e-4-1e-2."""
    value_lr: float = 1e-3
    """Adam learning rate of the value function; 1e-4-1e-2."""
    value_iters: int = 80
    """Full-batch value steps per epoch; 10-100."""

    def __post_init__(self):
        check_common_config(self)
        check_positive(self, "policy_lr", "value_lr", "value_iters")


@on_policy_agent
class VPG:
    """VPG agent: ``VPG("CartPole-v1", VPG.Config(...)).learn(100_000)``."""

    algo = "vpg"
    Config = VPGConfig

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Step 1's optimisers: Adam on the policy, Adam on the value function."""
        self.policy_optimizer = adam(self.policy.actor_parameters(), self.config.policy_lr)
        self.value_optimizer = adam(self.policy.critic.parameters(), self.config.value_lr)
        return {"policy": self.policy_optimizer, "value": self.value_optimizer}

    def update(self, buffer: RolloutBuffer, progress_remaining: float) -> dict[str, float]:
        """Steps 4 and 6-8 on one epoch of experience; returns the loss metrics."""
        config, policy = self.config, self.policy
        rewards = buffer.rewards + config.gamma * buffer.truncated_values
        rewards_to_go = discounted_returns(rewards, buffer.dones, buffer.last_value, config.gamma)
        data = buffer.flat()  # step 4 ^
        obs, targets = data["obs"], rewards_to_go.flatten()
        advantages = data["advantages"]
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)  # step 5
        params = policy.dist_params(obs)
        policy_loss = -(policy.log_prob(params, data["actions"]) * advantages).mean()  # step 6
        self.policy_optimizer.zero_grad(set_to_none=True)
        policy_loss.backward()
        self.policy_optimizer.step()  # step 7
        for _ in range(config.value_iters):  # step 8
            value_loss = (policy.value(obs) - targets).pow(2).mean()
            self.value_optimizer.zero_grad(set_to_none=True)
            value_loss.backward()
            self.value_optimizer.step()
        return {
            "losses/policy_loss": policy_loss.item(),
            "losses/value_loss": value_loss.item(),
            "losses/entropy": policy.entropy(params).mean().item(),
            "losses/explained_variance": explained_variance(targets, data["values"]),
        }
