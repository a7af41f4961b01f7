"""Soft Actor-Critic with automatic entropy tuning.

Haarnoja, Zhou, Abbeel, Levine (2018), "Soft Actor-Critic: Off-Policy Maximum
Entropy Deep Reinforcement Learning with a Stochastic Actor", ICML; and
Haarnoja et al. (2018), "Soft Actor-Critic Algorithms and Applications"
(arXiv:1812.05905), which adds the two clipped critics and learns the
temperature alpha. Details and defaults follow Stable-Baselines3 and
Spinning Up: squashed Gaussian policy, log-std clipped to [-20, 2], targets by
Polyak averaging, entropy target -dim(A), alpha starting at 1.

    1. initialise policy pi_phi, critics Q_1, Q_2 and targets Q'_i <- Q_i,
       log alpha = log(initial_alpha), an empty replay buffer D
    2. for each environment step:
    3.   a ~ pi_phi(.|s) (uniform random before learning_starts)
    4.   step the env: r, s', terminated, truncated; store (s, a, r, s', terminated) in D
         (s' is the true final observation, so time limits bootstrap)
    5.   on terminated or truncated: log the episode and reset
    6.   after learning_starts, `gradient_steps` times:
    7.     sample a minibatch (s, a, r, s', d) from D
    8.     a~ ~ pi_phi(.|s) (reparameterised); temperature:
             minimise J(alpha) = -log alpha * (log pi_phi(a~|s) + H_target)
    9.     y = r + gamma (1 - d) (min_i Q'_i(s', a') - alpha log pi_phi(a'|s')),
             a' ~ pi_phi(.|s')
   10.     critics: minimise sum_i mean (Q_i(s, a) - y)^2
   11.     actor: minimise mean (alpha log pi_phi(a~|s) - min_i Q_i(s, a~))
   12.     every target_network_frequency updates: Q'_i <- (1 - tau) Q'_i + tau Q_i
   13.   every eval_every steps: evaluate the deterministic policy tanh(mu(s));
         every checkpoint_every steps: checkpoint
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from torch import Tensor

from mbrl.training.config import (
    ActorCriticFields,
    DeviceFields,
    EnvFields,
    ReplayFields,
    RunFields,
    at_least,
    positive,
)
from mbrl.training.nets import EnsembleQ, SquashedGaussianActor, make_adam, soft_update
from mbrl.training.offpolicy import (
    hook_parts,
    off_policy_agent,
    setup_continuous,
    training_parts,
    validate_offpolicy_config,
)
from mbrl.training.replay import Batch, ModelHook, TargetContext, critic_targets

__all__ = ["SAC", "SACConfig"]


@dataclass(frozen=True, kw_only=True)
class SACConfig(ActorCriticFields, ReplayFields, DeviceFields, RunFields, EnvFields):
    """Soft Actor-Critic (defaults: Stable-Baselines3 / CleanRL for MuJoCo)."""

    alpha_lr: float = 3e-4
    """Adam learning rate of log alpha; 1e-4-1e-3."""
    autotune: bool = True
    """Learn the entropy temperature alpha (SAC v2); False keeps alpha = initial_alpha."""
    initial_alpha: float = 1.0
    """Starting (or fixed) entropy temperature alpha; 0.01-1."""
    target_entropy: float | None = None
    """Entropy target H_target of the temperature loss (None: -dim(A), the paper's heuristic)."""
    target_network_frequency: int = 1
    """Updates between Polyak averagings of the target critics; 1-2."""

    def __post_init__(self):
        validate_offpolicy_config(self)
        at_least(self, 1, "target_network_frequency")
        positive(self, "initial_alpha")


@off_policy_agent
class SAC:
    """Soft Actor-Critic on one gymnasium environment (the surface of :class:`mbrl.Agent`)."""

    algo = "sac"
    Config = SACConfig
    FORMAT = "mbrl.sac/1"
    action_spaces = frozenset({"continuous"})
    step_cost = 50.0

    def __init__(
        self,
        env: str,
        config: SACConfig | None = None,
        *,
        run_dir: str | Path | None = None,
        console: Console | None = None,
        model_hook: ModelHook | None = None,
    ):
        # 1. networks, targets, temperature, replay
        obs_dim, action_dim, low, high = setup_continuous(
            self, env, config, run_dir=run_dir, console=console, model_hook=model_hook
        )
        config, device, hidden = self.config, self.device, self.config.hidden_sizes
        self.actor = SquashedGaussianActor(obs_dim, low, high, hidden).to(device)
        self.critic = EnsembleQ(obs_dim, action_dim, hidden, num_members=2).to(device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.full(
            (), math.log(config.initial_alpha), device=device, requires_grad=config.autotune
        )
        self.target_entropy = (
            -float(action_dim) if config.target_entropy is None else config.target_entropy
        )
        self.actor_optimizer = make_adam(self.actor.parameters(), config.policy_lr)
        self.critic_optimizer = make_adam(self.critic.parameters(), config.q_lr)
        self.alpha_optimizer = make_adam([self.log_alpha], config.alpha_lr)
        self.target_context = TargetContext(config.gamma, self.next_values, self.imagined_action)

    @property
    def alpha(self) -> Tensor:
        """The entropy temperature exp(log alpha), a scalar tensor without gradient."""
        return self.log_alpha.detach().exp()

    # ------------------------------------------------------------------ acting
    @torch.no_grad()
    def predict(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Actions ``[B, A]`` in the env's Box for observations ``[B, *obs_shape]``."""
        obs_t = torch.as_tensor(np.asarray(obs), dtype=torch.float32, device=self.device)
        if tuple(obs_t.shape[1:]) != self.obs_shape:
            raise ValueError(f"predict expects obs [B, {self.obs_shape}], got {tuple(obs_t.shape)}")
        if deterministic:
            return self.actor.deterministic(obs_t).cpu().numpy()
        return self.actor(obs_t, self.generator)[0].cpu().numpy()

    # ---------------------------------------------------------------- updating
    @torch.no_grad()
    def next_values(self, next_obs: Tensor) -> Tensor:
        """Soft values Q'_i(s', a') - alpha log pi(a'|s'), a' ~ pi(.|s'), of both target
        critics: ``[2, B]``."""
        next_action, next_log_prob = self.actor(next_obs, self.generator)
        return self.critic_target(next_obs, next_action) - self.alpha * next_log_prob

    def next_value(self, next_obs: Tensor) -> Tensor:
        """Step 9's bootstrap: the soft minimum min_i Q'_i(s', a') - alpha log pi ``[B]``."""
        return self.next_values(next_obs).min(0).values

    @torch.no_grad()
    def imagined_action(self, obs: Tensor) -> Tensor:
        """A sample of the current policy in an imagined state (the expansion policy)."""
        return self.actor(obs, self.generator)[0]

    def update_temperature(self, log_prob: Tensor) -> Tensor:
        """Step 8: one Adam step on J(alpha) = -log alpha (log pi + H_target); returns J."""
        with torch.no_grad():
            # dJ/d(log alpha) = -mean(log pi + H_target), set directly (no autograd graph
            # for one scalar: the same step, a tenth of the overhead)
            gap = log_prob.mean() + self.target_entropy
            alpha_loss = -self.log_alpha * gap
        self.log_alpha.grad = -gap
        self.alpha_optimizer.step()
        return alpha_loss

    def update(self, batch: Batch) -> dict[str, Tensor]:
        """Steps 8-12 on one minibatch; returns detached loss tensors (no .item() here)."""
        config = self.config
        # 8. reparameterised a~ ~ pi(.|s); alpha of this update is taken before its step (SB3)
        action_pi, log_prob_pi = self.actor(batch.obs, self.generator)
        alpha = self.alpha
        metrics = {"losses/alpha": alpha}
        if config.autotune:
            metrics["losses/alpha_loss"] = self.update_temperature(log_prob_pi)
        # 9. targets y (a model hook may replace them, e.g. MVE's H-step targets)
        rows = critic_targets(self.hook, batch, self.target_context)
        # 10. both critics in one batched forward: q [2, B]
        q = self.critic(rows.obs, rows.action)
        qf_loss = rows.loss(q)
        self.critic_optimizer.zero_grad(set_to_none=True)
        qf_loss.backward()
        self.critic_optimizer.step()
        # 11. actor through the updated critics (frozen: gradient to the action only)
        q_pi = self.critic.min_q(batch.obs, action_pi)
        actor_loss = (alpha * log_prob_pi - q_pi).mean()
        self.actor_optimizer.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_optimizer.step()
        # 12. targets
        self.counters["updates"] += 1
        if self.counters["updates"] % config.target_network_frequency == 0:
            soft_update(self.critic_target, self.critic, config.tau)
        metrics.update(
            {
                "losses/qf_loss": qf_loss.detach(),
                "losses/qf_values": q.detach().mean(),
                "losses/actor_loss": actor_loss.detach(),
                "losses/entropy": -log_prob_pi.detach().mean(),
            }
        )
        return metrics

    def parts(self, training: bool = False) -> dict[str, Any]:
        parts = {
            "actor": self.actor,
            "critic": self.critic,
            "critic_target": self.critic_target,
            "log_alpha": self.log_alpha,
            "actor_optimizer": self.actor_optimizer,
            "critic_optimizer": self.critic_optimizer,
            "alpha_optimizer": self.alpha_optimizer,
        }
        return parts | hook_parts(self, training) | (training_parts(self) if training else {})
