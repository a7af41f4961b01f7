"""Parts shared by the on-policy agents (VPG, A2C, PPO, TRPO), composed, not inherited.

- :class:`~mbrl.training.nets.ActorCritic` (in :mod:`mbrl.training.nets`): the
  policy and value MLPs.
- :class:`RolloutBuffer`: ``[T, N, ...]`` tensors of one rollout of T steps in
  N environments, advantages by :func:`mbrl.training.returns.gae`.
- :class:`OnPolicyLoop`: the environments, rollout collection (gymnasium
  truncation bootstrapped with the value of the final observation), the run
  folder, progress bar, logging, evaluation and checkpoints. An agent owns one
  and hands it its ``update`` function.

Shapes: T steps per rollout, N environments, B batch, A actions (or action dims).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from rich.console import Console
from torch import Tensor

from mbrl.training.checkpoint import StateDicts, agent_files
from mbrl.training.config import at_least, check_run_fields, in_range, positive
from mbrl.training.envs import RunningMeanStd, evaluate, make_vector_env
from mbrl.training.envstate import EnvStateError, env_state, restore_env_state
from mbrl.training.nets import ActorCritic, make_adam
from mbrl.training.returns import gae
from mbrl.training.run import Run, RunSpec, crossed, status_line
from mbrl.training.runs import new_run_dir

__all__ = [
    "ActorCritic",
    "OnPolicyLoop",
    "RolloutBuffer",
    "adam",
    "check_common_config",
    "check_positive",
    "explained_variance",
    "on_policy_agent",
]


# ------------------------------------------------------------------ config helpers
def check_common_config(config: Any) -> None:
    """Validate the fields every on-policy config has; messages name the field."""
    check_run_fields(config)
    at_least(config, 1, "num_envs", "num_steps", "eval_every")
    for field in ("gamma", "gae_lambda"):
        in_range(config, field, 0.0, 1.0)


def check_positive(config: Any, *fields: str) -> None:
    """Raise ValueError naming the first of ``fields`` that is not > 0."""
    positive(config, *fields)


adam = make_adam  # the one Adam helper (fused where this torch has it)


def explained_variance(returns: Tensor, values: Tensor) -> float:
    """``1 - Var[R - V] / Var[R]``: 1 is a perfect value function, 0 no better than a constant."""
    variance = returns.var().item()
    return float("nan") if variance == 0 else 1.0 - (returns - values).var().item() / variance


# ------------------------------------------------------------------------ buffer
class RolloutBuffer:
    """One rollout: ``obs [T, N, obs_dim]``, ``actions [T, N(, D)]`` and ``[T, N]`` scalars.

    ``dones`` marks terminated or truncated steps; ``truncated_values`` holds
    V(final obs) at truncated steps (0 elsewhere) so that a time limit is
    bootstrapped instead of treated as a terminal state.
    """

    def __init__(self, num_steps: int, num_envs: int, obs_dim: int, action_shape: tuple[int, ...]):
        T, N = num_steps, num_envs
        discrete = action_shape == ()
        self.obs = torch.zeros(T, N, obs_dim)
        self.actions = torch.zeros(T, N, *action_shape, dtype=torch.int64 if discrete else None)
        self.log_probs = torch.zeros(T, N)
        self.rewards = torch.zeros(T, N)
        self.dones = torch.zeros(T, N)
        self.values = torch.zeros(T, N)
        self.truncated_values = torch.zeros(T, N)
        self.advantages = torch.zeros(T, N)
        self.returns = torch.zeros(T, N)
        self.last_value = torch.zeros(N)

    @property
    def size(self) -> int:
        return self.rewards.numel()

    def compute_advantages(self, last_value: Tensor, gamma: float, lam: float) -> None:
        """GAE(gamma, lambda) advantages and lambda-returns (``returns = advantages + values``).

        ``last_value [N]`` is V of the observation after the last step (kept as ``last_value``).
        """
        self.last_value = last_value
        self.advantages, self.returns = gae(
            self.rewards,
            self.values,
            self.dones,
            last_value,
            gamma,
            lam,
            truncated_values=self.truncated_values,
        )

    def flat(self) -> dict[str, Tensor]:
        """Every field with T and N merged: ``[T * N, ...]``."""
        names = ("obs", "actions", "log_probs", "values", "advantages", "returns")
        return {name: getattr(self, name).flatten(0, 1) for name in names}

    def minibatches(self, batch_size: int, rng: np.random.Generator):
        """Yield dicts of ``[batch_size, ...]`` rows in a random order (the last may be smaller)."""
        data = self.flat()
        if batch_size >= self.size:  # one minibatch: the order does not matter
            yield data
            return
        order = torch.from_numpy(rng.permutation(self.size))
        for start in range(0, self.size, batch_size):
            rows = order[start : start + batch_size]
            yield {name: value[rows] for name, value in data.items()}


# -------------------------------------------------------------------------- loop
class OnPolicyLoop:
    """Environments, rollouts, run folder, logging, evaluation and checkpoints of one agent.

    ``config`` needs the fields checked by :func:`check_common_config` plus
    ``normalize_obs`` and ``normalize_reward``. The agent creates its optimisers
    over ``loop.policy`` and registers them in ``loop.optimizers`` (they are
    checkpointed).
    """

    def __init__(
        self,
        algo: str,
        config: Any,
        *,
        run_dir: str | Path | None = None,
        console: Console | None = None,
        envs: gym.vector.VectorEnv | None = None,
    ):
        self.algo, self.config = algo, config
        self.console = console or Console(quiet=True)
        self.given_envs = envs is not None
        """Rollouts come from a ``VectorEnv`` the owner made (a model's, ME-TRPO's
        imagination): it resets and refreshes them, and they are not checkpointed."""
        if envs is not None and envs.num_envs != config.num_envs:
            raise ValueError(
                f"{algo}: the given envs have {envs.num_envs} sub-environments, "
                f"config.num_envs is {config.num_envs}"
            )
        if envs is None:
            envs = make_vector_env(config.env, config.num_envs, config.seed)
        self.envs = envs
        obs_space = self.envs.single_observation_space
        action_space = self.envs.single_action_space
        if not isinstance(obs_space, gym.spaces.Box):
            raise ValueError(f"{algo} needs a Box observation space, {config.env} has {obs_space}")
        self.obs_dim = int(np.prod(obs_space.shape))
        self.action_space = action_space
        with torch.random.fork_rng():  # the network's init is seeded without touching the caller
            torch.manual_seed(config.seed)
            self.policy = ActorCritic(
                self.obs_dim, action_space, tuple(config.hidden_sizes), config.log_std_init
            )
        self.generator = torch.Generator().manual_seed(config.seed)
        self.rng = np.random.default_rng(config.seed)
        self.obs_rms = RunningMeanStd((self.obs_dim,)) if config.normalize_obs else None
        # reward scaling: running variance of the discounted return of each env
        self.return_rms = RunningMeanStd(()) if config.normalize_reward else None
        self._discounted = np.zeros(config.num_envs, np.float64)
        action_shape = () if self.policy.discrete else (self.policy.action_dim,)
        self.buffer = RolloutBuffer(config.num_steps, config.num_envs, self.obs_dim, action_shape)
        if not self.policy.discrete:
            self._low = action_space.low.reshape(-1).astype(np.float32)
            self._high = action_space.high.reshape(-1).astype(np.float32)
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.counters = {"steps": 0, "updates": 0, "episodes": 0, "seconds": 0.0}
        obs, _ = self.envs.reset(seed=config.seed)
        self.next_obs = self._prepare(obs, update=True)
        self.run_dir = Path(run_dir) if run_dir else new_run_dir(config.run_dir, algo, config.env)
        self._episodes: list[tuple[float, int]] = []

    # ------------------------------------------------------------ observations
    def _prepare(self, obs: np.ndarray, update: bool) -> Tensor:
        """Raw ``[B, *obs_shape]`` -> float32 ``[B, obs_dim]``, normalised if configured."""
        obs = np.asarray(obs, dtype=np.float32).reshape(len(obs), -1)
        if self.obs_rms is not None:
            if update:
                self.obs_rms.update(obs)
            obs = self.obs_rms.normalize(obs)
        return torch.from_numpy(obs)

    def _scale_rewards(self, reward: np.ndarray, done: np.ndarray) -> np.ndarray:
        """``reward / std(discounted return)``, clipped to [-10, 10], if configured."""
        if self.return_rms is None:
            return reward
        self._discounted = self._discounted * self.config.gamma + reward
        self.return_rms.update(self._discounted)
        self._discounted[done] = 0.0
        return np.clip(reward / np.sqrt(self.return_rms.var + 1e-8), -10.0, 10.0)

    def _env_action(self, action: Tensor) -> np.ndarray:
        if self.policy.discrete:
            return action.numpy()
        shape = (len(action), *self.action_space.shape)
        return np.clip(action.numpy(), self._low, self._high).reshape(shape)

    @torch.no_grad()
    def predict(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Actions for a batch ``obs [B, *obs_shape]``: ``[B]`` or ``[B, *action_shape]``."""
        params = self.policy.dist_params(self._prepare(obs, update=False))
        return self._env_action(self.policy.sample(params, self.generator, deterministic))

    # ----------------------------------------------------------------- rollout
    @torch.no_grad()
    def collect(self) -> None:
        """Run the current policy for T steps in the N environments and compute advantages."""
        buf, policy, envs = self.buffer, self.policy, self.envs
        gamma = self.config.gamma
        for t in range(self.config.num_steps):
            obs = self.next_obs
            params = policy.dist_params(obs)
            action = policy.sample(params, self.generator)
            buf.obs[t] = obs
            buf.actions[t] = action
            buf.log_probs[t] = policy.log_prob(params, action)
            buf.values[t] = policy.value(obs)
            next_obs, reward, terminated, truncated, info = envs.step(self._env_action(action))
            self.next_obs = self._prepare(next_obs, update=True)
            done = terminated | truncated
            reward = self._scale_rewards(reward, done)  # episode stats stay raw
            buf.rewards[t] = torch.from_numpy(reward.astype(np.float32))
            buf.dones[t] = torch.from_numpy(done.astype(np.float32))
            buf.truncated_values[t] = 0.0
            cut = truncated & ~terminated  # a time limit: bootstrap with V(final obs)
            if cut.any():
                rows = np.flatnonzero(cut)
                final = self._prepare(np.stack(info["final_obs"][rows]), update=False)
                buf.truncated_values[t, torch.from_numpy(rows)] = policy.value(final)
            if "_episode" in info:
                done = info["_episode"]
                self._episodes += zip(info["episode"]["r"][done], info["episode"]["l"][done])
        buf.compute_advantages(policy.value(self.next_obs), gamma, self.config.gae_lambda)

    # -------------------------------------------------------------------- learn
    def learn(
        self,
        total_steps: int,
        update: Callable[[RolloutBuffer, float], dict[str, float]],
        checkpoint: Callable[[], Path],
        *,
        run_as: tuple[str, Any] | None = None,
    ) -> dict[str, float]:
        """Collect rollouts and call ``update(buffer, progress_remaining)`` until ``total_steps``.

        ``progress_remaining`` goes from 1 to 0 over the run (for annealing).
        Logs every ``log_every`` env steps, evaluates every ``eval_every`` and
        checkpoints every ``checkpoint_every``; returns the last metrics. ``run_as``
        ``(algo, config)`` names the run another agent owns (MB-MF's fine-tuning stage,
        inside its run folder).
        """
        config, counters = self.config, self.counters
        steps_per_rollout = config.num_steps * config.num_envs
        metrics: dict[str, float] = {}
        last: dict[str, float] = {}
        started, start_seconds, sps_steps, sps_time = (
            time.perf_counter(),
            counters["seconds"],
            0,
            0.0,
        )
        start = counters["steps"]
        algo, run_config = run_as or (self.algo, config)
        spec = RunSpec(algo, config.env, run_config, self.run_dir, total_steps, start, start)
        with Run(spec, checkpoint, self.console) as run:
            while run.going(counters["steps"]):
                tick = time.perf_counter()
                self.collect()
                metrics = update(self.buffer, 1.0 - counters["steps"] / total_steps)
                before, counters["steps"] = counters["steps"], counters["steps"] + steps_per_rollout
                counters["updates"] += 1
                sps_steps += steps_per_rollout
                sps_time += time.perf_counter() - tick
                counters["seconds"] = start_seconds + time.perf_counter() - started
                now = counters["steps"]
                final = now >= total_steps
                eval_due = crossed(before, now, config.eval_every) or final
                if eval_due or crossed(before, now, config.log_every):
                    row = dict(metrics)
                    if self._episodes:
                        returns, lengths = zip(*self._episodes)
                        counters["episodes"] += len(self._episodes)
                        row["charts/episodic_return"] = float(np.mean(returns))
                        row["charts/episodic_length"] = float(np.mean(lengths))
                        self._episodes = []
                    row["charts/SPS"] = sps_steps / sps_time
                    sps_steps, sps_time = 0, 0.0
                    if eval_due:
                        row["eval/mean_return"] = self.evaluate()
                    last = run.log(now, row)
                if not final:  # the run writes the last one as it closes
                    run.checkpoint_if_due(crossed(before, now, config.checkpoint_every))
                run.show(now, status_line(last))
        return last or metrics

    def evaluate(self) -> float:
        """Mean return of ``eval_episodes`` deterministic episodes (a separate env)."""
        if not self.config.eval_episodes:
            return float("nan")
        returns = evaluate(
            self.config.env, self.predict, self.config.eval_episodes, seed=self.config.seed + 10**6
        )
        return float(returns.mean())

    # -------------------------------------------------------------- checkpoints
    def parts(self, training: bool = False) -> dict[str, Any]:
        """The agent's parts: the network and the observation normaliser; with
        ``training`` also the optimisers and this loop's own state."""
        parts: dict[str, Any] = {"policy": self.policy}
        if self.obs_rms is not None:
            parts["obs_rms"] = self.obs_rms
        if training:
            parts |= {"optimizers": StateDicts(self.optimizers), "loop": self}
        return parts

    def state_dict(self) -> dict:
        """The loop's training state: RNGs, environments with their episodes (as plain
        data, :mod:`mbrl.training.envstate`; None for envs that keep other objects, whose
        resumed run starts fresh episodes), statistics."""
        stats = self.envs
        try:
            envs = None if self.given_envs else [env_state(e) for e in self.envs.unwrapped.envs]
        except EnvStateError:
            envs = None
        return {
            "rng": self.rng.bit_generator.state,
            "generator": self.generator.get_state(),
            "next_obs": self.next_obs,
            "envs": envs,
            "episode_stats": {
                k: getattr(stats, k)
                for k in ("episode_returns", "episode_lengths", "prev_dones", "episode_count")
            },
            "pending_episodes": list(self._episodes),
            "return_rms": None if self.return_rms is None else self.return_rms.state_dict(),
            "discounted": self._discounted.copy(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.generator.set_state(state["generator"])
        self._episodes = list(state["pending_episodes"])
        if self.return_rms is not None and state.get("return_rms") is not None:
            self.return_rms.load_state_dict(state["return_rms"])
            self._discounted = state["discounted"].copy()
        if self.given_envs:  # the owner resets its envs (and their statistics) itself
            return
        if state["envs"] is None:  # not saved: fresh episodes, seeded from the run's RNG
            obs, _ = self.envs.reset(seed=int(self.rng.integers(2**31)))
            self.next_obs = self._prepare(obs, update=False)
            self._discounted[:] = 0.0
            return
        self.next_obs = state["next_obs"]
        for env, saved in zip(self.envs.unwrapped.envs, state["envs"], strict=True):
            restore_env_state(env, saved)
        for key, value in state["episode_stats"].items():
            setattr(self.envs, key, value)


_LOOP_KEYS = (
    "rng",
    "generator",
    "next_obs",
    "envs",
    "episode_stats",
    "pending_episodes",
    "return_rms",
    "discounted",
)


def _upgrade(payload: dict) -> dict:
    """An on-policy file of format ``/1`` (flat keys) in the layout of ``/2``."""
    if "state" in payload:
        return payload
    state = {"policy": payload["policy"]}
    if payload.get("obs_rms") is not None:
        state["obs_rms"] = payload["obs_rms"]
    training = "optimizers" in payload
    if training:
        state["optimizers"] = payload["optimizers"]
        state["loop"] = {k: payload.get(k) for k in _LOOP_KEYS}
    return {**payload, "training": training, "state": state}


# ----------------------------------------------------------- the agent surface
def on_policy_agent(cls: type) -> type:
    """Class decorator: the surface of :class:`mbrl.Agent` for an on-policy agent.

    The class sets ``algo`` and ``Config`` and defines ``make_optimizers()`` (its
    optimisers by name, over ``self.policy``) and ``update(buffer,
    progress_remaining)``; this adds the constructor ``Agent(env, config, *,
    run_dir, console, envs)`` (the :class:`OnPolicyLoop` as ``self.loop``, its network as
    ``self.policy``; ``envs``: a ready ``VectorEnv`` to collect rollouts from, such as a
    model's, evaluation staying on ``env``), ``learn``, ``predict``, ``evaluate``,
    ``parts``, ``run_dir``, ``counters``, the class facts and the file verbs
    (:func:`mbrl.training.checkpoint.agent_files`).
    """

    def __init__(
        self,
        env: str,
        config: Any = None,
        *,
        run_dir: str | Path | None = None,
        console: Console | None = None,
        envs: gym.vector.VectorEnv | None = None,
    ):
        config = dataclasses.replace(config or cls.Config(env=env), env=env)
        self.config = config
        self.loop = OnPolicyLoop(cls.algo, config, run_dir=run_dir, console=console, envs=envs)
        self.policy = self.loop.policy  # step 1
        self.loop.optimizers.update(self.make_optimizers())

    def learn(self, total_steps: int | None = None) -> dict[str, float]:
        """Train until ``total_steps`` environment steps (default: the config's),
        continuing from the current count; returns the last logged metrics."""
        total = self.config.total_steps if total_steps is None else total_steps
        return self.loop.learn(total, self.update, self.checkpoint)

    def predict(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Actions ``[B]`` / ``[B, *action_shape]`` for observations ``[B, *obs_shape]``."""
        return self.loop.predict(obs, deterministic)

    def evaluate(self) -> dict[str, float]:
        """The mean return of the deterministic policy on seeded episodes."""
        return {"eval/mean_return": self.loop.evaluate()}

    def parts(self, training: bool = False) -> dict[str, Any]:
        return self.loop.parts(training)

    def get_counters(self) -> dict:
        return self.loop.counters

    def set_counters(self, value: dict) -> None:
        self.loop.counters = value

    members = {
        "__init__": __init__,
        "learn": learn,
        "predict": predict,
        "evaluate": evaluate,
        "parts": parts,
        "run_dir": property(lambda self: self.loop.run_dir),
        "counters": property(get_counters, set_counters),
        "upgrade": staticmethod(_upgrade),
        "FORMAT": f"mbrl.{cls.algo}/2",
        "world_field": "env",
        "action_spaces": frozenset({"discrete", "continuous"}),
        "budget_fields": ("total_steps",),
        "step_cost": 1.0,
    }
    for name, member in members.items():
        if name not in cls.__dict__:
            setattr(cls, name, member)
    return agent_files(cls)
