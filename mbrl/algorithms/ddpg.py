"""Deep Deterministic Policy Gradient (DDPG).

Lillicrap et al. (2016), "Continuous control with deep reinforcement learning",
ICLR; the deterministic policy gradient of Silver et al. (2014). This is the
"OurDDPG" variant of Fujimoto et al. (2018) that CleanRL and Stable-Baselines3
also use: Gaussian instead of Ornstein-Uhlenbeck exploration noise, no batch
norm or weight decay, 256x256 networks, Adam 3e-4, uniform random actions
before learning starts.

    1. initialise actor mu_phi, critic Q, targets mu', Q' <- mu, Q,
       an empty replay buffer D
    2. for each environment step:
    3.   a = clip(mu_phi(s) + eps, low, high), eps ~ N(0, sigma) (uniform random
         before learning_starts)
    4.   step the env: r, s', terminated, truncated; store (s, a, r, s', terminated) in D
         (s' is the true final observation, so time limits bootstrap)
    5.   on terminated or truncated: log the episode and reset
    6.   after learning_starts, `gradient_steps` times:
    7.     sample a minibatch (s, a, r, s', d) from D
    8.     a' = mu'(s')
    9.     y = r + gamma (1 - d) Q'(s', a')
   10.     critic: minimise mean (Q(s, a) - y)^2
   11.     actor: maximise mean Q(s, mu_phi(s)) (the deterministic policy gradient)
   12.     Polyak-average mu' and Q': theta' <- (1 - tau) theta' + tau theta
   13.   every eval_every steps: evaluate mu_phi; every checkpoint_every steps: checkpoint
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from torch import Tensor

from mbrl.training.envs import evaluate
from mbrl.training.nets import (
    DeterministicActor,
    EnsembleQ,
    frozen,
    make_adam,
    soft_update,
)
from mbrl.training.offpolicy import (
    Collector,
    check_continuous_env,
    load_agent,
    resume_agent,
    rng_parts,
    save_agent,
    train_off_policy,
    validate_offpolicy_config,
)
from mbrl.training.replay import (
    Batch,
    ModelHook,
    ReplayBuffer,
    ReplayOnly,
)
from mbrl.training.runs import new_run_dir

__all__ = ["DDPG", "DDPGConfig"]

FORMAT = "mbrl.ddpg/1"


@dataclass(frozen=True, kw_only=True)
class DDPGConfig:
    """DDPG (defaults: Fujimoto et al.'s OurDDPG / CleanRL for MuJoCo)."""

    env: str
    """Gymnasium id of an environment with a Box action space (e.g. Pendulum-v1, HalfCheetah-v5)."""
    total_steps: int = 1_000_000
    """Environment steps to train for (Pendulum: 20k; MuJoCo: 1M)."""
    seed: int = 1
    """Seed of networks, replay sampling, exploration and the environment."""
    run_dir: str = "runs"
    """Folder under which the run folder ``ddpg-<env>-<time>`` is made."""
    buffer_size: int = 1_000_000
    """Transitions kept in the replay buffer (oldest dropped first); 1e5-1e6."""
    learning_starts: int = 5_000
    """Uniformly random steps before the first update (CleanRL, MuJoCo: 25k; small envs: 1k-10k)."""
    batch_size: int = 256
    """Minibatch size of each gradient step; 100-512."""
    gamma: float = 0.99
    """Discount factor; 0.98-0.999."""
    tau: float = 0.005
    """Polyak coefficient of the target networks (1 = hard copy); 0.001-0.02."""
    policy_lr: float = 3e-4
    """Adam learning rate of the actor; 1e-4-1e-3."""
    q_lr: float = 3e-4
    """Adam learning rate of the critics; 1e-4-1e-3."""
    exploration_noise: float = 0.1
    """Std of the Gaussian exploration noise, in units of the action scale; 0.05-0.3."""
    hidden_sizes: tuple[int, ...] = (256, 256)
    """Hidden layer widths of the actor and of each critic."""
    gradient_steps: int = 1
    """Gradient steps per environment step (the update-to-data ratio); 1-20."""
    eval_every: int = 5_000
    """Environment steps between deterministic evaluations (eval/mean_return)."""
    eval_episodes: int = 10
    """Episodes per evaluation; 5-20."""
    checkpoint_every: int = 10_000
    """Environment steps between checkpoints (checkpoints/latest.pt, with the replay buffer)."""
    log_every: int = 1_000
    """Environment steps between rows of losses and SPS in progress.csv."""
    device: str = "cpu"
    """Torch device of the networks (cpu or cuda)."""

    def __post_init__(self):
        validate_offpolicy_config(self)
        if self.gradient_steps < 1:
            raise ValueError(f"DDPGConfig.gradient_steps must be >= 1, got {self.gradient_steps}")
        if self.exploration_noise < 0:
            raise ValueError(
                f"DDPGConfig.exploration_noise must be >= 0, got {self.exploration_noise}"
            )


class DDPG:
    """DDPG on one gymnasium environment: ``learn``, ``predict``, ``save``/``load``."""

    Config = DDPGConfig

    def __init__(
        self,
        env: str,
        config: DDPGConfig | None = None,
        *,
        run_dir: str | Path | None = None,
        console: Console | None = None,
        model_hook: ModelHook | None = None,
    ):
        obs_space, action_space = check_continuous_env(env, "DDPG")
        config = DDPGConfig(env=env) if config is None else dataclasses.replace(config, env=env)
        self.config = config
        self.console = console or Console(quiet=True)
        self.device = torch.device(config.device)
        self.obs_shape = tuple(obs_space.shape)
        obs_dim, action_dim = int(np.prod(self.obs_shape)), action_space.shape[0]
        low, high, hidden = action_space.low, action_space.high, config.hidden_sizes

        # 1. networks, targets, replay
        torch.manual_seed(config.seed)
        self.rng = np.random.default_rng(config.seed)
        self.generator = torch.Generator(self.device).manual_seed(config.seed)
        self.actor = DeterministicActor(obs_dim, low, high, hidden).to(self.device)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic = EnsembleQ(obs_dim, action_dim, hidden, num_members=1).to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_optimizer = make_adam(self.actor.parameters(), config.policy_lr)
        self.critic_optimizer = make_adam(self.critic.parameters(), config.q_lr)
        self.low = torch.as_tensor(low, dtype=torch.float32, device=self.device)
        self.high = torch.as_tensor(high, dtype=torch.float32, device=self.device)
        self.action_scale = (self.high - self.low) / 2
        self.replay = ReplayBuffer(config.buffer_size, self.obs_shape, action_dim)
        self.hook: ModelHook = model_hook or ReplayOnly()
        self.collector = Collector(env, config.seed, self.replay, self.hook)
        self.counters = {"env_steps": 0, "updates": 0, "episodes": 0}
        self.run_dir = Path(run_dir) if run_dir else new_run_dir(config.run_dir, "ddpg", env)

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoints" / "latest.pt"

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
    def next_value(self, next_obs: Tensor) -> Tensor:
        """Steps 8-9: Q'(s', mu'(s')), ``[B]``."""
        return self.critic_target(next_obs, self.actor_target(next_obs))[0]

    def update(self, batch: Batch) -> dict[str, Tensor]:
        """Steps 8-12 on one minibatch; returns detached loss tensors (no .item() here)."""
        config = self.config
        # 8-9. target y (a model hook may replace it, e.g. MVE)
        with torch.no_grad():
            target = self.hook.q_target(batch, self)
            if target is None:
                next_value = self.next_value(batch.next_obs)
                target = batch.reward + config.gamma * (1.0 - batch.terminated) * next_value
        # 10. critic (an EnsembleQ with one member): q [1, B]
        q = self.critic(batch.obs, batch.action)
        qf_loss = (q - target).pow(2).mean()
        self.critic_optimizer.zero_grad(set_to_none=True)
        qf_loss.backward()
        self.critic_optimizer.step()
        # 11. actor through the (frozen) updated critic
        with frozen(self.critic):
            actor_loss = -self.critic(batch.obs, self.actor(batch.obs)).mean()
        self.actor_optimizer.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_optimizer.step()
        # 12. targets
        soft_update(self.actor_target, self.actor, config.tau)
        soft_update(self.critic_target, self.critic, config.tau)
        self.counters["updates"] += 1
        return {
            "losses/qf_loss": qf_loss.detach(),
            "losses/qf_values": q.detach().mean(),
            "losses/actor_loss": actor_loss.detach(),
        }

    def evaluate(self) -> dict[str, float]:
        """Step 13: returns of the deterministic policy on fresh, seeded episodes."""
        returns = evaluate(
            self.config.env, self.predict, self.config.eval_episodes, self.config.seed + 10_000
        )
        return {"eval/mean_return": float(returns.mean()), "eval/std_return": float(returns.std())}

    # ---------------------------------------------------------------- the loop
    def learn(self, total_steps: int | None = None) -> dict[str, float]:
        """Train until ``total_steps`` environment steps (counting steps already done);
        the loop (lines 3-13 above) is :func:`mbrl.training.offpolicy.train_off_policy`."""
        return train_off_policy(self, "ddpg", total_steps)

    # ------------------------------------------------------------- checkpoints
    def _parts(self) -> dict:
        return {
            "actor": self.actor,
            "actor_target": self.actor_target,
            "critic": self.critic,
            "critic_target": self.critic_target,
            "actor_optimizer": self.actor_optimizer,
            "critic_optimizer": self.critic_optimizer,
            **rng_parts(self),
        }

    def save(self, path: str | Path, include_replay: bool = False) -> Path:
        """Write networks, optimisers, RNG states and counters atomically (plus replay if asked)."""
        return save_agent(self, path, FORMAT, include_replay)

    @classmethod
    def load(cls, path: str | Path, **kwargs) -> DDPG:
        """An agent from :meth:`save`'s file (the replay buffer too when it was saved);
        keyword arguments as the constructor's (run_dir, console, model_hook)."""
        return load_agent(cls, path, FORMAT, **kwargs)

    @classmethod
    def resume(cls, run_dir: str | Path, console: Console | None = None, **kwargs) -> DDPG:
        """Continue a run from ``run_dir/checkpoints/latest.pt``; ``learn`` goes on from there."""
        return resume_agent(cls, run_dir, FORMAT, console=console, **kwargs)
