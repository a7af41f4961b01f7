"""The one replay ring of the library, the off-policy transition buffer, and the model hook.

- :class:`Ring` keeps named fields in preallocated numpy arrays; adding past its
  capacity overwrites the oldest rows. Off-policy transitions, DQN's and
  AlphaZero's self-play positions are all kept in one.
- :class:`ReplayBuffer` is the ring of transitions ``(obs, action, reward,
  next_obs, terminated)`` that samples :class:`Batch` es of torch tensors;
  ``terminated`` is the MDP's terminal flag only, so targets bootstrap through
  time limits.
- :class:`ModelHook` is the seam through which model-based agents (MVE, MBPO)
  plug a learned model into an unchanged off-policy agent; :class:`ReplayOnly`
  is the model-free default. A hook sees a :class:`TargetContext`, not the agent.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "Batch",
    "CriticTargets",
    "ModelHook",
    "ReplayBuffer",
    "ReplayOnly",
    "Ring",
    "TargetContext",
    "critic_targets",
    "one_step_targets",
]


# --------------------------------------------------------------------------- ring
class Ring:
    """A ring of ``capacity`` rows of named fields, each a preallocated numpy array.

    ``fields`` maps a name to ``(row shape, dtype)``; each field is an attribute
    ``[capacity, *shape]``. ``pos`` is where the next row goes, ``size`` how many
    are stored. ``sample`` draws rows uniformly with replacement.
    """

    def __init__(self, capacity: int, fields: dict[str, tuple[tuple[int, ...], type]]):
        if capacity < 1:
            raise ValueError(f"replay capacity must be >= 1, got {capacity}")
        self.capacity, self.names = capacity, tuple(fields)
        for name, (shape, dtype) in fields.items():
            setattr(self, name, np.zeros((capacity, *shape), dtype))
        self.pos = 0  # where the next row goes
        self.size = 0  # how many are stored

    def arrays(self) -> list[np.ndarray]:
        return [getattr(self, name) for name in self.names]

    def __len__(self) -> int:
        return self.size

    def add(self, *values) -> None:
        """Store N rows, one array ``[N, ...]`` per field in field order; a single row
        may be given unbatched (the first field's row shape tells which)."""
        first = self.arrays()[0]
        if np.ndim(values[0]) == first.ndim - 1:  # one row
            values = tuple(np.asarray(v)[None] for v in values)
        n = len(values[0])
        if n > self.capacity:  # only the newest `capacity` survive
            values = tuple(np.asarray(v)[-self.capacity :] for v in values)
            self.pos = (self.pos + n - self.capacity) % self.capacity
            n = self.capacity
        if self.pos + n <= self.capacity:
            index = slice(self.pos, self.pos + n)  # the common case: a view, no gather
        else:
            index = (self.pos + np.arange(n)) % self.capacity
        for array, value in zip(self.arrays(), values):
            array[index] = value
        self.pos = int((self.pos + n) % self.capacity)
        self.size = min(self.size + n, self.capacity)

    def sample_index(self, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        return rng.integers(0, self.size, size=batch_size)

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """``batch_size`` rows drawn uniformly (with replacement), each field ``[B, ...]``."""
        index = self.sample_index(batch_size, rng)
        return {name: getattr(self, name)[index] for name in self.names}

    def state_dict(self) -> dict:
        """The stored rows only (not the empty tail), with the write position."""
        arrays = {name: getattr(self, name)[: self.size].copy() for name in self.names}
        return {"capacity": self.capacity, "pos": self.pos, "size": self.size, **arrays}

    def load_state_dict(self, state: dict) -> None:
        capacity = state.get("capacity", self.capacity)
        if capacity != self.capacity:
            raise ValueError(f"replay capacity {capacity} in the checkpoint, {self.capacity} here")
        size = int(state["size"])
        for name in self.names:
            array = getattr(self, name)
            if state[name].shape[1:] != array.shape[1:]:
                raise ValueError(
                    f"replay field {name} has rows {state[name].shape[1:]} in the checkpoint, "
                    f"{array.shape[1:]} here"
                )
            array[:size] = state[name][:size]
        self.pos, self.size = int(state["pos"] if "pos" in state else state["cursor"]), size


def transition_fields(
    obs_shape: tuple[int, ...], action_shape: tuple[int, ...], action_dtype: type = np.float32
) -> dict[str, tuple[tuple[int, ...], type]]:
    """The fields of a transition ring (obs, action, reward, next_obs, terminated)."""
    return {
        "obs": (tuple(obs_shape), np.float32),
        "action": (tuple(action_shape), action_dtype),
        "reward": ((), np.float32),
        "next_obs": (tuple(obs_shape), np.float32),
        "terminated": ((), np.float32),
    }


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


class ReplayBuffer(Ring):
    """The ring of continuous-action transitions; ``sample`` gives a :class:`Batch`
    of float32 torch tensors (zero-copy views: one ``index_select`` per field)."""

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], action_dim: int):
        super().__init__(capacity, transition_fields(obs_shape, (action_dim,)))
        self._views = [torch.from_numpy(a) for a in self.arrays()]

    def sample(self, batch_size: int, rng: np.random.Generator) -> Batch:
        """``batch_size`` transitions drawn uniformly (with replacement)."""
        index = torch.from_numpy(self.sample_index(batch_size, rng))
        return Batch(*(view.index_select(0, index) for view in self._views))


@dataclass(frozen=True)
class TargetContext:
    """What a model hook may use to build Q targets, without the agent itself:

    - ``gamma``, the discount;
    - ``next_values(obs [B, ...]) -> [M, B]``: the bootstrap value of each of the M
      critics under the agent's target networks (TD3: ``Q'_m(s, a~)`` with the smoothed
      target action; SAC: the soft value ``Q'_m(s, a') - alpha log pi(a'|s)``; DDPG:
      M = 1), all at one drawn action per row;
    - ``policy(obs [B, ...]) -> [B, A]``: the action of the policy of the agent's
      bootstrap in an imagined state (TD3: the target actor with its smoothing noise;
      DDPG: the target actor; SAC: a sample of the policy).
    """

    gamma: float
    next_values: Callable[[Tensor], Tensor]
    policy: Callable[[Tensor], Tensor]

    def next_value(self, obs: Tensor) -> Tensor:
        """The agent's own bootstrap value ``[B]``: the minimum over its critics (TD3's
        clipped double Q, SAC's soft minimum; DDPG's one critic)."""
        return self.next_values(obs).min(0).values


@dataclass(frozen=True)
class CriticTargets:
    """The regression rows of a critic update: ``obs [N, ...]``, ``action [N, A]``,
    ``target [N]`` and ``weight [N]`` (None: the mean over the N rows). Every critic's
    loss is ``sum_n weight_n (Q(obs_n, action_n) - target_n)^2``.

    The model-free update has the minibatch's B rows with their one-step TD targets;
    MVE's TD-k trick adds the imagined states of the expansion, weighted by the
    probability that the model reaches them."""

    obs: Tensor
    action: Tensor
    target: Tensor
    weight: Tensor | None = None

    def loss(self, q: Tensor) -> Tensor:
        """The summed loss of the critics' values ``q [M, N]`` at these rows."""
        squared = (q - self.target).pow(2)
        if self.weight is None:
            return squared.mean(1).sum()
        return (squared * self.weight).sum()


def one_step_targets(batch: Batch, context: TargetContext) -> CriticTargets:
    """The model-free rows: ``y = r + gamma (1 - d) V'(s')`` for the minibatch."""
    next_value = context.next_value(batch.next_obs)
    target = batch.reward + context.gamma * (1.0 - batch.terminated) * next_value
    return CriticTargets(batch.obs, batch.action, target)


def critic_targets(hook: ModelHook, batch: Batch, context: TargetContext) -> CriticTargets:
    """The hook's rows for this minibatch, or the one-step rows where it has none; no
    gradient flows through the targets."""
    with torch.no_grad():
        rows = hook.critic_targets(batch, context)
        return one_step_targets(batch, context) if rows is None else rows


# --------------------------------------------------------------------- model hook
@runtime_checkable
class ModelHook(Protocol):
    """Where a learned model plugs into DDPG, TD3 or SAC without changing them.

    An agent given ``model_hook=`` calls it at three points of its loop:

    - ``on_transitions(batch)`` after every real environment step, with that
      transition as a Batch of size 1 (e.g. to count steps and fit the model to the
      real replay every so often).
    - ``sample(replay, batch_size, rng) -> Batch`` for every gradient step's
      minibatch (MBPO: mix real transitions from ``replay`` with imagined ones;
      the default is ``replay.sample(batch_size, rng)``).
    - ``critic_targets(batch, context) -> CriticTargets | None`` inside the critic
      update (MVE: the H-step model-based targets ``sum_h gamma^h r_h + gamma^H
      V(s_H)`` and, with the TD-k trick, rows for the imagined states too; STEVE:
      the inverse-variance mix of the targets of every horizon). None: the agent's
      own one-step TD target. The agent treats the targets as constants.

    Agents do not checkpoint the hook; a hook with state saves it itself (the
    model-based variants add its ``parts`` to theirs).
    """

    def on_transitions(self, batch: Batch) -> None: ...

    def sample(self, replay: ReplayBuffer, batch_size: int, rng: np.random.Generator) -> Batch: ...

    def critic_targets(self, batch: Batch, context: TargetContext) -> CriticTargets | None: ...


class ReplayOnly:
    """The model-free behaviour: no model, real minibatches, the agent's own TD target."""

    def on_transitions(self, batch: Batch) -> None:
        pass

    def sample(self, replay: ReplayBuffer, batch_size: int, rng: np.random.Generator) -> Batch:
        return replay.sample(batch_size, rng)

    def critic_targets(self, batch: Batch, context: TargetContext) -> CriticTargets | None:
        return None
