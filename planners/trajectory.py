"""Trajectory optimisers for model-predictive control over any continuous-action model.

Each optimiser searches for the action sequence ``[H, D]`` of highest expected return
from each of B start states at once, scoring candidates with
:func:`~mbrl.planners.sequences.score_sequences` (all B x N x P rollouts in one
``model.step`` per horizon step), and returns plans ``[B, H, D]`` inside the box
``[action_low, action_high]`` of ``model.spec``. MPC executes ``plan[:, 0]`` and plans
again; each optimiser warm-starts from its last plan shifted by one step (padded with
the centre of the box). Call ``reset()`` when the episodes start again, or
``reset(rows)`` for the environments that did.

- :class:`RandomShooting` (Nagabandi et al. 2017, MB-MF): N uniform sequences (and the
  shifted last plan); the best is the plan.
- :class:`CEM` (cross-entropy method as in PETS, Chua et al. 2018, and mbrl-lib): a
  Gaussian over sequences refitted to the elites, smoothed by ``alpha``; returns the
  mean of the last iteration's elites (mbrl-lib PR #70: the best sample overfits the
  model).
- :class:`MPPI` (Williams et al. 2017, as filtered in PDDM, Nagabandi et al. 2019):
  time-filtered Gaussian perturbations of the mean, averaged with weights
  ``softmax(return / temperature)``.
- :class:`ICEM` (improved CEM, Pinneri et al. 2020): coloured noise, a population that
  decays over iterations, a fraction of the elites carried to the next iteration, the
  shifted elites of the last call, the mean added in the last iteration.

Model-predictive control through a learned ensemble (its particles, one member each,
are drawn inside the scorer from the start states)::

    planner = CEM(CEMConfig(horizon=15, num_particles=20))
    state = model.initial_state(obs)                # [B, 2 obs_dim + 2] from real obs
    action = planner.plan(model, state, generator)[:, 0]   # [B, D], then step the envs
    planner.reset(terminated | truncated)          # the rows whose episodes restart

Letters: B start states, N population, P particles, H horizon, D action dims. The
noise scales (``init_std``, ``noise_std``) are in units of half the box's width per
dimension. Randomness comes only from the ``generator`` passed to ``plan``.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import torch
from einops import rearrange
from torch import Tensor

from mbrl.model import Model

from .colored_noise import colored_noise
from .sequences import (
    Expand,
    PlanningProblem,
    RolloutFields,
    WarmStart,
    check_int_at_least,
    fail,
    planning_problem,
    top_k,
)

__all__ = [
    "CEM",
    "ICEM",
    "MPPI",
    "CEMConfig",
    "ICEMConfig",
    "MPPIConfig",
    "PlanChoice",
    "RandomShooting",
    "RandomShootingConfig",
    "RolloutFields",
]


class PlanChoice(enum.Enum):
    """Which sequence a CEM-family optimiser returns."""

    ELITE_MEAN = "elite_mean"
    """The mean of the last iteration's elites (mbrl-lib PR #70; robust to model error)."""
    BEST = "best"
    """The best sequence scored in any iteration (iCEM's Algorithm 1 executes it)."""


# ---------------------------------------------------------------------- configs
@dataclass(frozen=True, kw_only=True)
class RandomShootingConfig(RolloutFields):
    """:class:`RandomShooting`."""

    population_size: int = 1000
    """N, uniform candidate sequences per plan; 1000 or more in MB-MF (Nagabandi 2017)."""

    def __post_init__(self):
        super().__post_init__()
        check_int_at_least(self, 1, "population_size")


def _check_elites(config) -> None:
    check_int_at_least(config, 1, "population_size", "num_elites", "num_iterations")
    if config.num_elites > config.population_size:
        fail(config, "num_elites", f"be <= population_size ({config.population_size})")
    if not 0.0 <= config.alpha < 1.0:
        fail(config, "alpha", "be in [0, 1)")
    if not config.init_std > 0:
        fail(config, "init_std", "be > 0")
    if not isinstance(config.choice, PlanChoice):
        fail(config, "choice", "be a PlanChoice")


@dataclass(frozen=True, kw_only=True)
class CEMConfig(RolloutFields):
    """:class:`CEM`."""

    population_size: int = 500
    """N, sequences sampled per iteration; 350-500 in PETS and mbrl-lib."""
    num_elites: int = 50
    """K, best sequences the Gaussian is refitted to; a tenth of N in PETS/mbrl-lib."""
    num_iterations: int = 5
    """Refits per plan; 5 in PETS and mbrl-lib."""
    alpha: float = 0.1
    """Weight of the old mean and std in each refit (momentum), in [0, 1); 0.1 in PETS."""
    init_std: float = 0.5
    """Initial std per entry, in half-widths of the box; 0.5 is PETS's variance
    ``(high - low)**2 / 16``."""
    choice: PlanChoice = PlanChoice.ELITE_MEAN
    """The returned plan; the elites' mean as mbrl-lib after PR #70."""

    def __post_init__(self):
        super().__post_init__()
        _check_elites(self)


@dataclass(frozen=True, kw_only=True)
class MPPIConfig(RolloutFields):
    """:class:`MPPI`."""

    population_size: int = 500
    """N, perturbed sequences per iteration; hundreds to a thousand in PDDM."""
    num_iterations: int = 1
    """Weighted updates per plan; 1 in PDDM (the warm start carries the rest), up to 5."""
    temperature: float = 0.1
    """lambda > 0: weights are ``softmax(return / lambda)``; smaller is greedier (PDDM's
    reward-weighting gamma is 1 / lambda). On the scale of the returns: tune per task."""
    noise_std: float = 0.5
    """Std of the perturbations, in half-widths of the box; about 0.3-1 in PDDM/mbrl-lib."""
    filter_beta: float = 0.7
    """beta in (0, 1] of PDDM's filter ``u_t = beta (mean_t + noise_t) + (1 - beta)
    u_{t-1}``; 1 is unfiltered noise, smaller is smoother; 0.6-0.9 in PDDM/mbrl-lib."""

    def __post_init__(self):
        super().__post_init__()
        check_int_at_least(self, 1, "population_size", "num_iterations")
        if not self.temperature > 0:
            fail(self, "temperature", "be > 0")
        if not self.noise_std > 0:
            fail(self, "noise_std", "be > 0")
        if not 0.0 < self.filter_beta <= 1.0:
            fail(self, "filter_beta", "be in (0, 1]")


@dataclass(frozen=True, kw_only=True)
class ICEMConfig(RolloutFields):
    """:class:`ICEM` (defaults as in Pinneri et al. 2020)."""

    population_size: int = 300
    """N, samples of the first iteration; 100-300 in iCEM."""
    num_elites: int = 10
    """K, elites per iteration; 10 in iCEM."""
    num_iterations: int = 3
    """Refits per plan; 3-4 in iCEM."""
    alpha: float = 0.1
    """Momentum: weight of the old mean and std in each refit, in [0, 1); 0.1 in iCEM."""
    init_std: float = 0.5
    """Initial std per entry, in half-widths of the box; 0.5 in iCEM."""
    noise_beta: float = 2.0
    """Exponent of the noise's power spectrum ``1 / f**beta`` along time, >= 0: 0 white
    (plain CEM), 2 brown; 2-2.5 in iCEM."""
    population_decay: float = 1.25
    """gamma >= 1: iteration i samples ``max(N * gamma**-i, 2 K)``; 1.25 in iCEM."""
    keep_elites_fraction: float = 0.3
    """xi in [0, 1]: share of the elites carried into the next iteration (and, shifted,
    into the next plan); 0.3 in iCEM."""
    choice: PlanChoice = PlanChoice.BEST
    """The returned plan: the best elite, as iCEM executes, or the elites' mean."""

    def __post_init__(self):
        super().__post_init__()
        _check_elites(self)
        if not self.noise_beta >= 0:
            fail(self, "noise_beta", "be >= 0")
        if not self.population_decay >= 1.0:
            fail(self, "population_decay", "be >= 1")
        if not 0.0 <= self.keep_elites_fraction <= 1.0:
            fail(self, "keep_elites_fraction", "be in [0, 1]")
        if 2 * self.num_elites > self.population_size:
            fail(
                self,
                "num_elites",
                f"be <= population_size / 2 (population_size={self.population_size})",
            )

    def population(self, iteration: int) -> int:
        """Samples drawn in ``iteration`` (0-based): ``max(N gamma**-i, 2 K)``."""
        decayed = round(self.population_size * self.population_decay**-iteration)
        return max(decayed, 2 * self.num_elites)

    @property
    def num_kept(self) -> int:
        """Elites carried to the next iteration and plan: ``round(xi K)``."""
        return round(self.keep_elites_fraction * self.num_elites)


# ---------------------------------------------------------------------- optimisers
class _WarmStarted:
    """``state_dict``/``load_state_dict`` of an optimiser: its warm starts (the last plan,
    iCEM's kept elites), so that a checkpointed MPC run plans on as it would have."""

    def state_dict(self) -> dict:
        return {name: warm.state_dict() for name, warm in self._warm_starts().items()}

    def load_state_dict(self, state: dict) -> None:
        for name, warm in self._warm_starts().items():
            warm.load_state_dict(state[name])

    def _warm_starts(self) -> dict[str, WarmStart]:
        return {name: v for name, v in vars(self).items() if isinstance(v, WarmStart)}


class RandomShooting(_WarmStarted):
    """Uniform random sequences; the best one (by mean return over particles) is the plan.
    The last plan, shifted, is one of the candidates, so a plan is never lost."""

    def __init__(self, config: RandomShootingConfig | None = None, *, expand: Expand | None = None):
        self.config = config or RandomShootingConfig()
        self.expand = expand
        self._warm = WarmStart()

    def reset(self, rows: Tensor | None = None) -> None:
        self._warm.reset(rows)

    @torch.no_grad()
    def plan(self, model: Model, state: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """``[B, H, D]`` plans from start states ``state [B, *S]``."""
        problem = planning_problem(
            model, state, self.config, generator, self.expand, "RandomShooting"
        )
        b, n, h, d = problem.batch, self.config.population_size, problem.horizon, problem.action_dim
        uniform = torch.rand((b, n, h, d), generator=generator, device=state.device)
        candidates = problem.low + (problem.high - problem.low) * uniform
        if not self._warm.empty:
            candidates[:, 0] = self._warm.shifted(problem)
        best, _ = top_k(candidates, problem.score(candidates), 1)
        plan = best[:, 0]
        self._warm.keep(plan)
        return plan


def _refit(mean: Tensor, std: Tensor, elites: Tensor, alpha: float) -> tuple[Tensor, Tensor]:
    """CEM's smoothed refit of ``mean, std [B, H, D]`` to ``elites [B, K, H, D]``."""
    elite_mean, elite_std = elites.mean(1), elites.std(1, unbiased=False)
    return alpha * mean + (1 - alpha) * elite_mean, alpha * std + (1 - alpha) * elite_std


class CEM(_WarmStarted):
    """The cross-entropy method over sequences (PETS; mbrl-lib's ``CEMOptimizer``):

    1. mean = the shifted last plan (the centre at first), std = ``init_std``;
    2. for each iteration: sample N sequences ``mean + std * eps``, clip them to the
       box (mbrl-lib's ``clipped_normal``; PETS instead truncates the normal and shrinks
       the variance near the bounds), score them, take the K best (elites);
    3. ``mean = alpha mean + (1 - alpha) mean(elites)``, likewise the std;
    4. return the last elites' mean (or the best sequence seen, ``PlanChoice.BEST``).
    """

    def __init__(self, config: CEMConfig | None = None, *, expand: Expand | None = None):
        self.config = config or CEMConfig()
        self.expand = expand
        self._warm = WarmStart()

    def reset(self, rows: Tensor | None = None) -> None:
        self._warm.reset(rows)

    @torch.no_grad()
    def plan(self, model: Model, state: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """``[B, H, D]`` plans from start states ``state [B, *S]``."""
        config = self.config
        problem = planning_problem(model, state, config, generator, self.expand, "CEM")
        mean = self._warm.shifted(problem)  # 1.
        std = (config.init_std * problem.half_range).expand_as(mean).clone()
        best = _Best(problem)
        shape = (problem.batch, config.population_size, *mean.shape[1:])
        for _ in range(config.num_iterations):
            noise = torch.randn(shape, generator=generator, device=mean.device)  # 2.
            samples = problem.clip(mean[:, None] + std[:, None] * noise)
            elites, elite_returns = top_k(samples, problem.score(samples), config.num_elites)
            best.update(elites[:, 0], elite_returns[:, 0])
            mean, std = _refit(mean, std, elites, config.alpha)  # 3.
        plan = elites.mean(1) if config.choice is PlanChoice.ELITE_MEAN else best.plan  # 4.
        self._warm.keep(plan)
        return plan


class _Best:
    """The best sequence seen for each row across iterations."""

    def __init__(self, problem: PlanningProblem):
        self.plan = problem.centre_plan(problem.batch)
        self.value = torch.full((problem.batch,), -math.inf, device=problem.low.device)

    def update(self, plan: Tensor, value: Tensor) -> None:
        """``plan [B, H, D]`` with returns ``value [B]``, kept where better."""
        better = value > self.value
        self.plan = torch.where(better[:, None, None], plan, self.plan)
        self.value = torch.where(better, value, self.value)


class MPPI(_WarmStarted):
    """Model-predictive path integral control with PDDM's filtered noise:

    1. mean = the shifted last plan; u_{-1} = the first action of the last plan;
    2. for each iteration: perturb ``mean + noise_std * eps`` and filter it along time,
       ``u_t = beta (mean_t + noise_t) + (1 - beta) u_{t-1}``; clip to the box; score;
    3. ``mean = sum_n w_n u_n`` with ``w = softmax(return / temperature)``;
    4. return the mean.
    """

    def __init__(self, config: MPPIConfig | None = None, *, expand: Expand | None = None):
        self.config = config or MPPIConfig()
        self.expand = expand
        self._warm = WarmStart()

    def reset(self, rows: Tensor | None = None) -> None:
        self._warm.reset(rows)

    @torch.no_grad()
    def plan(self, model: Model, state: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """``[B, H, D]`` plans from start states ``state [B, *S]``."""
        config = self.config
        problem = planning_problem(model, state, config, generator, self.expand, "MPPI")
        mean = self._warm.shifted(problem)  # 1.
        last = self._warm.last(problem)
        previous = problem.centre.expand(problem.batch, -1) if last is None else last[:, 0]
        b, n = problem.batch, config.population_size
        std = config.noise_std * problem.half_range
        beta = config.filter_beta
        for _ in range(config.num_iterations):
            noise = std * torch.randn(
                (b, n, *mean.shape[1:]), generator=generator, device=mean.device
            )
            perturbed = mean[:, None] + noise  # 2.
            filtered = torch.empty_like(perturbed)
            action = previous[:, None].expand(b, n, -1)
            for t in range(problem.horizon):
                action = beta * perturbed[:, :, t] + (1 - beta) * action
                filtered[:, :, t] = action
            samples = problem.clip(filtered)
            weights = torch.softmax(problem.score(samples) / config.temperature, dim=1)
            weights = torch.nan_to_num(weights, nan=1.0 / n)  # a row of -inf: uniform
            mean = torch.einsum("bn,bnhd->bhd", weights, samples)  # 3.
        self._warm.keep(mean)
        return mean  # 4.


class ICEM(_WarmStarted):
    """Improved CEM (Pinneri et al. 2020, Algorithm 1), per plan call:

    1. mean = the shifted last plan, std = ``init_std``; kept = the last call's best
       ``round(xi K)`` elites, shifted;
    2. for iteration i: sample ``max(N gamma**-i, 2 K)`` sequences of coloured noise
       (exponent beta along time), ``mean + std * noise``, clipped; add the kept elites,
       and in the last iteration the mean itself; score; take the K best;
    3. kept = the best ``round(xi K)`` elites; refit mean and std as CEM (momentum alpha);
    4. return the best sequence seen (or the last elites' mean).
    """

    def __init__(self, config: ICEMConfig | None = None, *, expand: Expand | None = None):
        self.config = config or ICEMConfig()
        self.expand = expand
        self._warm_plan = WarmStart()
        self._warm_elites = WarmStart()

    def reset(self, rows: Tensor | None = None) -> None:
        self._warm_plan.reset(rows)
        self._warm_elites.reset(rows)

    @torch.no_grad()
    def plan(self, model: Model, state: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """``[B, H, D]`` plans from start states ``state [B, *S]``."""
        config = self.config
        problem = planning_problem(model, state, config, generator, self.expand, "ICEM")
        b, h, d = problem.batch, problem.horizon, problem.action_dim
        mean = self._warm_plan.shifted(problem)  # 1.
        std = (config.init_std * problem.half_range).expand_as(mean).clone()
        kept = None
        if not self._warm_elites.empty and config.num_kept > 0:
            kept = self._warm_elites.shifted(problem)[:, : config.num_kept]
        best = _Best(problem)
        for i in range(config.num_iterations):
            shape = (b, config.population(i), d, h)
            noise = colored_noise(config.noise_beta, shape, generator=generator, device=mean.device)
            samples = problem.clip(
                mean[:, None] + std[:, None] * rearrange(noise, "b n d h -> b n h d")
            )
            extra = [] if kept is None else [kept]  # 2.
            if i == config.num_iterations - 1:
                extra.append(mean[:, None])
            samples = torch.cat([samples, *extra], dim=1)
            elites, elite_returns = top_k(samples, problem.score(samples), config.num_elites)
            best.update(elites[:, 0], elite_returns[:, 0])
            kept = elites[:, : config.num_kept] if config.num_kept > 0 else None  # 3.
            mean, std = _refit(mean, std, elites, config.alpha)
        plan = best.plan if config.choice is PlanChoice.BEST else elites.mean(1)  # 4.
        self._warm_plan.keep(plan)
        if config.num_kept > 0:
            self._warm_elites.keep(elites[:, : config.num_kept])
        return plan
