"""What DDPG, TD3 and SAC share besides their networks: env and config checks, the
collector, the run log, checkpoints and the training loop :func:`train_off_policy`.

- :class:`Collector` steps one gymnasium environment and fills the replay buffer;
  :class:`RunLog` holds a run's logger and progress bar.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from torch import Tensor

from mbrl.training.envs import check_env_id, make_env
from mbrl.training.logger import Logger, RunProgress
from mbrl.training.replay import Batch, ModelHook, ReplayBuffer, ReplayOnly
from mbrl.training.runs import atomic_save, config_from_json, config_to_json, load_checkpoint

__all__ = [
    "Collector",
    "RngStates",
    "RunLog",
    "check_continuous_env",
    "load_agent",
    "pack_state",
    "resume_agent",
    "rng_parts",
    "save_agent",
    "status_line",
    "train_off_policy",
    "unpack_state",
    "validate_offpolicy_config",
]


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
    if config.learning_starts >= config.total_steps:
        raise ValueError(
            f"{name}.learning_starts ({config.learning_starts}) must be < total_steps "
            f"({config.total_steps}): no update would happen"
        )
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
