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

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from mbrl.training.rollout import (
    OnPolicyLoop,
    RolloutBuffer,
    check_common_config,
    check_positive,
    explained_variance,
    load_agent,
    resume_agent,
)
from mbrl.training.runs import atomic_save

__all__ = ["A2C"]


@dataclass(frozen=True, kw_only=True)
class A2CConfig:
    """A2C hyperparameters; defaults are Stable-Baselines3's (num_envs as rl-zoo's CartPole)."""

    env: str = "CartPole-v1"
    """Gymnasium environment id (Box observations; Discrete or Box actions)."""
    total_steps: int = 1_000_000
    """Environment steps to train for (all environments together); 1e5-1e7."""
    seed: int = 0
    """Seed of the environments, the network init and the action sampling."""
    run_dir: str = "runs"
    """Folder under which the run folder runs/a2c-<env>-<time>/ is made."""
    num_envs: int = 8
    """Environments stepped in parallel (N); A2C relies on several; 4-64."""
    num_steps: int = 5
    """Steps per environment per update (T, the n of n-step returns); 5-128."""
    learning_rate: float = 7e-4
    """RMSprop learning rate; 1e-4-1e-3."""
    anneal_lr: bool = False
    """Decay the learning rate linearly to 0 over total_steps."""
    rms_prop_alpha: float = 0.99
    """RMSprop smoothing constant."""
    rms_prop_eps: float = 1e-5
    """RMSprop epsilon (1e-5 as SB3, for stability)."""
    gamma: float = 0.99
    """Discount factor; 0.9-0.999."""
    gae_lambda: float = 1.0
    """GAE lambda; 1.0 gives the paper's n-step returns; 0.9-1."""
    normalize_advantage: bool = False
    """Normalise advantages of each rollout to mean 0, std 1."""
    ent_coef: float = 0.0
    """Entropy bonus c_H; 0-0.01."""
    vf_coef: float = 0.5
    """Value loss weight c_V; 0.25-1."""
    max_grad_norm: float = 0.5
    """Global gradient norm clip; 0.5-1."""
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
    log_every: int = 2000
    """Environment steps between rows of progress.csv / TensorBoard."""

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


class A2C:
    """A2C agent: ``A2C("CartPole-v1", A2C.Config(...)).learn(100_000)``."""

    ALGO = "a2c"
    Config = A2CConfig

    def __init__(
        self,
        env: str,
        config: A2CConfig | None = None,
        *,
        run_dir: str | Path | None = None,
        console: Console | None = None,
    ):
        config = dataclasses.replace(config or A2CConfig(env=env), env=env)
        self.config = config
        self.loop = OnPolicyLoop(self.ALGO, config, run_dir=run_dir, console=console)
        self.policy = self.loop.policy  # step 1
        self.optimizer = torch.optim.RMSprop(
            self.policy.parameters(),
            lr=config.learning_rate,
            alpha=config.rms_prop_alpha,
            eps=config.rms_prop_eps,
            foreach=True,
        )
        self.loop.optimizers["optimizer"] = self.optimizer

    @property
    def run_dir(self) -> Path:
        return self.loop.run_dir

    @property
    def counters(self) -> dict:
        return self.loop.counters

    def learn(self, total_steps: int) -> dict[str, float]:
        """Train until ``total_steps`` environment steps (continuing from the current count)."""
        return self.loop.learn(total_steps, self.update)  # steps 2-4 in loop.collect

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

    def predict(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Actions ``[B]`` / ``[B, *action_shape]`` for observations ``[B, *obs_shape]``."""
        return self.loop.predict(obs, deterministic)

    def save(self, path: str | Path) -> Path:
        """Network, config and observation normaliser (enough to ``load`` and ``predict``)."""
        return atomic_save(self.loop.agent_state(), path)

    @classmethod
    def load(cls, path: str | Path) -> A2C:
        """An agent from ``save``'s file, a checkpoint or a run folder."""
        return load_agent(cls, path)

    @classmethod
    def resume(cls, run_dir: str | Path, console: Console | None = None) -> A2C:
        """The agent of a run folder with its full training state; ``learn`` continues it."""
        return resume_agent(cls, run_dir, console)
