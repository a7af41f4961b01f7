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

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console

from mbrl.training.returns import discounted_returns
from mbrl.training.rollout import (
    OnPolicyLoop,
    RolloutBuffer,
    adam,
    check_common_config,
    check_positive,
    explained_variance,
    load_agent,
    resume_agent,
)
from mbrl.training.runs import atomic_save

__all__ = ["VPG"]


@dataclass(frozen=True, kw_only=True)
class VPGConfig:
    """VPG hyperparameters; defaults are Spinning Up's."""

    env: str = "CartPole-v1"
    """Gymnasium environment id (Box observations; Discrete or Box actions)."""
    total_steps: int = 1_000_000
    """Environment steps to train for (all environments together); 1e5-1e7."""
    seed: int = 0
    """Seed of the environments, the network init and the action sampling."""
    run_dir: str = "runs"
    """Folder under which the run folder runs/vpg-<env>-<time>/ is made."""
    num_envs: int = 1
    """Environments stepped in parallel (N); 1-16."""
    num_steps: int = 4000
    """Steps per environment per epoch (T); the batch is T * N; 1000-10000."""
    policy_lr: float = 3e-4
    """Adam learning rate of the policy; 1e-4-1e-2."""
    value_lr: float = 1e-3
    """Adam learning rate of the value function; 1e-4-1e-2."""
    value_iters: int = 80
    """Full-batch value steps per epoch; 10-100."""
    gamma: float = 0.99
    """Discount factor; 0.9-0.999."""
    gae_lambda: float = 0.97
    """GAE lambda of the advantages; 0.9-1."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of the policy and of the value MLP (tanh)."""
    normalize_obs: bool = False
    """Normalise observations with running mean and std (saved with the agent)."""
    normalize_reward: bool = False
    """Divide rewards by the running std of the discounted return, clipped to +-10
    (SB3 VecNormalize, CleanRL's MuJoCo PPO); evaluation returns stay raw."""
    eval_every: int = 10_000
    """Environment steps between deterministic evaluations (eval/mean_return)."""
    eval_episodes: int = 10
    """Episodes per evaluation; 0 disables evaluation."""
    checkpoint_every: int = 50_000
    """Environment steps between checkpoints (checkpoints/latest.pt; also at the end)."""
    log_every: int = 4000
    """Environment steps between rows of progress.csv / TensorBoard."""

    def __post_init__(self):
        check_common_config(self)
        check_positive(self, "policy_lr", "value_lr", "value_iters")


class VPG:
    """VPG agent: ``VPG("CartPole-v1", VPG.Config(...)).learn(100_000)``."""

    ALGO = "vpg"
    Config = VPGConfig

    def __init__(
        self,
        env: str,
        config: VPGConfig | None = None,
        *,
        run_dir: str | Path | None = None,
        console: Console | None = None,
    ):
        config = dataclasses.replace(config or VPGConfig(env=env), env=env)
        self.config = config
        self.loop = OnPolicyLoop(self.ALGO, config, run_dir=run_dir, console=console)
        self.policy = self.loop.policy  # step 1
        self.policy_optimizer = adam(self.policy.actor_parameters(), config.policy_lr)
        self.value_optimizer = adam(self.policy.critic.parameters(), config.value_lr)
        self.loop.optimizers.update(policy=self.policy_optimizer, value=self.value_optimizer)

    @property
    def run_dir(self) -> Path:
        return self.loop.run_dir

    @property
    def counters(self) -> dict:
        return self.loop.counters

    def learn(self, total_steps: int) -> dict[str, float]:
        """Train until ``total_steps`` environment steps (continuing from the current count)."""
        return self.loop.learn(total_steps, self.update)  # step 3 and 5 in loop.collect

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

    def predict(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Actions ``[B]`` / ``[B, *action_shape]`` for observations ``[B, *obs_shape]``."""
        return self.loop.predict(obs, deterministic)

    def save(self, path: str | Path) -> Path:
        """Network, config and observation normaliser (enough to ``load`` and ``predict``)."""
        return atomic_save(self.loop.agent_state(), path)

    @classmethod
    def load(cls, path: str | Path) -> VPG:
        """An agent from ``save``'s file, a checkpoint or a run folder."""
        return load_agent(cls, path)

    @classmethod
    def resume(cls, run_dir: str | Path, console: Console | None = None) -> VPG:
        """The agent of a run folder with its full training state; ``learn`` continues it."""
        return resume_agent(cls, run_dir, console)
