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
A run lives in ``runs/dqn-<env>-<time>/``: ``config.json``, ``progress.csv``,
TensorBoard events and ``checkpoints/latest.pt`` (networks, optimiser, replay buffer,
RNG states, counters and the environment with its episode in progress, pickled), so a
killed run resumes from its last checkpoint exactly as if it had never stopped. An
environment that cannot be pickled starts a new episode on resume instead.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
import tyro
from rich.console import Console
from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
from torch import Tensor, nn

from mbrl.training.envs import check_env_id, evaluate
from mbrl.training.logger import Logger, RunProgress
from mbrl.training.nets import mlp
from mbrl.training.runs import (
    atomic_save,
    config_from_json,
    config_to_json,
    load_checkpoint,
    new_run_dir,
)

__all__ = ["DQN", "DQNConfig", "Loss", "ReplayBuffer", "linear_schedule", "td_target"]

CHECKPOINT_FORMAT = "mbrl.dqn/1"


class Loss(Enum):
    HUBER = "huber"
    """Smooth L1 (Mnih et al. 2015 clip the TD error to [-1, 1], the same gradient)."""
    MSE = "mse"
    """Squared TD error (CleanRL's choice)."""


@dataclass(frozen=True, kw_only=True)
class DQNConfig:
    env: str = "CartPole-v1"
    """Gymnasium id of an environment with a Discrete action space and Box observations."""
    total_steps: int = 50_000
    """Environment steps to train for (CartPole-v1: 5e4; Atari: 1e7)."""
    seed: int = 0
    """Seed of the networks, exploration, replay sampling and environment."""
    run_dir: str = "runs"
    """Folder under which the run folder ``dqn-<env>-<time>`` is made."""
    learning_rate: float = 5e-4
    """Adam learning rate; 1e-4 (Atari) to 1e-3 (the Zoo's 2.3e-3 was unstable here)."""
    buffer_size: int = 100_000
    """Transitions kept in the replay buffer (oldest dropped first); 1e4-1e6."""
    gamma: float = 0.99
    """Discount factor; 0.9-0.999."""
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
    eval_every: int = 5_000
    """Environment steps between greedy evaluations; 0 evaluates only at the end."""
    eval_episodes: int = 10
    """Episodes per evaluation (seeded, deterministic policy); 5-100."""
    checkpoint_every: int = 10_000
    """Environment steps between checkpoints (one is always written at the end)."""
    log_every: int = 1_000
    """Environment steps between rows of progress.csv."""
    device: str = "cpu"
    """Torch device of the networks (cpu or cuda)."""

    def __post_init__(self):
        positive = (
            "total_steps",
            "buffer_size",
            "target_network_frequency",
            "batch_size",
            "train_frequency",
            "gradient_steps",
            "eval_episodes",
            "checkpoint_every",
            "log_every",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"DQN config: {name} must be >= 1, got {getattr(self, name)}")
        for name in ("learning_starts", "eval_every", "seed", "max_grad_norm"):
            if getattr(self, name) < 0:
                raise ValueError(f"DQN config: {name} must be >= 0, got {getattr(self, name)}")
        if self.learning_starts >= self.total_steps:
            raise ValueError(
                f"DQN config: learning_starts ({self.learning_starts}) must be < total_steps "
                f"({self.total_steps}): no update would happen"
            )
        if not self.learning_rate > 0:
            raise ValueError(f"DQN config: learning_rate must be > 0, got {self.learning_rate}")
        if not 0 <= self.gamma < 1:
            raise ValueError(f"DQN config: gamma must be in [0, 1), got {self.gamma}")
        if not 0 < self.tau <= 1:
            raise ValueError(f"DQN config: tau must be in (0, 1], got {self.tau}")
        if not 0 <= self.start_epsilon <= 1:
            raise ValueError(
                f"DQN config: start_epsilon must be in [0, 1], got {self.start_epsilon}"
            )
        if not 0 <= self.end_epsilon <= self.start_epsilon:
            raise ValueError(
                f"DQN config: end_epsilon must be in [0, start_epsilon={self.start_epsilon}], "
                f"got {self.end_epsilon}"
            )
        if not 0 < self.exploration_fraction <= 1:
            raise ValueError(
                "DQN config: exploration_fraction must be in (0, 1], "
                f"got {self.exploration_fraction}"
            )
        if self.batch_size > self.buffer_size:
            raise ValueError(
                f"DQN config: batch_size ({self.batch_size}) must be <= buffer_size "
                f"({self.buffer_size})"
            )
        if not self.hidden_sizes or min(self.hidden_sizes) < 1:
            raise ValueError(f"DQN config: hidden_sizes must be positive, got {self.hidden_sizes}")
        if isinstance(self.loss, str):  # from JSON
            object.__setattr__(self, "loss", Loss(self.loss))
        object.__setattr__(self, "hidden_sizes", tuple(self.hidden_sizes))

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


class ReplayBuffer:
    """A preallocated numpy ring of transitions ``(obs, action, reward, next_obs, terminated)``."""

    def __init__(self, capacity: int, obs_shape: tuple[int, ...]):
        self.capacity = capacity
        self.obs = np.zeros((capacity, *obs_shape), np.float32)
        self.next_obs = np.zeros((capacity, *obs_shape), np.float32)
        self.action = np.zeros(capacity, np.int64)
        self.reward = np.zeros(capacity, np.float32)
        self.terminated = np.zeros(capacity, np.float32)
        self.pos = 0
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(self, obs, action: int, reward: float, next_obs, terminated: bool) -> None:
        i = self.pos
        self.obs[i], self.next_obs[i] = obs, next_obs
        self.action[i], self.reward[i], self.terminated[i] = action, reward, terminated
        self.pos = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """``batch_size`` transitions drawn uniformly with replacement, each field [B, ...]."""
        index = rng.integers(0, self.size, size=batch_size)
        return {name: getattr(self, name)[index] for name in self._fields}

    _fields = ("obs", "action", "reward", "next_obs", "terminated")

    def state_dict(self) -> dict:
        """The filled part only (a checkpoint holds no empty slots)."""
        out = {name: getattr(self, name)[: self.size].copy() for name in self._fields}
        return {**out, "pos": self.pos, "size": self.size, "capacity": self.capacity}

    def load_state_dict(self, state: dict) -> None:
        if state["capacity"] != self.capacity:
            raise ValueError(
                f"replay buffer capacity {state['capacity']} in the checkpoint, "
                f"{self.capacity} in the config"
            )
        self.pos, self.size = int(state["pos"]), int(state["size"])
        for name in self._fields:
            getattr(self, name)[: self.size] = state[name]


def _check_spaces(env: gym.Env, env_id: str) -> None:
    if not isinstance(env.action_space, gym.spaces.Discrete):
        raise ValueError(
            f"DQN needs a Discrete action space; {env_id} has {env.action_space} "
            "(use SAC, TD3 or DDPG for continuous actions)"
        )
    if not isinstance(env.observation_space, gym.spaces.Box):
        raise ValueError(f"DQN needs Box observations; {env_id} has {env.observation_space}")


def _pickled(env: gym.Env) -> bytes | None:
    """The environment with its episode in progress, or None where it cannot be pickled."""
    try:
        return pickle.dumps(env)
    except Exception:  # e.g. a simulator handle; resume then starts a new episode
        return None


# ------------------------------------------------------------------ agent


class DQN:
    """Double DQN on one gymnasium environment; ``learn()`` runs (or continues) training."""

    Config = DQNConfig

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
        self.config = config
        self.console = console or Console(quiet=True)
        self.env = gym.wrappers.RecordEpisodeStatistics(gym.make(env))
        _check_spaces(self.env, env)
        obs_shape = self.env.observation_space.shape
        self.num_actions = int(self.env.action_space.n)
        obs_dim = int(np.prod(obs_shape))
        sizes = [obs_dim, *config.hidden_sizes, self.num_actions]
        with torch.random.fork_rng(devices=[]):  # seed the init, leave the global RNG alone
            torch.manual_seed(config.seed)
            self.q_net = nn.Sequential(nn.Flatten(), mlp(sizes, nn.ReLU)).to(config.device)
            self.target_net = nn.Sequential(nn.Flatten(), mlp(sizes, nn.ReLU)).to(config.device)
        self.target_net.load_state_dict(self.q_net.state_dict())
        self.optimizer = torch.optim.Adam(self.q_net.parameters(), lr=config.learning_rate)
        self.replay = ReplayBuffer(config.buffer_size, obs_shape)
        self.rng = np.random.default_rng(config.seed)
        self.predict_rng = np.random.default_rng(config.seed + 1)
        self.counters = {"global_step": 0, "episodes": 0, "gradient_steps": 0, "seconds": 0.0}
        self.run_dir = Path(run_dir) if run_dir else new_run_dir(config.run_dir, "dqn", env)
        self.logger: Logger | None = None
        self._obs: np.ndarray | None = None  # the observation of the episode in progress
        self._episodes: list[tuple[float, int]] = []  # (return, length) not logged yet

    # ------------------------------------------------------------ acting
    @property
    def epsilon(self) -> float:
        c = self.config
        return linear_schedule(
            c.start_epsilon, c.end_epsilon, c.exploration_steps, self.counters["global_step"]
        )

    def q_values(self, obs: np.ndarray) -> np.ndarray:
        """Q(s, .) [B, A] for observations [B, *obs_shape]."""
        with torch.no_grad():
            x = torch.as_tensor(np.asarray(obs, np.float32), device=self.config.device)
            return self.q_net(x).cpu().numpy()

    def predict(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Actions [B] (int64) for observations [B, *obs_shape]; greedy, or epsilon-greedy."""
        obs = np.asarray(obs, np.float32)
        obs_shape = self.env.observation_space.shape
        if obs.shape[1:] != obs_shape:
            raise ValueError(f"predict wants observations [B, *{obs_shape}], got {list(obs.shape)}")
        actions = self.q_values(obs).argmax(axis=1)
        if not deterministic:
            explore = self.predict_rng.random(len(actions)) < self.epsilon
            random_actions = self.predict_rng.integers(0, self.num_actions, len(actions))
            actions = np.where(explore, random_actions, actions)
        return actions.astype(np.int64)

    def _act(self, obs: np.ndarray) -> int:
        """Step 4: epsilon-greedy with the training generator."""
        if self.rng.random() < self.epsilon:
            return int(self.rng.integers(self.num_actions))
        return int(self.q_values(obs[None])[0].argmax())

    # ------------------------------------------------------------ learning
    def train_step(self) -> dict[str, float]:
        """Steps 7-9 on one minibatch."""
        c = self.config
        batch = {
            k: torch.as_tensor(v, device=c.device)
            for k, v in self.replay.sample(c.batch_size, self.rng).items()
        }
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
        self.counters["gradient_steps"] += 1
        return {"losses/td_loss": loss.item(), "losses/q_values": q.mean().item()}

    def update_target(self) -> None:
        """Step 10: Polyak average (tau = 1 is a copy)."""
        with torch.no_grad():
            for target, online in zip(self.target_net.parameters(), self.q_net.parameters()):
                target.lerp_(online, self.config.tau)

    def evaluate(self, num_episodes: int | None = None) -> dict[str, float]:
        """Greedy returns on seeded episodes (separate from the training episodes)."""
        returns = evaluate(
            self.config.env,
            self.predict,
            num_episodes or self.config.eval_episodes,
            seed=10_000 + self.config.seed,
        )
        return {"eval/mean_return": float(returns.mean()), "eval/std_return": float(returns.std())}

    def learn(self, total_steps: int | None = None) -> dict[str, float]:
        """Train until the step counter reaches ``total_steps``; returns the last evaluation."""
        c = self.config
        total_steps = c.total_steps if total_steps is None else total_steps
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "config.json").write_text(json.dumps(config_to_json(c), indent=2))
        self.logger = Logger(self.run_dir, self.console)
        self.logger.truncate_after(self.counters["global_step"])
        if self._obs is None:
            self._obs, _ = self.env.reset(seed=int(self.rng.integers(2**31)))
        start_step, start_seconds = self.counters["global_step"], self.counters["seconds"]
        started = time.perf_counter()
        train_metrics: dict[str, float] = {}
        last_eval: dict[str, float] = {}
        with RunProgress(
            TextColumn(f"[bold]dqn {c.env}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} steps"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
            console=self.console,
        ) as progress:
            task = progress.add_task("train", total=total_steps, completed=start_step, status="")
            while self.counters["global_step"] < total_steps:
                episode = self._env_step()  # steps 3-5
                if episode is not None:
                    self._episodes.append(episode)
                step = self.counters["global_step"]
                if step > c.learning_starts and step % c.train_frequency == 0:
                    for _ in range(c.gradient_steps):  # steps 6-9
                        train_metrics = self.train_step()
                if step % c.target_network_frequency == 0:
                    self.update_target()  # step 10
                evaluate_now = c.eval_every and step % c.eval_every == 0
                if evaluate_now or step % c.log_every == 0 or step == total_steps:
                    seconds = time.perf_counter() - started
                    self.counters["seconds"] = start_seconds + seconds
                    sps = (step - start_step) / max(seconds, 1e-9)
                    metrics = self._metrics(train_metrics, sps)
                    if evaluate_now or step == total_steps:  # step 11
                        last_eval = self.evaluate()
                        metrics.update(last_eval)
                    self.logger.log(step, metrics, show=False)
                    status = "  ".join(
                        f"{k.split('/')[-1]} {v:.3g}"
                        for k, v in metrics.items()
                        if k in ("charts/episodic_return", "eval/mean_return")
                    )
                    progress.update(task, completed=step, status=status)
                if step % c.checkpoint_every == 0:
                    self.save()
        self.counters["seconds"] = start_seconds + time.perf_counter() - started
        self.save()
        self.logger.close()
        return last_eval

    def _metrics(self, train_metrics: dict[str, float], sps: float) -> dict[str, float]:
        """A progress.csv row: the last losses, epsilon, SPS and the episodes since the last."""
        metrics = {**train_metrics, "charts/epsilon": self.epsilon, "charts/SPS": sps}
        if self._episodes:
            returns, lengths = np.array(self._episodes).T
            metrics["charts/episodic_return"] = float(returns.mean())
            metrics["charts/episodic_length"] = float(lengths.mean())
            self._episodes = []
        return metrics

    def _env_step(self) -> tuple[float, int] | None:
        """Act, step, store; returns (return, length) when an episode ended."""
        obs = self._obs
        action = self._act(obs)
        next_obs, reward, terminated, truncated, info = self.env.step(action)
        self.replay.add(obs, action, float(reward), next_obs, bool(terminated))
        self.counters["global_step"] += 1
        if terminated or truncated:
            self.counters["episodes"] += 1
            self._obs, _ = self.env.reset()
            return float(info["episode"]["r"]), int(info["episode"]["l"])
        self._obs = next_obs
        return None

    # ------------------------------------------------------------ checkpoints
    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoints" / "latest.pt"

    def save(self, path: str | Path | None = None) -> Path:
        """Write the full training state atomically (default: ``checkpoints/latest.pt``)."""
        payload = {
            "format": CHECKPOINT_FORMAT,
            "config": config_to_json(self.config),
            "q_net": self.q_net.state_dict(),
            "target_net": self.target_net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "replay": self.replay.state_dict(),
            "rng": self.rng.bit_generator.state,
            "predict_rng": self.predict_rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "counters": dict(self.counters),
            "episodes": list(self._episodes),
            "obs": self._obs,
            "env": _pickled(self.env),
        }
        return atomic_save(payload, path or self.checkpoint_path)

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        run_dir: str | Path | None = None,
        console: Console | None = None,
    ) -> DQN:
        """An agent with the full state of a checkpoint file (or a run folder's latest)."""
        path = Path(path)
        if path.is_dir():
            path = path / "checkpoints" / "latest.pt"
        payload = load_checkpoint(path, CHECKPOINT_FORMAT)
        config = config_from_json(DQNConfig, payload["config"])
        if run_dir is None and path.parent.name == "checkpoints":
            run_dir = path.parent.parent
        agent = cls(config.env, config, run_dir=run_dir, console=console)
        agent.q_net.load_state_dict(payload["q_net"])
        agent.target_net.load_state_dict(payload["target_net"])
        agent.optimizer.load_state_dict(payload["optimizer"])
        agent.replay.load_state_dict(payload["replay"])
        agent.rng.bit_generator.state = payload["rng"]
        agent.predict_rng.bit_generator.state = payload["predict_rng"]
        torch.set_rng_state(payload["torch_rng"])
        agent.counters = dict(payload["counters"])
        agent._episodes = list(payload["episodes"])
        if payload["env"] is not None and payload["obs"] is not None:
            agent.env.close()
            agent.env, agent._obs = pickle.loads(payload["env"]), payload["obs"]
        return agent

    @classmethod
    def resume(cls, run_dir: str | Path, console: Console | None = None) -> DQN:
        """Continue a run from ``run_dir/checkpoints/latest.pt``."""
        run_dir = Path(run_dir)
        return cls.load(run_dir / "checkpoints" / "latest.pt", run_dir=run_dir, console=console)
