"""Model-based value expansion as a :class:`~mbrl.training.replay.ModelHook`: the part of
MVE (Feinberg et al. 2018) and STEVE (Buckman et al. 2018) that is not DDPG, TD3 or
SAC, so that the model-free agents run unchanged and only their Q targets change.

Every ``model_train_every`` real steps (from ``learning_starts`` on) the hook fits the
dynamics ensemble to every real transition (:func:`fit_dynamics`: warm start, held-out
early stopping, elites). In every critic update after the first fit it expands each
minibatch transition ``(s, a, r, s', d)``:

- frame 0 is the real next observation ``s'``; the bootstrap's policy (the agent's
  ``TargetContext.policy``) acts in frame ``k`` and the model steps to frame ``k + 1``,
  for ``H`` steps, in ``K`` rollouts per transition (MVE: one rollout in the mean of
  the elites; STEVE: one per elite member, each keeping its member);
- step ``0`` is the real one (reward ``r``, terminal ``d``), step ``k >= 1`` the
  model's (reward ``r_k``, predicted terminal ``d_k``); a terminal step ends the
  sum: nothing after it counts;
- ``V_j`` is the agent's bootstrap value at frame ``j`` under its target networks.

The candidate target of horizon ``j`` (``0 <= j <= H``) for the real pair ``(s, a)``
is ``T_j = sum_{i<=j} gamma^i c_i r_i + gamma^(j+1) c_(j+1) V_j``, where ``c_i`` is 1
while no step before ``i`` was terminal. ``T_0`` is the model-free one-step target.
MVE regresses on ``T_H`` (and, with the TD-k trick, every imagined pair on its own
remaining-horizon target); STEVE on the inverse-variance mix of ``T_0 .. T_H``
(:mod:`mbrl.algorithms.steve`).
"""

from __future__ import annotations

import abc
import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import torch
from einops import rearrange
from torch import Tensor

from mbrl.models import Propagation
from mbrl.training.checkpoint import Attributes
from mbrl.training.config import at_least
from mbrl.training.modelbased import (
    DynamicsFields,
    GeneratorPart,
    fit_dynamics,
    make_dynamics,
    validate_dynamics_fields,
)
from mbrl.training.replay import Batch, CriticTargets, ReplayBuffer, TargetContext

__all__ = [
    "Expansion",
    "ExpansionFields",
    "ValueExpansion",
    "expansion_agent",
    "expansion_config",
    "validate_expansion_fields",
]


@dataclass(frozen=True, kw_only=True)
class ExpansionFields(DynamicsFields):
    """The dynamics ensemble and the expansion of MVE and STEVE."""

    expansion_horizon: int = 3
    """H, model steps of each expansion (STEVE's 3; MVE used up to 10); 0 is the plain
    agent's one-step target."""
    ensemble_size: int = 4
    """Ensemble members (STEVE's 4 dynamics models; MVE expands in their mean)."""
    model_elites: int = 4
    """Members the expansion uses (the best held-out scores); STEVE rolls out each."""
    model_hidden_sizes: tuple[int, ...] = (200, 200, 200, 200)
    """Hidden widths of each member (PETS's and MBPO's 4x200)."""
    model_train_every: int = 250
    """Real steps between fits of the ensemble (MBPO's cadence)."""


def validate_expansion_fields(config: Any) -> None:
    """The checks of :class:`ExpansionFields`; messages name the field."""
    validate_dynamics_fields(config)
    at_least(config, 0, "expansion_horizon")


@dataclass
class Expansion:
    """One expansion of a minibatch of B transitions in K rollouts of H model steps.

    ``frames [K, H + 1, B, D]`` (frame 0: the real next observation), ``actions
    [K, H, B, A]`` (the policy's action in frames 0..H-1), ``rewards [K, H + 1, B]`` and
    ``dones [K, H + 1, B]`` (step 0 the real transition's), ``values [K, M, H + 1, B]``
    (each critic's bootstrap value at every frame)."""

    frames: Tensor
    actions: Tensor
    rewards: Tensor
    dones: Tensor
    values: Tensor

    @property
    def horizon(self) -> int:
        return self.rewards.shape[1] - 1

    def continues(self) -> Tensor:
        """``c [K, H + 2, B]``: 1 while no step before ``i`` was terminal (``c_0 = 1``)."""
        alive = torch.cumprod(1.0 - self.dones, dim=1)
        return torch.cat([torch.ones_like(alive[:, :1]), alive], dim=1)

    def candidates(self, gamma: float, values: Tensor) -> Tensor:
        """``T [..., H + 1, B]`` the candidate targets of horizons 0..H of the real pair
        for bootstrap values ``values [K, ..., H + 1, B]`` (a critic axis or none after K)."""
        h = self.horizon
        c = self.continues()
        discount = gamma ** torch.arange(h + 2, dtype=self.rewards.dtype, device=c.device)
        returns = torch.cumsum(discount[: h + 1, None] * c[:, : h + 1] * self.rewards, dim=1)
        tail = discount[1:, None] * c[:, 1:]  # gamma^(j+1) c_(j+1): [K, H + 1, B]
        extra = values.ndim - returns.ndim
        shape = (returns.shape[0],) + (1,) * extra + returns.shape[1:]
        return returns.reshape(shape) + tail.reshape(shape) * values


class ValueExpansion(abc.ABC):
    """The shared part of the MVE and STEVE hooks (see the module): ``on_transitions``
    counts real steps and fits when due, ``sample`` is the real replay's, and
    :meth:`expand` rolls a minibatch out; subclasses build the critic rows
    (:meth:`targets_of`) from it.

    Give it to an agent as ``TD3(env, config, model_hook=MVE(expansion_horizon=3))``
    (settings: the fields of :attr:`fields`; the rest, such as the seed and
    ``learning_starts``, are the agent's), or use a variant (``MVETD3``) whose one
    config holds both. The agent attaches it (:meth:`attach`) once its replay exists;
    the hook's ``parts`` go into the agent's checkpoints. ``metrics()`` are the last
    fit's scores, the imagined-step count, the phase seconds and the subclass's own
    (:meth:`target_metrics`) for the progress row.
    """

    fields: type = ExpansionFields
    """The dataclass of the hook's settings (a subclass has its own)."""
    propagation = Propagation.MEAN
    """How the rollouts use the ensemble (STEVE: ``TS_INF``, a member per rollout)."""
    state_names: tuple[str, ...] = ("counters", "seconds", "last_fit")
    """The attributes a checkpoint keeps besides the model and the RNGs."""

    def __init__(self, config: Any = None, **settings: Any):
        names = {f.name for f in dataclasses.fields(self.fields)}
        unknown = sorted(set(settings) - names)
        if unknown:
            raise ValueError(
                f"{type(self).__name__} has no setting {', '.join(unknown)}; its settings: "
                f"{', '.join(sorted(names))}"
            )
        if config is not None and settings:
            raise ValueError(f"{type(self).__name__}: give a config or settings, not both")
        self.config, self.settings = config, settings
        self.counters = {"steps": 0, "fits": 0, "last_fit": 0, "imagined_steps": 0}
        self.seconds = {"fit": 0.0, "expansion": 0.0, "update": 0.0}
        self.last_fit: dict[str, float] = {}
        self.replay: ReplayBuffer | None = None

    @classmethod
    def validate(cls, config: Any) -> None:
        """The config checks of the hook's fields; messages name the field."""
        validate_expansion_fields(config)

    def attach(self, agent: Any, action_space: Any) -> None:
        """Make the ensemble, its trainer and the model for ``agent``'s environment, and
        keep its replay (to fit to) and console (for the fits' progress). Called by the
        agent's set-up; the config is the variant's, or the agent's with the hook's
        settings."""
        if self.config is None:
            base = type(agent.config)
            cls = expansion_config(base, type(self), f"{type(self).__name__}{type(agent).__name__}")
            own = {f.name: getattr(agent.config, f.name) for f in dataclasses.fields(base)}
            self.config = cls(**(own | self.settings))
        config = self.config
        if len(agent.obs_shape) != 1:
            raise ValueError(f"{type(self).__name__} needs flat observations; {config.env} has "
                             f"shape {agent.obs_shape}")  # fmt: skip
        self.device, self.console = agent.device, agent.console
        self.ensemble, self.model_trainer, self.model = make_dynamics(
            config, agent.obs_shape[0], action_space, agent.device, propagation=self.propagation
        )
        self.fit_generator = torch.Generator().manual_seed(config.seed + 1)
        self.rollout_generator = torch.Generator(agent.device).manual_seed(config.seed + 2)
        self.replay = agent.replay

    @property
    def num_rollouts(self) -> int:
        """K, rollouts per transition."""
        return 1

    # ------------------------------------------------------------------ the hook
    def on_transitions(self, batch: Batch) -> None:
        self.counters["steps"] = step = self.counters["steps"] + len(batch)
        config = self.config
        if step >= config.learning_starts and (
            (step - config.learning_starts) % config.model_train_every == 0
        ):
            if self.replay is None:
                raise RuntimeError(f"{type(self).__name__} is not attached to an agent")
            start = time.perf_counter()
            self.last_fit = fit_dynamics(self)
            self.seconds["fit"] += time.perf_counter() - start

    def sample(self, replay: ReplayBuffer, batch_size: int, rng) -> Batch:
        return replay.sample(batch_size, rng)

    def critic_targets(self, batch: Batch, context: TargetContext) -> CriticTargets | None:
        """The critic rows of a minibatch; None (the one-step target) before the first fit
        or with H = 0."""
        if self.counters["fits"] == 0 or self.config.expansion_horizon == 0:
            return None
        start = time.perf_counter()
        rows = self.targets_of(self.expand(batch, context), batch, context)
        self.seconds["expansion"] += time.perf_counter() - start
        return rows

    @abc.abstractmethod
    def targets_of(
        self, expansion: Expansion, batch: Batch, context: TargetContext
    ) -> CriticTargets:
        """The critic rows of a minibatch from its expansion (MVE's, STEVE's)."""

    # ------------------------------------------------------------------ expansion
    @torch.no_grad()
    def expand(self, batch: Batch, context: TargetContext) -> Expansion:
        """Roll the minibatch's next observations ``H`` steps through the model in K
        rollouts each, and evaluate the critics at every frame."""
        model, generator = self.model, self.rollout_generator
        k, h, b = self.num_rollouts, self.config.expansion_horizon, len(batch)
        state = model.initial_state(batch.next_obs.to(self.device), k, generator)  # (b k)
        frames, actions = [model.observe(state)], []
        rewards = [batch.reward.repeat_interleave(k)]
        dones = [batch.terminated.float().repeat_interleave(k)]
        for _ in range(h):
            action = context.policy(frames[-1])
            step = model.step(state, action, generator)
            state = step.state
            actions.append(action)
            rewards.append(step.reward)
            dones.append(step.terminal.float())
            frames.append(model.observe(state))
        self.counters["imagined_steps"] += b * k * h
        stacked = torch.stack(frames)  # [H + 1, (b k), D]
        values = context.next_values(stacked.flatten(0, 1))  # [M, (H + 1) (b k)]
        per_row = "t (b k) ... -> k t b ..."
        return Expansion(
            frames=rearrange(stacked, per_row, k=k),
            actions=rearrange(torch.stack(actions), per_row, k=k)
            if actions
            else stacked.new_zeros(k, 0, b, batch.action.shape[1]),
            rewards=rearrange(torch.stack(rewards), "t (b k) -> k t b", k=k),
            dones=rearrange(torch.stack(dones), "t (b k) -> k t b", k=k),
            values=rearrange(values, "m (t b k) -> k m t b", t=h + 1, k=k),
        )

    # ------------------------------------------------------------------ logging, files
    def target_metrics(self) -> dict[str, float]:
        """The subclass's own progress metrics (STEVE: the weight of each horizon)."""
        return {}

    def metrics(self) -> dict[str, float]:
        """The last fit's scores, imagined steps, phase seconds, the targets' own."""
        return {
            **self.last_fit,
            "model/imagined_steps": float(self.counters["imagined_steps"]),
            "time/fit_seconds": self.seconds["fit"],
            "time/expansion_seconds": self.seconds["expansion"],
            "time/update_seconds": self.seconds["update"],
            **self.target_metrics(),
        }

    def parts(self, training: bool) -> dict[str, Any]:
        """Checkpoint parts: the ensemble; for training also its optimiser, counters and
        RNG states."""
        parts: dict[str, Any] = {"ensemble": self.ensemble}
        if training:
            parts |= {
                "model_optimizer": self.model_trainer,
                "expansion_state": Attributes(self, self.state_names),
                "fit_rng": GeneratorPart(self.fit_generator),
                "rollout_rng": GeneratorPart(self.rollout_generator),
            }
        return parts


_CONFIGS: dict[tuple[type, type], type] = {}


def expansion_config(base: type, hook_cls: type, name: str) -> type:
    """The config class of ``base`` (an agent's config) with the fields of ``hook_cls``,
    checked by both (one class per pair, named ``<name>Config``)."""
    key = (base, hook_cls)
    if key not in _CONFIGS:

        def post_init(self):
            base.__post_init__(self)
            hook_cls.validate(self)

        _CONFIGS[key] = dataclasses.make_dataclass(
            f"{name}Config",
            [],
            bases=(base, hook_cls.fields),
            namespace={
                "__post_init__": post_init,
                "__doc__": f"{name}: the agent's config and the value expansion's.",
                "__module__": hook_cls.__module__,
            },
            frozen=True,
            kw_only=True,
        )
    return _CONFIGS[key]


def expansion_agent(
    base: type, hook_cls: type, *, algo: str, name: str, doc: str, step_cost: float
) -> type:
    """The agent ``base`` (DDPG, TD3 or SAC) with the value-expansion hook ``hook_cls``
    built in: one config with the hook's fields (``mbrl train <algo>``, bench cells),
    the model checkpointed with the agent, the hook's metrics and the update's seconds in
    each progress row. Not a second copy of the agent: the base class's update runs
    unchanged, only its critic targets differ."""
    config_cls = expansion_config(base.Config, hook_cls, name)

    def __init__(self, env: str, config=None, *, run_dir=None, console=None):
        config = config_cls(env=env) if config is None else dataclasses.replace(config, env=env)
        base.__init__(self, env, config, run_dir=run_dir, console=console,
                      model_hook=hook_cls(config))  # fmt: skip

    def update(self, batch: Batch) -> dict[str, Any]:
        start = time.perf_counter()
        metrics = base.update(self, batch)
        self.hook.seconds["update"] += time.perf_counter() - start
        return metrics | self.hook.metrics()

    namespace = {
        "__init__": __init__,
        "update": update,
        "algo": algo,
        "Config": config_cls,
        "FORMAT": f"mbrl.{algo}/1",
        "step_cost": step_cost,
        "variant_of": base.algo,
        "__doc__": doc,
        "__module__": hook_cls.__module__,
    }
    return type(name, (base,), namespace)
