"""Twin Delayed DDPG (TD3).

Fujimoto, van Hoof, Meger (2018), "Addressing Function Approximation Error in
Actor-Critic Methods", ICML. Three changes to DDPG: clipped double Q-learning
(the minimum of two critics in the target), delayed policy and target updates,
and target policy smoothing. Defaults follow the paper's code, CleanRL and
Stable-Baselines3 (256x256 networks, Adam 3e-4, noise in units of the action
scale).

    1. initialise actor mu_phi, critics Q_1, Q_2, targets mu', Q'_i <- mu, Q_i,
       an empty replay buffer D
    2. for each environment step:
    3.   a = clip(mu_phi(s) + eps, low, high), eps ~ N(0, sigma) (uniform random
         before learning_starts)
    4.   step the env: r, s', terminated, truncated; store (s, a, r, s', terminated) in D
         (s' is the true final observation, so time limits bootstrap)
    5.   on terminated or truncated: log the episode and reset
    6.   after learning_starts, `gradient_steps` times:
    7.     sample a minibatch (s, a, r, s', d) from D
    8.     a' = clip(mu'(s') + clip(eps', -c, c), low, high), eps' ~ N(0, sigma~)
    9.     y = r + gamma (1 - d) min_i Q'_i(s', a')
   10.     critics: minimise sum_i mean (Q_i(s, a) - y)^2
   11.     every policy_delay updates: actor: maximise mean Q_1(s, mu_phi(s)), then
   12.       Polyak-average mu' and Q'_i: theta' <- (1 - tau) theta' + tau theta
   13.   every eval_every steps: evaluate mu_phi; every checkpoint_every steps: checkpoint

DDPG (:mod:`mbrl.algorithms.ddpg`) is this class with a config that switches the
three changes off: one critic, no target smoothing, no delay.
"""

from __future__ import annotations

import copy
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
)
from mbrl.training.nets import DeterministicActor, EnsembleQ, frozen, make_adam, soft_update
from mbrl.training.offpolicy import (
    hook_parts,
    off_policy_agent,
    setup_continuous,
    training_parts,
    validate_offpolicy_config,
)
from mbrl.training.replay import Batch, ModelHook, TargetContext, critic_targets

__all__ = ["TD3", "TD3Config"]


@dataclass(frozen=True, kw_only=True)
class TD3Config(ActorCriticFields, ReplayFields, DeviceFields, RunFields, EnvFields):
    """Twin Delayed DDPG (defaults: the paper's code / CleanRL for MuJoCo)."""

    exploration_noise: float = 0.1
    """Std of the Gaussian exploration noise, in units of the action scale; 0.05-0.3."""
    policy_noise: float = 0.2
    """Std of the target policy smoothing noise sigma~, in units of the action scale; 0.1-0.3."""
    noise_clip: float = 0.5
    """Clip c of the smoothing noise, in units of the action scale; 0.3-0.5."""
    policy_delay: int = 2
    """Critic updates per actor and target update (the paper's d); 1-3."""

    num_critics = 2  # clipped double Q-learning (a class constant, not a flag)

    def __post_init__(self):
        validate_offpolicy_config(self)
        at_least(self, 1, "policy_delay")
        at_least(self, 0, "exploration_noise", "policy_noise", "noise_clip")


@off_policy_agent
class TD3:
    """TD3 on one gymnasium environment (the surface of :class:`mbrl.Agent`)."""

    algo = "td3"
    Config = TD3Config
    FORMAT = "mbrl.td3/1"
    action_spaces = frozenset({"continuous"})
    step_cost = 26.0

    def __init__(
        self,
        env: str,
        config: Any = None,
        *,
        run_dir: str | Path | None = None,
        console: Console | None = None,
        model_hook: ModelHook | None = None,
    ):
        # 1. networks, targets, replay
        obs_dim, action_dim, low, high = setup_continuous(
            self, env, config, run_dir=run_dir, console=console, model_hook=model_hook
        )
        config, device, hidden = self.config, self.device, self.config.hidden_sizes
        self.actor = DeterministicActor(obs_dim, low, high, hidden).to(device)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic = EnsembleQ(obs_dim, action_dim, hidden, config.num_critics).to(device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_optimizer = make_adam(self.actor.parameters(), config.policy_lr)
        self.critic_optimizer = make_adam(self.critic.parameters(), config.q_lr)
        self.low = torch.as_tensor(low, dtype=torch.float32, device=device)
        self.high = torch.as_tensor(high, dtype=torch.float32, device=device)
        self.action_scale = (self.high - self.low) / 2
        self.last_actor_loss: Tensor | None = None  # logged between delayed actor updates
        self.target_context = TargetContext(config.gamma, self.next_values, self.imagined_action)

    def _noise(self, shape: torch.Size, std: float) -> Tensor:
        """Gaussian noise ``shape`` with std ``std`` action scales (per dimension)."""
        noise = torch.randn(shape, generator=self.generator, device=self.device)
        return noise * (std * self.action_scale)

    # ------------------------------------------------------------------ acting
    @torch.no_grad()
    def predict(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Actions ``[B, A]`` for observations ``[B, *obs_shape]`` (step 3's noise if not
        deterministic)."""
        obs_t = torch.as_tensor(np.asarray(obs), dtype=torch.float32, device=self.device)
        if tuple(obs_t.shape[1:]) != self.obs_shape:
            raise ValueError(f"predict expects obs [B, {self.obs_shape}], got {tuple(obs_t.shape)}")
        action = self.actor(obs_t)
        if not deterministic:
            noise = self._noise(action.shape, self.config.exploration_noise)
            action = (action + noise).clamp(self.low, self.high)
        return action.cpu().numpy()

    # ---------------------------------------------------------------- updating
    @torch.no_grad()
    def next_values(self, next_obs: Tensor) -> Tensor:
        """Step 8: Q'_i(s', a') of each target critic at the smoothed target action a':
        ``[num_critics, B]`` (DDPG: Q'(s', mu'(s')), no smoothing)."""
        return self.critic_target(next_obs, self.imagined_action(next_obs))

    def next_value(self, next_obs: Tensor) -> Tensor:
        """Step 9's bootstrap: min_i Q'_i(s', a') ``[B]``."""
        return self.next_values(next_obs).min(0).values

    @torch.no_grad()
    def imagined_action(self, obs: Tensor) -> Tensor:
        """The policy of the bootstrap in an imagined state: the target actor with step
        8's smoothing noise (DDPG: the bare target actor, as MVE's authors imagine).
        With the current actor, MVE-TD3's critic loss grew to hundreds on the point mass
        of the tests; with the bare target actor, the TD-k rows (one action per imagined
        state) left MVE-TD3 at its starting return on Pendulum-v1 (BENCHMARKS.md)."""
        action = self.actor_target(obs)
        if self.config.policy_noise > 0:
            clip = self.config.noise_clip * self.action_scale
            noise = self._noise(action.shape, self.config.policy_noise).clamp(-clip, clip)
            action = (action + noise).clamp(self.low, self.high)
        return action

    def update(self, batch: Batch) -> dict[str, Tensor]:
        """Steps 8-12 on one minibatch; returns detached loss tensors (no .item() here)."""
        config = self.config
        # 8-9. targets y (a model hook may replace them, e.g. MVE's H-step targets)
        rows = critic_targets(self.hook, batch, self.target_context)
        # 10. all critics in one batched forward: q [num_critics, B]
        q = self.critic(rows.obs, rows.action)
        qf_loss = rows.loss(q)
        self.critic_optimizer.zero_grad(set_to_none=True)
        qf_loss.backward()
        self.critic_optimizer.step()
        self.counters["updates"] += 1
        metrics = {"losses/qf_loss": qf_loss.detach(), "losses/qf_values": q.detach().mean()}
        # 11-12. delayed actor and target updates (actor through critic 1 only)
        if self.counters["updates"] % config.policy_delay == 0:
            with frozen(self.critic):
                q1 = self.critic(batch.obs, self.actor(batch.obs), members=slice(0, 1))
            actor_loss = -q1.mean()
            self.actor_optimizer.zero_grad(set_to_none=True)
            actor_loss.backward()
            self.actor_optimizer.step()
            soft_update(self.actor_target, self.actor, config.tau)
            soft_update(self.critic_target, self.critic, config.tau)
            self.last_actor_loss = actor_loss.detach()
        if self.last_actor_loss is not None:
            metrics["losses/actor_loss"] = self.last_actor_loss
        return metrics

    def parts(self, training: bool = False) -> dict[str, Any]:
        parts = {
            "actor": self.actor,
            "actor_target": self.actor_target,
            "critic": self.critic,
            "critic_target": self.critic_target,
            "actor_optimizer": self.actor_optimizer,
            "critic_optimizer": self.critic_optimizer,
        }
        return parts | hook_parts(self, training) | (training_parts(self) if training else {})
