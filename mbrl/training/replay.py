"""The replay buffer of the off-policy agents, and the model hook.

- :class:`ReplayBuffer` keeps transitions ``(obs, action, reward, next_obs, terminated)``
  in preallocated numpy arrays (torch views for sampling); ``terminated`` is the
  MDP's terminal flag only, so targets bootstrap through time limits.
- :class:`ModelHook` is the seam through which model-based agents (MVE, MBPO)
  plug a learned model into an unchanged off-policy agent; :class:`ReplayOnly`
  is the model-free default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

__all__ = ["Batch", "ModelHook", "ReplayBuffer", "ReplayOnly"]


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
