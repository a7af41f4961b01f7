"""Scoring action sequences on a model, and the parts the trajectory optimisers share.

Letters: B start states (environments planned for), N candidate sequences
(population), P particles, H horizon, D action dims.

:func:`score_sequences` rolls every candidate sequence ``[B, N, H, D]`` out from its
start state for P particles at once: the rows ``(b n p)`` of one state tensor, one
``model.step`` per horizon step. A row's return is the (discounted) sum of its rewards
up to and including the step that makes it terminal; a candidate's score is the mean
over its P particles.

Particles (the seam): an ``Expand`` callable ``expand(state [B, *S], P, generator) ->
[B * P, *S]`` (rows ``(b p)``) makes the P particles of each start state. By default a
:class:`ParticleModel` (a model whose rollouts start from observations, one
ensemble member per particle: :class:`~mbrl.models.LearnedModel`) makes them with its
own ``initial_state(observe(state), P, generator)``; any other model's state is
repeated P times (:func:`repeat_particles`). Every candidate of a start state sees the
same P particles (common random numbers: under TS-inf the same members), so
candidates are compared on the same draws.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from einops import rearrange, repeat
from torch import Tensor

from mbrl.model import Model, ShapeError

__all__ = [
    "Expand",
    "ParticleModel",
    "PlanningProblem",
    "RolloutFields",
    "WarmStart",
    "action_bounds",
    "default_expand",
    "repeat_particles",
    "score_sequences",
    "top_k",
]

Expand = Callable[[Tensor, int, "torch.Generator | None"], Tensor]
"""``expand(state [B, *S], num_particles P, generator) -> [B * P, *S]``, rows ``(b p)``."""


@runtime_checkable
class ParticleModel(Protocol):
    """A model whose particles are made from observations, each with its own ensemble
    member (:class:`~mbrl.models.LearnedModel`)."""

    num_members: int

    def initial_state(
        self, obs: Tensor, num_particles: int = 1, generator: torch.Generator | None = None
    ) -> Tensor:
        """``[B * P, *S]`` states from observations ``[B, *obs_shape]``, rows ``(b p)``."""
        ...

    def observe(self, state: Tensor) -> Tensor: ...


def repeat_particles(
    state: Tensor, num_particles: int, generator: torch.Generator | None = None
) -> Tensor:
    """``[B * P, *S]``: each state repeated P times (rows ``(b p)``), for exact models."""
    return repeat(state, "b ... -> (b p) ...", p=num_particles)


def default_expand(model: Model) -> Expand:
    """The model's own particles (a :class:`ParticleModel`), else :func:`repeat_particles`."""
    if isinstance(model, ParticleModel):

        def expand(state: Tensor, num_particles: int, generator=None) -> Tensor:
            return model.initial_state(model.observe(state), num_particles, generator)

        return expand
    return repeat_particles


@torch.no_grad()
def score_sequences(
    model: Model,
    state: Tensor,
    actions: Tensor,
    *,
    num_particles: int = 1,
    generator: torch.Generator | None = None,
    discount: float = 1.0,
    expand: Expand | None = None,
) -> Tensor:
    """``[B, N]`` float32 mean over P particles of the return of each candidate.

    ``state [B, *S]`` start states, ``actions [B, N, H, *action_shape]`` float. The return
    is ``sum_t discount**t r_t`` over the steps before a row is terminal (the step into
    a terminal state counts, later ones do not). A NaN return scores ``-inf``.
    """
    b, n, h = actions.shape[:3]
    action_shape = tuple(actions.shape[3:])
    if state.shape[0] != b:
        raise ShapeError(
            f"score_sequences: {state.shape[0]} start states for {b} rows of candidates "
            f"(actions {list(actions.shape)})"
        )
    if action_shape != tuple(model.spec.action_shape):
        raise ShapeError(
            f"score_sequences: actions must be [B, N, H, {', '.join(map(str, action_shape))}]"
            f" for {model.spec.name}'s action_shape {model.spec.action_shape}, got "
            f"{list(actions.shape)}"
        )
    if num_particles < 1:
        raise ValueError(f"score_sequences: num_particles must be >= 1, got {num_particles}")
    p = num_particles
    particles = (expand or default_expand(model))(state, p, generator)
    if particles.shape[0] != b * p:
        raise ShapeError(
            f"score_sequences: expand must return {b * p} rows (B={b} x P={p}), got "
            f"{particles.shape[0]}"
        )
    rows = repeat(particles, "(b p) ... -> (b n p) ...", b=b, n=n)
    total = torch.zeros(b * n * p, device=rows.device)
    alive = torch.ones(b * n * p, dtype=torch.bool, device=rows.device)
    weight = 1.0
    for t in range(h):
        action = repeat(actions[:, :, t], "b n ... -> (b n p) ...", p=p).to(rows.device)
        result = model.step(rows, action, generator)
        total += weight * torch.where(alive, result.reward.to(total.dtype), 0.0)
        alive &= ~result.terminal
        rows = result.state
        weight *= discount
    returns = rearrange(total, "(b n p) -> b n p", b=b, n=n).mean(-1)
    return torch.nan_to_num(returns, nan=-math.inf, posinf=math.inf, neginf=-math.inf)


def action_bounds(model: Model, planner: str) -> tuple[Tensor, Tensor]:
    """``(low [D], high [D])`` float32 from ``model.spec``; refuses a discrete or unbounded
    action space, naming the spec."""
    spec = model.spec
    if spec.is_discrete:
        raise ValueError(
            f"{planner} plans continuous actions; model {spec.name!r} is discrete "
            f"(ModelSpec.num_actions={spec.num_actions})"
        )
    if spec.action_low is None or spec.action_high is None:
        raise ValueError(
            f"{planner} needs bounded actions; model {spec.name!r} has "
            "ModelSpec.action_low/action_high None"
        )
    return (
        torch.tensor(spec.action_low, dtype=torch.float32),
        torch.tensor(spec.action_high, dtype=torch.float32),
    )


def top_k(samples: Tensor, returns: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The k best candidates of each row, best first: ``samples [B, N, H, D]``,
    ``returns [B, N]`` -> ``([B, k, H, D], [B, k])``."""
    values, index = returns.topk(k, dim=1)
    return torch.take_along_dim(samples, index[:, :, None, None], dim=1), values


@dataclass(frozen=True, kw_only=True)
class RolloutFields:
    """How candidates are scored: horizon, particles and discount (every optimiser)."""

    horizon: int = 15
    """H, steps of each planned sequence; 15 in mbrl-lib's PETS cartpole, 10-30 in PETS."""
    num_particles: int = 20
    """P, rollouts per candidate whose returns are averaged; 20 in PETS, 1 for a
    deterministic model."""
    discount: float = 1.0
    """Factor on each later step's reward, in (0, 1]; 1 in PETS and MB-MF."""

    def __post_init__(self):
        check_int_at_least(self, 1, "horizon", "num_particles")
        if not 0.0 < self.discount <= 1.0:
            fail(self, "discount", "be in (0, 1]")


@dataclass(frozen=True)
class PlanningProblem:
    """What one ``plan`` call optimises: the box, the batch and the scorer."""

    low: Tensor
    """[D] lower action bounds (on the state's device)."""
    high: Tensor
    """[D] upper action bounds."""
    batch: int
    """B, the start states."""
    horizon: int
    """H."""
    score: Callable[[Tensor], Tensor]
    """``[B, N, H, D] -> [B, N]`` the scorer bound to the model, state and generator."""

    @property
    def centre(self) -> Tensor:
        """[D] the middle of the box (the padding of shifted plans)."""
        return (self.low + self.high) / 2

    @property
    def half_range(self) -> Tensor:
        """[D] half the width of the box (the unit of the noise scales)."""
        return (self.high - self.low) / 2

    @property
    def action_dim(self) -> int:
        return self.low.shape[0]

    def clip(self, actions: Tensor) -> Tensor:
        """``[..., D]`` clamped into the box."""
        return torch.clamp(actions, self.low, self.high)

    def centre_plan(self, *rows: int) -> Tensor:
        """``[*rows, H, D]`` the centre repeated."""
        return self.centre.expand(*rows, self.horizon, self.action_dim).clone()


def planning_problem(
    model: Model,
    state: Tensor,
    config: RolloutFields,
    generator: torch.Generator | None,
    expand: Expand | None,
    planner: str,
) -> PlanningProblem:
    """Bind the model, ``state [B, *S]`` and the config's horizon, particles and discount."""
    low, high = action_bounds(model, planner)
    if len(model.spec.action_shape) != 1:
        raise ValueError(
            f"{planner} plans flat action vectors [D]; model {model.spec.name!r} has "
            f"ModelSpec.action_shape {model.spec.action_shape}"
        )

    def score(actions: Tensor) -> Tensor:
        return score_sequences(
            model,
            state,
            actions,
            num_particles=config.num_particles,
            generator=generator,
            discount=config.discount,
            expand=expand,
        )

    device = state.device
    return PlanningProblem(
        low=low.to(device), high=high.to(device), batch=state.shape[0],
        horizon=config.horizon, score=score,
    )  # fmt: skip


class WarmStart:
    """The sequences a planner kept from its last call (``[B, ..., H, D]``: a plan, or
    elites), shifted one step forward for the next call and padded with the centre of
    the box. ``reset(rows)`` forgets some rows (an environment that started a new
    episode), ``reset()`` all."""

    def __init__(self):
        self._kept: Tensor | None = None
        self._fresh: Tensor | None = None  # [B] bool: rows reset since the last keep

    def keep(self, sequences: Tensor) -> None:
        self._kept = sequences.detach().clone()
        self._fresh = torch.zeros(sequences.shape[0], dtype=torch.bool, device=sequences.device)

    def reset(self, rows: Tensor | None = None) -> None:
        """Forget every row, or those where ``rows`` (``[B]`` bool or int64 indices) says."""
        if rows is None or self._kept is None:
            self._kept = self._fresh = None
        else:
            self._fresh[rows.to(self._fresh.device)] = True

    @property
    def empty(self) -> bool:
        return self._kept is None

    def state_dict(self) -> dict:
        """The kept sequences and reset rows (to checkpoint a planner mid-episode)."""
        return {"kept": self._kept, "fresh": self._fresh}

    def load_state_dict(self, state: dict) -> None:
        self._kept, self._fresh = state["kept"], state["fresh"]

    def last(self, problem: PlanningProblem) -> Tensor | None:
        """The kept sequences as they were, reset rows at the centre (None if none)."""
        if self._kept is None:
            return None
        if self._kept.shape[0] != problem.batch:
            raise ValueError(
                f"plan got {problem.batch} start states but its warm start holds "
                f"{self._kept.shape[0]}; call reset() before planning for another batch"
            )
        kept = self._kept.to(problem.low.device)
        centre = torch.broadcast_to(problem.centre, kept.shape)
        fresh = self._fresh.to(kept.device).view(-1, *([1] * (kept.ndim - 1)))
        return torch.where(fresh, centre, kept)

    def shifted(self, problem: PlanningProblem, *shape: int) -> Tensor:
        """The kept sequences ``[B, ..., H, D]`` a step on, padded with the centre; the
        centre ``[B, *shape, H, D]`` when nothing is kept."""
        last = self.last(problem)
        if last is None:
            return problem.centre_plan(problem.batch, *shape)
        pad = torch.broadcast_to(problem.centre, last[..., :1, :].shape)
        return torch.cat([last[..., 1:, :], pad], dim=-2)


def fail(config: Any, field: str, requirement: str) -> None:
    """Raise ``ValueError("<Config>.<field> must <requirement>, got <value>")``."""
    value = getattr(config, field)
    raise ValueError(f"{type(config).__qualname__}.{field} must {requirement}, got {value!r}")


def check_int_at_least(config: Any, minimum: int, *fields: str) -> None:
    for field in fields:
        value = getattr(config, field)
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            fail(config, field, f"be an integer >= {minimum}")
