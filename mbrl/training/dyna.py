"""Branched model rollouts as a :class:`~mbrl.training.replay.ModelHook`: the part of
MBPO (Janner et al. 2019) that is not SAC, so that SAC (or TD3) runs unchanged on a
mix of real and imagined transitions.

Every ``model_train_every`` real steps (after ``learning_starts``) the hook

1. fits the dynamics ensemble to every real transition (:func:`fit_dynamics`, warm
   start, held-out early stopping, elites);
2. draws ``rollout_batch_size`` start states uniformly from the real replay and rolls
   the agent's stochastic policy ``k`` steps through the ensemble, each step drawing a
   member uniformly from the elites (TS-1); a row that reaches a predicted terminal
   state stops there (its terminal transition is kept, nothing after it);
3. adds the imagined transitions to the model buffer, a ring sized to hold
   ``model_retain_epochs`` epochs of rollouts at the current ``k``.

``k`` follows the rollout-length schedule ``(first epoch, last epoch, min length, max
length)``: ``min length`` until ``first epoch``, then linear up to ``max length`` at
``last epoch`` (an epoch is ``epoch_length`` real steps). Every gradient step's
minibatch is ``real_ratio`` real transitions and the rest imagined (all real until
the first rollout).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from rich.console import Console
from torch import Tensor

from mbrl.models import Propagation
from mbrl.training.config import at_least, fail, in_range
from mbrl.training.modelbased import (
    DynamicsFields,
    GeneratorPart,
    fit_dynamics,
    make_dynamics,
    validate_dynamics_fields,
)
from mbrl.training.replay import Batch, CriticTargets, ReplayBuffer, TargetContext

__all__ = ["BranchFields", "BranchedRollouts", "Policy", "rollout_length"]

Policy = Callable[[Tensor, torch.Generator], Tensor]
"""``policy(obs [B, D], generator) -> actions [B, A]``: the agent's exploring policy."""


@dataclass(frozen=True, kw_only=True)
class BranchFields(DynamicsFields):
    """The ensemble and the branched rollouts of MBPO (defaults: the paper's configs)."""

    model_train_every: int = 250
    """Real steps between fits and rollouts (MBPO's model_train_freq)."""
    rollout_batch_size: int = 100_000
    """Start states of each branch (the paper's 100k every 250 steps: 400 imagined
    starts a real step)."""
    rollout_schedule: tuple[int, int, int, int] = (20, 100, 1, 1)
    """(first epoch, last epoch, min length, max length) of the rollout length k; the
    paper's (20, 100, 1, 15) for Hopper, (20, 150, 1, 1) for HalfCheetah."""
    epoch_length: int = 1000
    """Real steps of an epoch of the schedule (250 for the paper's InvertedPendulum)."""
    model_retain_epochs: int = 1
    """Epochs of rollouts the model buffer keeps."""
    real_ratio: float = 0.05
    """Share of real transitions in each gradient step's minibatch."""


def validate_branch_fields(config: Any) -> None:
    """The checks of :class:`BranchFields`; messages name the field."""
    validate_dynamics_fields(config)
    at_least(config, 1, "rollout_batch_size", "epoch_length", "model_retain_epochs")
    in_range(config, "real_ratio", 0.0, 1.0)
    schedule = config.rollout_schedule
    if len(schedule) != 4:
        fail(config, "rollout_schedule", f"have 4 numbers, got {schedule}")
    first, last, low, high = schedule
    if low < 1 or high < 1:
        fail(config, "rollout_schedule", f"have lengths >= 1, got {schedule}")
    if first < 0 or last < first:
        fail(config, "rollout_schedule", f"have 0 <= first epoch <= last epoch, got {schedule}")


def rollout_length(schedule: tuple[int, int, int, int], epoch: int) -> int:
    """The rollout length ``k`` at ``epoch`` (MBPO's linear schedule, rounded down)."""
    first, last, low, high = schedule
    if epoch <= first:
        return int(low)
    if epoch >= last:
        return int(high)
    share = (epoch - first) / (last - first)
    return int(low + share * (high - low))


class BranchedRollouts:
    """MBPO's model hook (see the module): ``on_transitions`` counts real steps and fits
    and branches when due; ``sample`` mixes real and imagined transitions.

    The agent binds it after making its networks (:meth:`bind`): the real replay to fit
    and branch from, and its exploring policy. ``metrics()`` are the fit's scores, the
    rollout length, imagined-step count and phase seconds for the progress row.
    """

    def __init__(
        self,
        config: Any,
        obs_dim: int,
        action_space: Any,
        device: torch.device,
        console: Console | None = None,
    ):
        self.config, self.device = config, device
        self.console = console or Console(quiet=True)
        self.ensemble, self.model_trainer, self.model = make_dynamics(
            config, obs_dim, action_space, device, propagation=Propagation.TS1
        )
        self.fit_generator = torch.Generator().manual_seed(config.seed + 1)
        self.rollout_generator = torch.Generator(device).manual_seed(config.seed + 2)
        self.rng = np.random.default_rng(config.seed + 3)
        self.obs_dim, self.action_dim = obs_dim, action_space.shape[0]
        self.counters = {"steps": 0, "fits": 0, "last_fit": 0, "imagined_steps": 0}
        self.seconds = {"fit": 0.0, "imagination": 0.0, "policy": 0.0}
        self.length = rollout_length(config.rollout_schedule, 0)
        self.model_replay = ReplayBuffer(self.capacity(self.length), (obs_dim,), self.action_dim)
        self.last_fit: dict[str, float] = {}
        self.replay: ReplayBuffer | None = None
        self.policy: Policy | None = None

    def bind(self, replay: ReplayBuffer, policy: Policy) -> None:
        """The real replay to fit and branch from, and the policy that acts in rollouts."""
        self.replay, self.policy = replay, policy

    def capacity(self, length: int) -> int:
        """Imagined transitions kept: ``model_retain_epochs`` epochs of rollouts of ``k``."""
        config = self.config
        per_epoch = config.rollout_batch_size * config.epoch_length / config.model_train_every
        return max(1, int(config.model_retain_epochs * per_epoch * length))

    # ------------------------------------------------------------------ the hook
    def on_transitions(self, batch: Batch) -> None:
        self.counters["steps"] = step = self.counters["steps"] + len(batch)
        config = self.config
        if step >= config.learning_starts and (
            (step - config.learning_starts) % config.model_train_every == 0
        ):
            self.fit_and_branch()

    def sample(self, replay: ReplayBuffer, batch_size: int, rng: np.random.Generator) -> Batch:
        num_real = int(self.config.real_ratio * batch_size)
        if len(self.model_replay) == 0 or num_real == batch_size:
            return replay.sample(batch_size, rng)
        imagined = self.model_replay.sample(batch_size - num_real, rng)
        if num_real == 0:
            return imagined
        real = replay.sample(num_real, rng)
        return Batch(
            *(
                torch.cat([getattr(real, f.name), getattr(imagined, f.name)])
                for f in dataclasses.fields(Batch)
            )
        )

    def critic_targets(self, batch: Batch, context: TargetContext) -> CriticTargets | None:
        return None

    # ------------------------------------------------------------------ fit and branch
    def fit_and_branch(self) -> None:
        """Steps 1-3 of the module: fit, resize the model buffer to the schedule's
        length, roll out from real starts."""
        if self.replay is None or self.policy is None:
            raise RuntimeError("BranchedRollouts.bind(replay, policy) must come first")
        start = time.perf_counter()
        self.last_fit = fit_dynamics(self)
        fitted = time.perf_counter()
        self.resize(rollout_length(self.config.rollout_schedule, self.epoch))
        starts = self.rng.integers(0, len(self.replay), size=self.config.rollout_batch_size)
        self.counters["imagined_steps"] += self.branch(torch.from_numpy(self.replay.obs[starts]))
        self.seconds["fit"] += fitted - start
        self.seconds["imagination"] += time.perf_counter() - fitted

    @property
    def epoch(self) -> int:
        return self.counters["steps"] // self.config.epoch_length

    @torch.no_grad()
    def branch(self, obs: Tensor) -> int:
        """Roll the policy ``self.length`` steps from observations ``[B, D]`` into the
        model buffer; rows stop after a predicted terminal. Returns transitions added."""
        model, generator = self.model, self.rollout_generator
        state = model.initial_state(obs.to(self.device), 1, generator)
        alive = torch.ones(len(obs), dtype=torch.bool, device=self.device)
        added = 0
        for _ in range(self.length):
            current = model.observe(state)
            action = self.policy(current, generator)
            step = model.step(state, action, generator)
            rows = alive.nonzero().squeeze(1)
            fields = (current, action, step.reward, model.observe(step.state), step.terminal)
            self.model_replay.add(*(x.index_select(0, rows).float().cpu().numpy() for x in fields))
            added += len(rows)
            alive &= ~step.terminal
            if not alive.any():
                break
            state = step.state
        return added

    def resize(self, length: int) -> None:
        """Make the model buffer hold ``capacity(length)`` rows, keeping the newest."""
        self.length = length
        capacity = self.capacity(length)
        old = self.model_replay
        if capacity == old.capacity:
            return
        new = ReplayBuffer(capacity, (self.obs_dim,), self.action_dim)
        keep = min(len(old), capacity)
        if keep:
            index = (old.pos - keep + np.arange(keep)) % old.capacity
            new.add(*(array[index] for array in old.arrays()))
        self.model_replay = new

    # ------------------------------------------------------------------ logging, files
    def metrics(self) -> dict[str, float]:
        """The last fit's scores, the rollout length, imagined steps, phase seconds."""
        return {
            **self.last_fit,
            "model/rollout_length": float(self.length),
            "model/imagined_steps": float(self.counters["imagined_steps"]),
            "model/buffer_size": float(len(self.model_replay)),
            "time/fit_seconds": self.seconds["fit"],
            "time/imagination_seconds": self.seconds["imagination"],
        }

    def parts(self, training: bool) -> dict[str, Any]:
        """Checkpoint parts: the ensemble; for training also its optimiser, the model
        buffer, counters and RNG states."""
        parts: dict[str, Any] = {"ensemble": self.ensemble}
        if training:
            parts |= {
                "model_optimizer": self.model_trainer,
                "model_replay": _ModelBuffer(self),
                "branch_state": _BranchState(self),
                "fit_rng": GeneratorPart(self.fit_generator),
                "rollout_rng": GeneratorPart(self.rollout_generator),
            }
        return parts


class _ModelBuffer:
    """The model buffer as a part: its capacity follows the rollout length, so a load
    first resizes to the saved capacity."""

    def __init__(self, hook: BranchedRollouts):
        self.hook = hook

    def state_dict(self) -> dict:
        return self.hook.model_replay.state_dict()

    def load_state_dict(self, state: dict) -> None:
        hook = self.hook
        capacity = int(state["capacity"])
        if capacity != hook.model_replay.capacity:
            hook.model_replay = ReplayBuffer(capacity, (hook.obs_dim,), hook.action_dim)
        hook.model_replay.load_state_dict(state)


class _BranchState:
    def __init__(self, hook: BranchedRollouts):
        self.hook = hook

    def state_dict(self) -> dict:
        hook = self.hook
        return {
            "counters": dict(hook.counters),
            "seconds": dict(hook.seconds),
            "length": hook.length,
            "last_fit": dict(hook.last_fit),
            "rng": hook.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict) -> None:
        hook = self.hook
        hook.counters.update(state["counters"])
        hook.seconds.update(state["seconds"])
        hook.length = int(state["length"])
        hook.last_fit = dict(state["last_fit"])
        hook.rng.bit_generator.state = state["rng"]
