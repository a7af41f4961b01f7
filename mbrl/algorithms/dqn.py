"""Deep Q-Network (Mnih et al. 2015, "Human-level control through deep reinforcement
learning") with double Q-learning targets (van Hasselt et al. 2016, "Deep Reinforcement
Learning with Double Q-learning"), for discrete action spaces.

    1. initialise the Q-network Q_theta, the target network Q_theta' <- Q_theta
       and an empty replay buffer D
    2. for each environment step t:
    3.   epsilon_t = linear decay from start_epsilon to end_epsilon over
         exploration_fraction * total_steps, then constant
    4.   a_t = random action with probability epsilon_t, else argmax_a Q_theta(s_t, a)
    5.   step the environment; store (s_t, a_t, r_t, s_t+1, terminated_t) in D
         (a truncated episode still bootstraps from s_t+1: only termination ends the value)
    6.   if t > learning_starts and t % train_frequency == 0, `gradient_steps` times:
    7.     sample a minibatch of B transitions from D
    8.     a* = argmax_a Q_theta(s', a)                  (double DQN: the online net picks)
           y  = r + gamma (1 - terminated) Q_theta'(s', a*)   (the target net evaluates)
    9.     minimise Huber(Q_theta(s, a) - y) (or MSE) by Adam, gradients clipped
   10.   every target_network_frequency steps: theta' <- tau theta + (1 - tau) theta'
         (tau = 1: the hard copy of the 2015 paper)
   11.   every eval_every steps: evaluate the greedy policy; every checkpoint_every
         steps: write the full training state

The defaults are the tuned CartPole-v1 settings of RL Baselines3 Zoo (Raffin 2020),
except a lower learning rate (5e-4 instead of 2.3e-3, which oscillated in our runs).
The acting and learning loop is the off-policy agents' one
(:func:`mbrl.training.offpolicy.train_off_policy`): this file holds DQN's config,
its epsilon-greedy step 4, its update (steps 7-9) and its target copy (step 10).
A checkpoint holds the environment with its episode in progress, so a killed run
resumes exactly as if it had never stopped.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
import tyro
from rich.console import Console
from torch import Tensor, nn

from mbrl.training.checkpoint import RngStates
from mbrl.training.config import (
    DeviceFields,
    EnvFields,
    ReplayFields,
    RunFields,
    at_least,
    fail,
    in_range,
)
from mbrl.training.envs import check_env_id
from mbrl.training.nets import mlp
from mbrl.training.offpolicy import (
    off_policy_agent,
    setup_off_policy,
    train_off_policy,
    training_parts,
    validate_offpolicy_config,
)
from mbrl.training.replay import Ring, transition_fields

__all__ = ["DQN", "DQNConfig", "Loss", "ReplayBuffer", "linear_schedule", "td_target"]


class Loss(Enum):
    HUBER = "huber"
    """Smooth L1 (Mnih et al. 2015 clip the TD error to [-1, 1], the same gradient)."""
    MSE = "mse"
    """Squared TD error (CleanRL's choice)."""


@dataclass(frozen=True, kw_only=True)
class DQNConfig(ReplayFields, DeviceFields, RunFields, EnvFields):
    env: str = "CartPole-v1"
    """Gymnasium id of an environment with a Discrete action space and Box observations."""
    total_steps: int = 50_000
    """Environment steps to train for (CartPole-v1: 5e4; Atari: 1e7)."""
    learning_rate: float = 5e-4
    """Adam learning rate; 1e-4 (Atari) to 1e-3 (the Zoo's 2.3e-3 was unstable here)."""
    buffer_size: int = 100_000
    """Transitions kept in the replay buffer (oldest dropped first); 1e4-1e6."""
    tau: float = 1.0
    """Target update rate: 1 copies the network (hard update), 0.005 is a soft update."""
    target_network_frequency: int = 10
    """Environment steps between target network updates; 10-10000 (2015 paper: 10000)."""
    batch_size: int = 64
    """Transitions per gradient step; 32-256."""
    start_epsilon: float = 1.0
    """Exploration rate at the first step, in [0, 1]."""
    end_epsilon: float = 0.04
    """Exploration rate after the decay, in [0, start_epsilon]; 0.01-0.1."""
    exploration_fraction: float = 0.16
    """Fraction of total_steps over which epsilon decays linearly, in (0, 1]; 0.1-0.5."""
    learning_starts: int = 1_000
    """Environment steps collected before the first gradient step; 1e3-5e4."""
    train_frequency: int = 256
    """Environment steps between training phases; 1-256 (2015 paper: 4)."""
    gradient_steps: int = 128
    """Gradient steps per training phase; 1 to train_frequency."""
    hidden_sizes: tuple[int, ...] = (256, 256)
    """Hidden layer widths of the Q-network MLP (ReLU)."""
    double_q: bool = True
    """Double DQN targets (online net picks a*, target net evaluates it); False: max of target."""
    loss: Annotated[Loss, tyro.conf.EnumChoicesFromValues] = Loss.HUBER
    """TD loss: huber (smooth L1) or mse."""
    max_grad_norm: float = 10.0
    """Gradient norm clip; 10 (SB3); 0 disables clipping."""

    def __post_init__(self):
        if isinstance(self.loss, str):  # from JSON
            object.__setattr__(self, "loss", Loss(self.loss))
        object.__setattr__(self, "hidden_sizes", tuple(self.hidden_sizes))
        validate_offpolicy_config(self, min_eval_every=0)
        at_least(self, 1, "target_network_frequency", "eval_episodes")
        at_least(self, 0, "max_grad_norm")
        in_range(self, "gamma", 0.0, 1.0, open_high=True)
        in_range(self, "start_epsilon", 0.0, 1.0)
        in_range(self, "end_epsilon", 0.0, self.start_epsilon)
        in_range(self, "exploration_fraction", 0.0, 1.0, open_low=True)
        if not isinstance(self.loss, Loss):
            fail(self, "loss", "be huber or mse")

    @property
    def exploration_steps(self) -> int:
        """Steps over which epsilon decays."""
        return max(1, int(self.exploration_fraction * self.total_steps))


# ------------------------------------------------------------------ parts


def linear_schedule(start: float, end: float, duration: int, step: int) -> float:
    """``start`` at step 0, linearly to ``end`` at ``duration``, then ``end`` (step 3)."""
    return end + (start - end) * max(0.0, 1.0 - step / duration)


def td_target(
    q_net: nn.Module,
    target_net: nn.Module,
    reward: Tensor,
    next_obs: Tensor,
    terminated: Tensor,
    gamma: float,
    double_q: bool = True,
) -> Tensor:
    """The bootstrapped target y [B] of step 8 for rewards, next observations and flags [B]."""
    with torch.no_grad():
        next_target = target_net(next_obs)  # [B, A]
        if double_q:
            best = q_net(next_obs).argmax(dim=1, keepdim=True)  # a* from the online net
            next_value = next_target.gather(1, best).squeeze(1)
        else:
            next_value = next_target.max(dim=1).values
        return reward + gamma * (1.0 - terminated) * next_value


def ReplayBuffer(capacity: int, obs_shape: tuple[int, ...]) -> Ring:
    """DQN's replay: the library's ring of transitions with integer actions ``[N]``."""
    return Ring(capacity, transition_fields(obs_shape, (), np.int64))


def _check_spaces(env: gym.Env, env_id: str) -> None:
    if not isinstance(env.action_space, gym.spaces.Discrete):
        raise ValueError(
            f"DQN needs a Discrete action space; {env_id} has {env.action_space} "
            "(use SAC, TD3 or DDPG for continuous actions)"
        )
    if not isinstance(env.observation_space, gym.spaces.Box):
        raise ValueError(f"DQN needs Box observations; {env_id} has {env.observation_space}")


# ------------------------------------------------------------------ agent


@off_policy_agent
class DQN:
    """Double DQN on one gymnasium environment (the surface of :class:`mbrl.Agent`)."""

    algo = "dqn"
    Config = DQNConfig
    FORMAT = "mbrl.dqn/2"
    action_spaces = frozenset({"discrete"})
    step_cost = 3.5

    def __init__(
        self,
        env: str,
        config: DQNConfig | None = None,
        *,
        run_dir: str | Path | None = None,
        console: Console | None = None,
    ):
        config = config or DQNConfig(env=env)
        if config.env != env:
            config = dataclasses.replace(config, env=env)
        check_env_id(env)
        probe = gym.make(env)
        _check_spaces(probe, env)
        obs_shape, self.num_actions = probe.observation_space.shape, int(probe.action_space.n)
        probe.close()
        self.obs_shape = tuple(obs_shape)
        sizes = [int(np.prod(obs_shape)), *config.hidden_sizes, self.num_actions]
        with torch.random.fork_rng(devices=[]):  # seed the init, leave the global RNG alone
            torch.manual_seed(config.seed)
            self.q_net = nn.Sequential(nn.Flatten(), mlp(sizes, nn.ReLU)).to(config.device)
            self.target_net = nn.Sequential(nn.Flatten(), mlp(sizes, nn.ReLU)).to(config.device)
        self.target_net.load_state_dict(self.q_net.state_dict())
        self.optimizer = torch.optim.Adam(self.q_net.parameters(), lr=config.learning_rate)
        replay = ReplayBuffer(config.buffer_size, obs_shape)
        setup_off_policy(
            self, config, replay, run_dir=run_dir, console=console, draw_reset_seed=True
        )
        self.predict_rng = np.random.default_rng(config.seed + 1)

    # ------------------------------------------------------------ acting
    @property
    def epsilon(self) -> float:
        c = self.config
        return linear_schedule(
            c.start_epsilon, c.end_epsilon, c.exploration_steps, self.counters["steps"]
        )

    def q_values(self, obs: np.ndarray) -> np.ndarray:
        """Q(s, .) [B, A] for observations [B, *obs_shape]."""
        with torch.no_grad():
            x = torch.as_tensor(np.asarray(obs, np.float32), device=self.config.device)
            return self.q_net(x).cpu().numpy()

    def predict(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Actions [B] (int64) for observations [B, *obs_shape]; greedy, or epsilon-greedy."""
        obs = np.asarray(obs, np.float32)
        if obs.shape[1:] != self.obs_shape:
            raise ValueError(
                f"predict wants observations [B, *{self.obs_shape}], got {list(obs.shape)}"
            )
        actions = self.q_values(obs).argmax(axis=1)
        if not deterministic:
            explore = self.predict_rng.random(len(actions)) < self.epsilon
            random_actions = self.predict_rng.integers(0, self.num_actions, len(actions))
            actions = np.where(explore, random_actions, actions)
        return actions.astype(np.int64)

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Step 4: epsilon-greedy with the training generator."""
        if self.rng.random() < self.epsilon:
            return np.int64(self.rng.integers(self.num_actions))
        return np.int64(self.q_values(obs[None])[0].argmax())

    # ------------------------------------------------------------ learning
    def update(self, batch: dict[str, np.ndarray]) -> dict[str, float]:
        """Steps 7-9 on one minibatch."""
        c = self.config
        batch = {k: torch.as_tensor(v, device=c.device) for k, v in batch.items()}
        target = td_target(
            self.q_net,
            self.target_net,
            batch["reward"],
            batch["next_obs"],
            batch["terminated"],
            c.gamma,
            c.double_q,
        )
        q = self.q_net(batch["obs"]).gather(1, batch["action"][:, None]).squeeze(1)
        loss = F.smooth_l1_loss(q, target) if c.loss is Loss.HUBER else F.mse_loss(q, target)
        self.optimizer.zero_grad()
        loss.backward()
        if c.max_grad_norm > 0:
            nn.utils.clip_grad_norm_(self.q_net.parameters(), c.max_grad_norm)
        self.optimizer.step()
        self.counters["updates"] += 1
        return {
            "losses/td_loss": loss.detach(),
            "losses/q_values": q.detach().mean(),
            "charts/epsilon": self.epsilon,
        }

    def after_step(self, step: int) -> None:
        """Step 10, every target_network_frequency environment steps."""
        if step % self.config.target_network_frequency == 0:
            self.update_target()

    def update_target(self) -> None:
        """Step 10: Polyak average (tau = 1 is a copy)."""
        with torch.no_grad():
            for target, online in zip(self.target_net.parameters(), self.q_net.parameters()):
                target.lerp_(online, self.config.tau)

    def learn(self, total_steps: int | None = None) -> dict[str, float]:
        """Train until the step counter reaches ``total_steps``; returns the last evaluation."""
        metrics = train_off_policy(self, total_steps)
        return {k: v for k, v in metrics.items() if k.startswith("eval/")}

    # ------------------------------------------------------------ checkpoints
    def parts(self, training: bool = False) -> dict[str, Any]:
        parts = {"q_net": self.q_net, "target_net": self.target_net, "optimizer": self.optimizer}
        if training:
            parts |= training_parts(self) | {"predict_rng": RngStates(self.predict_rng)}
        return parts

    @staticmethod
    def upgrade(payload: dict) -> dict:
        """A ``mbrl.dqn/1`` file (flat keys, its own environment) in this version's layout."""
        if "state" in payload:
            return payload
        keys = ("q_net", "target_net", "optimizer", "replay")
        state = {k: payload[k] for k in keys}
        torch_rng = payload["torch_rng"]
        state["rng"] = {"numpy": payload["rng"], "torch": torch_rng}
        state["predict_rng"] = {"numpy": payload["predict_rng"], "torch": torch_rng}
        state["collector"] = {"env": payload["env"], "obs": payload["obs"]}
        return {**payload, "training": True, "state": state}
