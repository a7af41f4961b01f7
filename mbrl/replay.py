"""The pieces DDPG, TD3 and SAC share: replay buffer, critics, actors, soft updates, the model hook.

- :class:`ReplayBuffer` keeps transitions ``(obs, action, reward, next_obs, terminated)``
  in preallocated numpy arrays (torch views for sampling); ``terminated`` is the
  MDP's terminal flag only, so targets bootstrap through time limits.
- :class:`EnsembleQ` is E critics in one module: every layer is one batched
  matmul ``[E, B, in] x [E, in, out]`` (``torch.baddbmm``), not E separate MLPs.
- :class:`DeterministicActor` (DDPG, TD3) and :class:`SquashedGaussianActor` (SAC).
- :func:`soft_update` is Polyak averaging of target networks.
- :class:`ModelHook` is the seam through which model-based agents (MVE, MBPO)
  plug a learned model into an unchanged off-policy agent.
- :class:`Collector` steps one gymnasium environment and fills the replay buffer;
  :class:`RunLog` holds a run's logger and progress bar.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from torch import Tensor, nn

from mbrl.envs import check_env_id, make_env
from mbrl.logger import Logger, RunProgress
from mbrl.runs import atomic_save, config_to_json, load_checkpoint

__all__ = [
    "Batch",
    "Collector",
    "DeterministicActor",
    "EnsembleQ",
    "ModelHook",
    "ReplayBuffer",
    "ReplayOnly",
    "RngStates",
    "RunLog",
    "SquashedGaussianActor",
    "check_continuous_env",
    "config_from_json",
    "frozen",
    "load_agent",
    "make_adam",
    "pack_state",
    "resume_agent",
    "rng_parts",
    "save_agent",
    "soft_update",
    "status_line",
    "train_off_policy",
    "unpack_state",
    "validate_offpolicy_config",
]


# ------------------------------------------------------------------ replay buffer
@dataclass(frozen=True)
class Batch:
    """A minibatch of transitions, all torch tensors with leading dimension B.

    obs ``[B, *obs_shape]``, action ``[B, A]``, reward ``[B]``, next_obs
    ``[B, *obs_shape]`` (the true next observation, also at a time limit),
    terminated ``[B]`` float (1.0 only where the MDP ended: no bootstrap).
    """

    obs: Tensor
    action: Tensor
    reward: Tensor
    next_obs: Tensor
    terminated: Tensor

    def __len__(self) -> int:
        return self.reward.shape[0]

    def to(self, device: str | torch.device) -> Batch:
        return Batch(*(getattr(self, f.name).to(device) for f in dataclasses.fields(self)))


class ReplayBuffer:
    """A ring buffer of ``capacity`` transitions in preallocated float32 arrays.

    Adding past ``capacity`` overwrites the oldest transitions. ``sample`` draws
    uniformly with replacement from the stored ones.
    """

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], action_dim: int):
        if capacity < 1:
            raise ValueError(f"ReplayBuffer capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.obs = np.zeros((capacity, *obs_shape), np.float32)
        self.next_obs = np.zeros((capacity, *obs_shape), np.float32)
        self.action = np.zeros((capacity, action_dim), np.float32)
        self.reward = np.zeros(capacity, np.float32)
        self.terminated = np.zeros(capacity, np.float32)
        self.pos = 0  # where the next transition goes
        self.size = 0  # how many are stored
        # Zero-copy torch views: sampling is one index_select per field.
        self._views = [torch.from_numpy(a) for a in self._arrays()]

    def _arrays(self) -> list[np.ndarray]:
        return [self.obs, self.action, self.reward, self.next_obs, self.terminated]

    def __len__(self) -> int:
        return self.size

    def add(self, obs, action, reward, next_obs, terminated) -> None:
        """Store N transitions: obs ``[N, *obs_shape]``, action ``[N, A]``, reward ``[N]`` ..."""
        n = len(reward)
        if n > self.capacity:  # only the newest `capacity` survive
            obs, action, reward, next_obs, terminated = (
                np.asarray(x)[-self.capacity :] for x in (obs, action, reward, next_obs, terminated)
            )
            self.pos = (self.pos + n - self.capacity) % self.capacity
            n = self.capacity
        if self.pos + n <= self.capacity:
            index = slice(self.pos, self.pos + n)  # the common case: a view, no gather
        else:
            index = (self.pos + np.arange(n)) % self.capacity
        for array, values in zip(self._arrays(), (obs, action, reward, next_obs, terminated)):
            array[index] = values
        self.pos = int((self.pos + n) % self.capacity)
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int, rng: np.random.Generator) -> Batch:
        """``batch_size`` transitions drawn uniformly (with replacement)."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        index = torch.from_numpy(rng.integers(0, self.size, size=batch_size))
        return Batch(*(view.index_select(0, index) for view in self._views))

    def state_dict(self) -> dict:
        """The stored transitions only (not the empty tail), with the write position."""
        names = ["obs", "action", "reward", "next_obs", "terminated"]
        arrays = {name: a[: self.size].copy() for name, a in zip(names, self._arrays())}
        return {"capacity": self.capacity, "pos": self.pos, "size": self.size, **arrays}

    def load_state_dict(self, state: dict) -> None:
        if state["capacity"] != self.capacity:
            raise ValueError(
                f"replay capacity {state['capacity']} in the checkpoint, {self.capacity} here"
            )
        size = state["size"]
        for name, array in zip(
            ["obs", "action", "reward", "next_obs", "terminated"], self._arrays()
        ):
            if state[name].shape[1:] != array.shape[1:]:
                raise ValueError(f"replay field {name} has shape {state[name].shape[1:]} here")
            array[:size] = state[name]
        self.pos, self.size = state["pos"], size


# --------------------------------------------------------------------- model hook
@runtime_checkable
class ModelHook(Protocol):
    """Where a learned model plugs into DDPG, TD3 or SAC without changing them.

    An agent given ``model_hook=`` calls it at three points of its loop:

    - ``on_transitions(batch)`` after every real environment step, with that
      transition as a Batch of size 1 (e.g. to add it to the model's training
      data and fit the model every so often).
    - ``sample(replay, batch_size, rng) -> Batch`` for every gradient step's
      minibatch (MBPO: mix real transitions from ``replay`` with imagined ones;
      the default is ``replay.sample(batch_size, rng)``).
    - ``q_target(batch, agent) -> Tensor [B] | None`` inside the critic update
      (MVE: an H-step model-based target ``sum_h gamma^h r_h + gamma^H V(s_H)``,
      using ``agent.next_value(obs [B, ...]) -> [B]`` for the bootstrap value
      V(s_H) under the agent's target networks, and ``agent.config.gamma``;
      None: the agent's own one-step TD target). The agent treats it as a
      constant (no gradient flows through it).

    Agents do not checkpoint the hook; a hook with state saves it itself.
    """

    def on_transitions(self, batch: Batch) -> None: ...

    def sample(self, replay: ReplayBuffer, batch_size: int, rng: np.random.Generator) -> Batch: ...

    def q_target(self, batch: Batch, agent: Any) -> Tensor | None: ...


class ReplayOnly:
    """The model-free behaviour: no model, real minibatches, the agent's own TD target."""

    def on_transitions(self, batch: Batch) -> None:
        pass

    def sample(self, replay: ReplayBuffer, batch_size: int, rng: np.random.Generator) -> Batch:
        return replay.sample(batch_size, rng)

    def q_target(self, batch: Batch, agent: Any) -> Tensor | None:
        return None


# ----------------------------------------------------------------------- networks
def _linear_init_(weight: Tensor, bias: Tensor, fan_in: int) -> None:
    """``nn.Linear``'s default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias."""
    bound = 1.0 / math.sqrt(fan_in)
    nn.init.uniform_(weight, -bound, bound)
    nn.init.uniform_(bias, -bound, bound)


class EnsembleQ(nn.Module):
    """E independent Q networks Q_e(obs, action), evaluated together.

    Layer l holds ``weight [E, in, out]`` and ``bias [E, 1, out]``; a forward is
    one ``torch.baddbmm`` per layer over all members, ReLU between layers.
    Input obs ``[B, *obs_shape]``, action ``[B, A]``; output ``[E, B]``.
    """

    def __init__(self, obs_dim: int, action_dim: int, hidden_sizes: Sequence[int], num_members=2):
        super().__init__()
        self.num_members = num_members
        sizes = [obs_dim + action_dim, *hidden_sizes, 1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in itertools.pairwise(sizes):
            weight = nn.Parameter(torch.empty(num_members, fan_in, fan_out))
            bias = nn.Parameter(torch.empty(num_members, 1, fan_out))
            _linear_init_(weight, bias, fan_in)
            self.weights.append(weight)
            self.biases.append(bias)

    def forward(self, obs: Tensor, action: Tensor, members: slice | None = None) -> Tensor:
        """Q values ``[E, B]`` (``[len(members), B]`` for a slice of the members)."""
        x = torch.cat([obs.flatten(1), action], dim=1)  # [B, in]
        pick = members if members is not None else slice(None)
        weights = [w[pick] for w in self.weights]
        biases = [b[pick] for b in self.biases]
        x = x.expand(weights[0].shape[0], *x.shape)  # [E, B, in], no copy
        for weight, bias in zip(weights[:-1], biases[:-1]):
            x = torch.baddbmm(bias, x, weight).relu_()  # relu(bias + x @ weight): [E, B, out]
        # The output layer (out = 1) as a product and a sum: the same numbers, but
        # several times faster on the CPU than a batched matmul with one column.
        weight, bias = weights[-1], biases[-1]
        return (x * weight.transpose(1, 2)).sum(-1) + bias.squeeze(-1)


def _relu_mlp(sizes: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class _ActionScale(nn.Module):
    """Maps [-1, 1] to the Box [low, high]: ``action = scale * u + bias``."""

    def __init__(self, low: np.ndarray, high: np.ndarray):
        super().__init__()
        low_t, high_t = (
            torch.as_tensor(low, dtype=torch.float32),
            torch.as_tensor(high, dtype=torch.float32),
        )
        self.register_buffer("action_scale", (high_t - low_t) / 2)
        self.register_buffer("action_bias", (high_t + low_t) / 2)


class DeterministicActor(nn.Module):
    """mu(obs) = scale * tanh(MLP(obs)) + bias: obs ``[B, *obs_shape]`` -> action ``[B, A]``."""

    def __init__(
        self, obs_dim: int, low: np.ndarray, high: np.ndarray, hidden_sizes: Sequence[int]
    ):
        super().__init__()
        self.net = _relu_mlp([obs_dim, *hidden_sizes, len(low)])
        self.scale = _ActionScale(low, high)

    def forward(self, obs: Tensor) -> Tensor:
        unit = torch.tanh(self.net(obs.flatten(1)))
        return unit * self.scale.action_scale + self.scale.action_bias


LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # SB3 and Spinning Up


class SquashedGaussianActor(nn.Module):
    """pi(a|s): u ~ N(mu(s), sigma(s)), a = scale * tanh(u) + bias (Haarnoja et al. 2018, App. C).

    ``forward(obs [B, ...], generator)`` returns ``action [B, A]`` (reparameterised,
    differentiable) and ``log_prob [B]``, the log density of tanh(u) in [-1, 1]^A
    (the SB3 convention: the constant log-scale of the Box is left out, so the
    entropy target -A means the same in every Box).
    """

    def __init__(
        self, obs_dim: int, low: np.ndarray, high: np.ndarray, hidden_sizes: Sequence[int]
    ):
        super().__init__()
        action_dim = len(low)
        self.trunk = nn.Sequential(_relu_mlp([obs_dim, *hidden_sizes]), nn.ReLU())
        self.mean = nn.Linear(hidden_sizes[-1], action_dim)
        self.log_std = nn.Linear(hidden_sizes[-1], action_dim)
        self.scale = _ActionScale(low, high)

    def _to_box(self, unit: Tensor) -> Tensor:
        return unit * self.scale.action_scale + self.scale.action_bias

    def deterministic(self, obs: Tensor) -> Tensor:
        """The mode's image scale * tanh(mu(s)) + bias, ``[B, A]``."""
        return self._to_box(torch.tanh(self.mean(self.trunk(obs.flatten(1)))))

    def forward(
        self, obs: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        latent = self.trunk(obs.flatten(1))
        mean = self.mean(latent)
        log_std = self.log_std(latent).clamp(LOG_STD_MIN, LOG_STD_MAX)
        std = log_std.exp()
        noise = torch.randn(mean.shape, generator=generator, device=mean.device)
        u = mean + std * noise
        # log N(u; mu, sigma) - sum log(1 - tanh(u)^2), the latter in the stable form
        # 2 (log 2 - u - softplus(-2u)) (Spinning Up).
        gaussian = (-0.5 * noise.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        squash = (2 * (math.log(2) - u - nn.functional.softplus(-2 * u))).sum(-1)
        return self._to_box(torch.tanh(u)), gaussian - squash


@torch.no_grad()
def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging, theta_target <- (1 - tau) theta_target + tau theta_source."""
    targets = [p for p in target.parameters()]
    sources = [p for p in source.parameters()]
    torch._foreach_lerp_(targets, sources, tau)


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """No parameter gradients for ``module`` inside the block (the actor loss through Q)."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def make_adam(params, lr: float) -> torch.optim.Adam:
    """Adam with the fused kernel where this torch build has it (one kernel for all tensors)."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr, foreach=True)


# ------------------------------------------------------------- env and config checks
def check_continuous_env(env_id: str, algo: str) -> tuple[gym.spaces.Box, gym.spaces.Box]:
    """(observation space, action space) of ``env_id``; clear errors for unusable spaces."""
    check_env_id(env_id)
    env = gym.make(env_id)
    obs_space, action_space = env.observation_space, env.action_space
    env.close()
    if not isinstance(action_space, gym.spaces.Box):
        raise ValueError(
            f"{algo} needs a continuous (Box) action space; {env_id} has {action_space}"
        )
    if len(action_space.shape) != 1:
        raise ValueError(f"{algo} needs a 1-D Box action space; {env_id} has {action_space}")
    if not (np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high))):
        raise ValueError(f"{algo} needs finite action bounds; {env_id} has {action_space}")
    if not isinstance(obs_space, gym.spaces.Box):
        raise ValueError(f"{algo} needs a Box observation space; {env_id} has {obs_space}")
    return obs_space, action_space


def validate_offpolicy_config(config: Any) -> None:
    """The checks every off-policy config shares; messages name the config and field."""
    name = type(config).__qualname__
    for field in ["total_steps", "buffer_size", "batch_size", "eval_every", "eval_episodes"]:
        if getattr(config, field) < 1:
            raise ValueError(f"{name}.{field} must be >= 1, got {getattr(config, field)}")
    for field in ["checkpoint_every", "log_every"]:
        if getattr(config, field) < 1:
            raise ValueError(f"{name}.{field} must be >= 1, got {getattr(config, field)}")
    if config.learning_starts < 0:
        raise ValueError(f"{name}.learning_starts must be >= 0, got {config.learning_starts}")
    if config.batch_size > config.buffer_size:
        raise ValueError(
            f"{name}.batch_size ({config.batch_size}) must be <= buffer_size ({config.buffer_size})"
        )
    if not 0.0 <= config.gamma <= 1.0:
        raise ValueError(f"{name}.gamma must be in [0, 1], got {config.gamma}")
    if not 0.0 < config.tau <= 1.0:
        raise ValueError(f"{name}.tau must be in (0, 1], got {config.tau}")
    if not config.hidden_sizes or min(config.hidden_sizes) < 1:
        raise ValueError(f"{name}.hidden_sizes must be positive sizes, got {config.hidden_sizes}")
    for field in [f.name for f in dataclasses.fields(config) if f.name.endswith("_lr")]:
        if not getattr(config, field) > 0:
            raise ValueError(f"{name}.{field} must be > 0, got {getattr(config, field)}")
    check_env_id(config.env)


# ---------------------------------------------------------------- env interaction
class Collector:
    """One environment feeding a replay buffer (the acting steps of every off-policy loop).

    ``step(action)`` stores ``(obs, action, reward, next_obs, terminated)`` with the
    true final observation, calls the hook, resets at the end of an episode and
    returns the finished episode's return and length (else an empty dict).
    """

    def __init__(self, env_id: str, seed: int, replay: ReplayBuffer, hook: ModelHook):
        self.env = make_env(env_id)
        self.replay, self.hook = replay, hook
        self.obs, _ = self.env.reset(seed=seed)
        self.env.action_space.seed(seed)

    def random_action(self) -> np.ndarray:
        return self.env.action_space.sample()

    def step(self, action: np.ndarray) -> dict[str, float]:
        next_obs, reward, terminated, truncated, info = self.env.step(action)
        row = (self.obs[None], action[None], np.array([reward]), next_obs[None], [terminated])
        self.replay.add(*row)
        if type(self.hook) is not ReplayOnly:  # the default hook ignores them: skip the copies
            self.hook.on_transitions(
                Batch(*(torch.as_tensor(np.asarray(x), dtype=torch.float32) for x in row))
            )
        if terminated or truncated:
            self.obs, _ = self.env.reset()
            return {
                "charts/episodic_return": float(info["episode"]["r"]),
                "charts/episodic_length": float(info["episode"]["l"]),
            }
        self.obs = next_obs
        return {}

    def state_dict(self) -> dict:
        """RNG states of the environment and its action space.

        Environment internals (e.g. MuJoCo positions) are not portable, so a resumed
        run starts a fresh episode from these RNG states.
        """
        return {
            "env_rng": self.env.unwrapped.np_random.bit_generator.state,
            "action_rng": self.env.action_space.np_random.bit_generator.state,
        }

    def load_state_dict(self, state: dict) -> None:
        self.env.unwrapped.np_random.bit_generator.state = state["env_rng"]
        self.obs, _ = self.env.reset()
        self.env.action_space.np_random.bit_generator.state = state["action_rng"]

    def close(self) -> None:
        self.env.close()


class RunLog:
    """The run folder, logger and progress bar of one ``learn`` call (a context manager)."""

    def __init__(
        self, algo: str, config: Any, run_dir: Path, console: Console, start: int, total: int
    ):
        self.algo, self.config, self.run_dir, self.console = algo, config, run_dir, console
        self.start, self.total = start, total

    def __enter__(self) -> RunLog:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "config.json").write_text(json.dumps(config_to_json(self.config), indent=2))
        self.logger = Logger(self.run_dir, self.console)
        self.logger.truncate_after(self.start)
        self.progress = RunProgress(
            TextColumn(f"[bold]{self.algo} {self.config.env}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
            console=self.console,
        )
        self.progress.__enter__()
        self.task = self.progress.add_task(
            "train", total=self.total, completed=self.start, status=""
        )
        self._window = (self.start, time.perf_counter())
        return self

    def log(self, step: int, metrics: dict[str, float | Tensor]) -> dict[str, float]:
        """Log ``metrics`` (tensors converted here, not in the hot loop) at ``step``."""
        values = {k: float(v) for k, v in metrics.items()}
        self.logger.log(step, values, show=False)
        return values

    def speed(self, step: int) -> float:
        """Environment steps per second (updates included) since the last call."""
        last_step, last_time = self._window
        now = time.perf_counter()
        self._window = (step, now)
        return (step - last_step) / max(now - last_time, 1e-9)

    def show(self, step: int, status: str = "") -> None:
        self.progress.update(self.task, completed=step, status=status)

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)
        self.logger.close()


# -------------------------------------------------------------------- checkpoints
class RngStates:
    """numpy Generator, torch Generator and torch's global RNG as one ``state_dict``."""

    def __init__(self, rng: np.random.Generator, generator: torch.Generator):
        self.rng, self.generator = rng, generator

    def state_dict(self) -> dict:
        return {
            "numpy": self.rng.bit_generator.state,
            "generator": self.generator.get_state(),
            "torch": torch.get_rng_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["numpy"]
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch"])


def pack_state(parts: dict[str, Any]) -> dict:
    """``{name: state}`` of modules, optimisers, buffers (anything with ``state_dict``), tensors."""
    return {
        name: part.detach().clone() if isinstance(part, Tensor) else part.state_dict()
        for name, part in parts.items()
    }


def unpack_state(parts: dict[str, Any], states: dict, where: str) -> None:
    """Load :func:`pack_state`'s output back in place; a missing part names the checkpoint."""
    for name, part in parts.items():
        if name not in states:
            raise ValueError(f"checkpoint {where} has no {name!r}")
        if isinstance(part, Tensor):
            with torch.no_grad():
                part.copy_(states[name])
        else:
            part.load_state_dict(states[name])


def config_from_json(cls: type, data: dict) -> Any:
    """The inverse of ``config_to_json`` for the off-policy configs (lists back to tuples)."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{cls.__qualname__} has no fields {unknown}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def save_agent(agent: Any, path: str | Path, fmt: str, include_replay: bool) -> Path:
    """Write ``agent._parts()`` (and its replay buffer if asked), config, counters atomically."""
    parts = agent._parts() | ({"replay": agent.replay} if include_replay else {})
    payload = {
        "format": fmt,
        "config": config_to_json(agent.config),
        "counters": dict(agent.counters),
        "state": pack_state(parts),
    }
    return atomic_save(payload, path)


def load_agent(cls: type, path: str | Path, fmt: str, **kwargs) -> Any:
    """``cls`` rebuilt from its config in ``path``, then every saved part loaded in place."""
    payload = load_checkpoint(path, fmt)
    config = config_from_json(cls.Config, payload["config"])
    agent = cls(config.env, config, **kwargs)
    state = payload["state"]
    parts = agent._parts() | ({"replay": agent.replay} if "replay" in state else {})
    unpack_state(parts, state, str(path))
    agent.counters = dict(payload["counters"])
    return agent


def resume_agent(cls: type, run_dir: str | Path, fmt: str, **kwargs) -> Any:
    """``cls`` from ``run_dir/checkpoints/latest.pt``, which must hold the replay buffer."""
    run_dir = Path(run_dir)
    path = run_dir / "checkpoints" / "latest.pt"
    payload_agent = load_agent(cls, path, fmt, run_dir=run_dir, **kwargs)
    if payload_agent.replay.size == 0 and payload_agent.counters["env_steps"] > 0:
        raise ValueError(f"{path} has no replay buffer; it cannot be resumed")
    return payload_agent


def rng_parts(agent: Any) -> dict:
    """The checkpoint parts every off-policy agent has besides its networks and optimisers."""
    return {"rng": RngStates(agent.rng, agent.generator), "collector": agent.collector}


def status_line(metrics: dict[str, float]) -> str:
    """The progress bar's text: last training return and last evaluation."""
    keys = {"charts/episodic_return": "return", "eval/mean_return": "eval"}
    return "  ".join(f"{name} {metrics[k]:.1f}" for k, name in keys.items() if k in metrics)


def train_off_policy(agent: Any, algo: str, total_steps: int | None = None) -> dict[str, float]:
    """The training loop shared by DDPG, TD3 and SAC (their pseudocode lines 3-13).

    ``agent`` provides ``config``, ``counters``, ``collector``, ``replay``, ``hook``,
    ``rng``, ``device``, ``predict``, ``update(batch) -> losses``, ``evaluate()``,
    ``save(path, include_replay)``, ``checkpoint_path``, ``run_dir`` and ``console``.
    Trains until ``total_steps`` environment steps, counting steps already done.
    """
    config, counters = agent.config, agent.counters
    total = config.total_steps if total_steps is None else total_steps
    metrics: dict[str, float] = {}
    losses: dict[str, Tensor] = {}
    with RunLog(algo, config, agent.run_dir, agent.console, counters["env_steps"], total) as run:
        while counters["env_steps"] < total:
            # 3. act
            if counters["env_steps"] < config.learning_starts:
                action = agent.collector.random_action()
            else:
                action = agent.predict(agent.collector.obs[None], deterministic=False)[0]
            # 4-5. step, store, reset at episode ends
            episode = agent.collector.step(action)
            counters["env_steps"] = step = counters["env_steps"] + 1
            if episode:
                counters["episodes"] += 1
                metrics.update(run.log(step, episode))
            # 6-12. learn from replay (or from what the model hook mixes in)
            if step > config.learning_starts:
                for _ in range(config.gradient_steps):
                    batch = agent.hook.sample(agent.replay, config.batch_size, agent.rng)
                    losses = agent.update(batch.to(agent.device))
            if step % config.log_every == 0 and losses:
                metrics.update(run.log(step, {**losses, "charts/SPS": run.speed(step)}))
            # 13. evaluate, checkpoint
            if step % config.eval_every == 0 or step == total:
                metrics.update(run.log(step, agent.evaluate()))
            if step % config.checkpoint_every == 0:
                agent.save(agent.checkpoint_path, include_replay=True)
            if step % 100 == 0 or step == total:
                run.show(step, status_line(metrics))
        agent.save(agent.checkpoint_path, include_replay=True)
    return metrics
