"""A gymnasium ``VectorEnv`` view of any single-player :class:`~mbrl.model.Model`.

An unchanged model-free agent trains inside a model through it (ME-TRPO's and MBPO's
imagined rollouts): N sub-environments, each started from a row of a given batch of real
starts and truncated after a horizon of H steps (imagined rollouts are short).

- **Starts.** ``starts [K, ...]`` is a batch of real data: observations for a learned
  model, states for an exact simulator. At every reset of a sub-environment one row is
  drawn uniformly with the env's seeded ``np_random`` and made a model state by
  ``start_state(rows, generator)``: :func:`observation_starts` for a
  :class:`~mbrl.models.LearnedModel` (``initial_state(obs, 1, generator)``), and ``None``
  (the rows are states already) for the exact MuJoCo model (``state_of(model, envs)`` or
  ``model.initial_state(K, rng)``). ``reset(options={"starts": tensor})`` swaps in a new
  batch (MBPO draws new starts from its replay every epoch). :attr:`start_index` says
  which row each sub-environment started from.
- **API** (gymnasium >= 1.0): ``reset(seed, options) -> (obs, infos)``,
  ``step(actions) -> (obs, rewards, terminations, truncations, infos)``, with
  ``single_observation_space`` (a float32 ``Box`` of the model's ``obs_shape``),
  ``single_action_space`` (``Discrete(A)``, or a float32 ``Box`` of the spec's bounds)
  and ``num_envs``. Observations are float32 numpy ``[N, *obs_shape]``, rewards float64
  ``[N]``, terminations and truncations bool ``[N]``.
- **Autoreset** in ``AutoresetMode.SAME_STEP`` (``metadata["autoreset_mode"]``), as
  the project's ``make_vector_env``: a sub-environment that terminates (the model's
  ``terminal``) or is truncated (``horizon`` steps) is reset within the same step; the
  returned observation is the new start's, and the last one is in
  ``info["final_obs"]`` (an object array, ``None`` elsewhere) with the mask
  ``info["_final_obs"]``. ``gym.wrappers.vector.RecordEpisodeStatistics`` works on top.
- **Randomness.** ``reset(seed=s)`` seeds ``np_random`` (start rows) and the
  ``torch.Generator`` passed to ``model.step`` and ``start_state`` (on the device of the
  starts: keep them on the model's device). The same seed gives the same rollouts.

What an agent needs to train inside it (the wiring is a later step): the on-policy loop
(``mbrl.training.rollout.OnPolicyLoop``) reads exactly this surface (the two single
spaces, ``reset(seed=...)``, SAME_STEP ``final_obs`` to bootstrap truncations, and
``info["episode"]`` from ``RecordEpisodeStatistics``), but today builds its envs from an
id with ``make_vector_env``; an agent training in a model will need (1) a way to take a
ready ``VectorEnv`` instead of an id, (2) its evaluation kept on the real env, (3) its
step counter kept apart from real environment steps (imagined steps are not samples),
and (4) a refresh of the starts (``reset(options={"starts": ...})``) and of the model
between its iterations. Rewards and terminations are the model's; a truncation at the
horizon is a time limit, so agents bootstrap it with ``V(final_obs)``. The off-policy
loop (``mbrl.training.offpolicy``, MBPO's SAC) steps one real env and takes model
rollouts through its ``ModelHook`` seam instead: there the view is a batch generator of
imagined transitions (``obs, action, reward, final_obs`` where a row ended or else the
next ``obs``, ``terminated``) for the hook to add to a model replay.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from mbrl.model import Model, ShapeError

__all__ = ["ModelVectorEnv", "StartFn", "VectorEnvConfig", "observation_starts"]

StartFn = Callable[[Tensor, torch.Generator], Tensor]
"""``start_state(rows [K, ...], generator) -> states [K, *state_shape]``."""


class _StartsFromObservations(Protocol):
    def initial_state(
        self, obs: Tensor, num_particles: int = 1, generator: torch.Generator | None = None
    ) -> Tensor: ...


def observation_starts(model: _StartsFromObservations) -> StartFn:
    """Start states from real observations by ``model.initial_state(obs, 1, generator)``
    (a :class:`~mbrl.models.LearnedModel`: one particle per start, its member drawn)."""

    def start_state(rows: Tensor, generator: torch.Generator) -> Tensor:
        return model.initial_state(rows, 1, generator)

    return start_state


@dataclass(frozen=True, kw_only=True)
class VectorEnvConfig:
    """The shape of the view: how many sub-environments and how long their episodes."""

    num_envs: int = 16
    """Sub-environments N stepped together; 1-4096 (MBPO: its model rollout batch)."""
    horizon: int = 10
    """Steps H before truncation; 1-50 for imagined rollouts (MBPO: 1-15, ME-TRPO: the
    task's time limit)."""

    def __post_init__(self):
        for name in ("num_envs", "horizon"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"VectorEnvConfig.{name} must be an int >= 1, got {value!r}")


class ModelVectorEnv(gym.vector.VectorEnv):
    """N sub-environments stepping one :class:`~mbrl.model.Model` (see the module)."""

    def __init__(
        self,
        model: Model,
        starts: Tensor,
        *,
        start_state: StartFn | None = None,
        config: VectorEnvConfig | None = None,
    ):
        spec = model.spec
        if spec.num_players != 1:
            raise ValueError(
                f"ModelVectorEnv needs a one-player model, {spec.name} has "
                f"{spec.num_players} players"
            )
        self.model, self.config = model, config or VectorEnvConfig()
        self.metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}
        self.start_state = start_state
        self.num_envs = n = self.config.num_envs
        self.single_observation_space = gym.spaces.Box(-np.inf, np.inf, spec.obs_shape, np.float32)
        if spec.is_discrete:
            self.single_action_space = gym.spaces.Discrete(spec.num_actions)
        else:
            low = -np.inf if spec.action_low is None else np.array(spec.action_low, np.float32)
            high = np.inf if spec.action_high is None else np.array(spec.action_high, np.float32)
            self.single_action_space = gym.spaces.Box(low, high, spec.action_shape, np.float32)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, n)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, n)
        self._set_starts(starts)
        self.state: Tensor | None = None
        """``[N, *state_shape]`` the sub-environments' model states (after ``reset``)."""
        self.start_index = np.zeros(n, dtype=np.int64)
        """``[N]`` the row of ``starts`` each sub-environment's episode started from."""
        self.lengths = np.zeros(n, dtype=np.int64)
        """``[N]`` steps taken in each sub-environment's current episode."""
        self._generator = torch.Generator(device=self.starts.device)
        self._generator.manual_seed(int(np.random.SeedSequence().generate_state(1)[0]))

    def _set_starts(self, starts: Tensor) -> None:
        if not isinstance(starts, Tensor) or starts.ndim < 1 or starts.shape[0] < 1:
            raise ShapeError("ModelVectorEnv: starts must be a tensor [K, ...] with K >= 1")
        self.starts = starts

    # ------------------------------------------------------------------ episodes
    def _start(self, rows: np.ndarray) -> Tensor:
        """Model states for the sub-environments ``rows``, each from a random start."""
        index = self.np_random.integers(self.starts.shape[0], size=len(rows))
        self.start_index[rows] = index
        self.lengths[rows] = 0
        picked = self.starts[torch.from_numpy(index).to(self.starts.device)]
        if self.start_state is None:
            return picked.clone()
        states = self.start_state(picked, self._generator)
        if states.shape != (len(rows), *self.model.spec.state_shape):
            raise ShapeError(
                f"ModelVectorEnv: start_state must return [{len(rows)}, "
                f"{', '.join(map(str, self.model.spec.state_shape))}], got {list(states.shape)}"
            )
        return states

    def _obs(self, state: Tensor) -> np.ndarray:
        return self.model.observe(state).detach().cpu().numpy().astype(np.float32, copy=False)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start every sub-environment from a random row of the starts: ``(obs [N, ...], {})``.
        ``options={"starts": tensor}`` replaces the batch of starts first."""
        super().reset(seed=seed)
        if seed is not None:
            self._generator.manual_seed(seed)
        if options and "starts" in options:
            self._set_starts(options["starts"])
        self.state = self._start(np.arange(self.num_envs))
        return self._obs(self.state), {}

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """One model step for every sub-environment, resetting those that end (SAME_STEP)."""
        if self.state is None:
            raise RuntimeError("ModelVectorEnv.step called before reset")
        result = self.model.step(self.state, self._action_tensor(actions), self._generator)
        self.lengths += 1
        terminated = result.terminal.detach().cpu().numpy().astype(bool)
        truncated = (self.lengths >= self.config.horizon) & ~terminated
        reward = result.reward.detach().cpu().numpy().astype(np.float64)
        state = result.state
        obs = self._obs(state)
        infos: dict[str, Any] = {}
        done = terminated | truncated
        if done.any():
            rows = np.flatnonzero(done)
            final_obs = np.full(self.num_envs, None, dtype=object)
            final_obs[rows] = list(obs[rows])
            infos = {
                "final_obs": final_obs,
                "_final_obs": done.copy(),
                "final_info": {},
                "_final_info": done.copy(),
            }
            index = torch.from_numpy(rows).to(state.device)
            state = state.clone()
            state[index] = self._start(rows)
            obs = obs.copy()
            obs[rows] = self._obs(state[index])
        self.state = state
        return obs, reward, terminated, truncated, infos

    def _action_tensor(self, actions: np.ndarray) -> Tensor:
        spec, n = self.model.spec, self.num_envs
        actions = np.asarray(actions)
        device = self.starts.device
        if spec.is_discrete:
            if actions.shape != (n,):
                raise ShapeError(f"ModelVectorEnv.step: actions must be [{n}], got {actions.shape}")
            return torch.from_numpy(actions.astype(np.int64)).to(device)
        if actions.shape != (n, *spec.action_shape):
            raise ShapeError(
                f"ModelVectorEnv.step: actions must be [{n}, "
                f"{', '.join(map(str, spec.action_shape))}], got {list(actions.shape)}"
            )
        return torch.from_numpy(actions.astype(np.float32)).to(device)
