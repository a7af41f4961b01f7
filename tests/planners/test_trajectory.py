"""Trajectory optimisers (random shooting, CEM, MPPI, iCEM) and the sequence scorer.

Oracles: a quadratic world whose optimal sequence is known in closed form, a plain
Python loop over candidates and particles beside the batched scorer, and the closed
form of the coloured-noise spectrum.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from mbrl.model import ModelSpec, ShapeError, Step
from mbrl.models import Ensemble, EnsembleConfig, EnsembleKind, LearnedModel, Propagation
from mbrl.planners.colored_noise import colored_noise, expected_periodogram
from mbrl.planners.sequences import WarmStart, default_expand, planning_problem, score_sequences
from mbrl.planners.trajectory import (
    CEM,
    ICEM,
    MPPI,
    CEMConfig,
    ICEMConfig,
    MPPIConfig,
    PlanChoice,
    RandomShooting,
    RandomShootingConfig,
    RolloutFields,
)

pytestmark = pytest.mark.usefixtures("one_thread")

D = 2
LOW, HIGH = (-1.0, -0.5), (1.0, 1.5)


class Quadratic:
    """A point-mass-free quadratic world: the state ``[B, 2D + 1]`` holds a target c, a
    drift v and the time t; the reward of action a is ``-||a - (c + v t)||**2``, so the
    optimal sequence is ``a*_t = c + v t``. With ``end`` a row is terminal once
    ``t >= end``; a ``leaky`` world keeps paying rewards after that (it breaks the
    absorbing contract on purpose: the scorer must stop counting by itself)."""

    def __init__(self, *, end: int | None = None, leaky: bool = False, bounded: bool = True):
        self.end, self.leaky = end, leaky
        self.spec = ModelSpec(
            name="quadratic",
            obs_shape=(2 * D + 1,),
            state_shape=(2 * D + 1,),
            state_dtype=torch.float32,
            num_actions=None,
            action_shape=(D,),
            action_low=LOW if bounded else None,
            action_high=HIGH if bounded else None,
        )

    def optimum(self, state: torch.Tensor, horizon: int) -> torch.Tensor:
        """``[B, H, D]`` the best sequence."""
        t = state[:, -1:, None] + torch.arange(horizon)[None, :, None]
        return state[:, None, :D] + state[:, None, D : 2 * D] * t

    def _done(self, state):
        if self.end is None:
            return torch.zeros(state.shape[0], dtype=torch.bool)
        return state[:, -1] >= self.end

    def step(self, state, action, generator=None) -> Step:
        done = self._done(state)
        target = state[:, :D] + state[:, D : 2 * D] * state[:, -1:]
        reward = -((action - target) ** 2).sum(1)
        next_state = state.clone()
        next_state[:, -1] += 1
        if not self.leaky:
            next_state = torch.where(done[:, None], state, next_state)
            reward = torch.where(done, 0.0, reward)
        return Step(next_state, reward, done | self._done(next_state))

    def observe(self, state):
        return state.clone()

    def legal_actions(self, state):
        return (~self._done(state))[:, None]

    def to_play(self, state):
        return torch.zeros(state.shape[0], dtype=torch.int64)


def quadratic_states(*rows) -> torch.Tensor:
    """States from ``(c0, c1, v0, v1)`` rows at t = 0."""
    return torch.tensor([[*row, 0.0] for row in rows])


STATES = quadratic_states((0.3, -0.2, 0.1, 0.15), (-0.6, 1.0, 0.05, -0.2))


def generator(seed=0):
    return torch.Generator().manual_seed(seed)


def small_learned_model(propagation=Propagation.TS_INF, kind=EnsembleKind.DETERMINISTIC):
    config = EnsembleConfig(
        obs_dim=3,
        action_dim=D,
        kind=kind,
        num_members=3,
        num_elites=3,
        hidden_sizes=(16,),
        learn_reward=False,
    )
    ensemble = Ensemble(config, generator=generator(5))
    return LearnedModel(
        ensemble,
        propagation=propagation,
        reward_fn=lambda obs, action, next_obs: -(next_obs**2).sum(1) - 0.1 * (action**2).sum(1),
        termination_fn=lambda obs, action, next_obs: next_obs[:, 0] > 1.5,
        action_low=LOW,
        action_high=HIGH,
    )


# ---------------------------------------------------------------------- the scorer
def loop_scores(model, particles, actions, num_particles, discount):
    """The oracle: each candidate and particle rolled out alone, one row at a time."""
    b, n, h = actions.shape[:3]
    scores = torch.zeros(b, n)
    for i in range(b):
        for j in range(n):
            total = 0.0
            for k in range(num_particles):
                row = particles[i * num_particles + k][None]
                value, weight = 0.0, 1.0
                for t in range(h):
                    result = model.step(row, actions[i, j, t][None])
                    value += weight * float(result.reward[0])
                    weight *= discount
                    if bool(result.terminal[0]):
                        break
                    row = result.state
                total += value
            scores[i, j] = total / num_particles
    return scores


def test_scorer_equals_a_loop_over_candidates_and_particles_of_an_ensemble():
    model = small_learned_model()
    b, n, h, p = 2, 4, 3, 3
    state = model.initial_state(torch.randn(b, 3, generator=generator(1)) * 0.5)
    actions = torch.rand(b, n, h, D, generator=generator(2)) * 2 - 1
    scores = score_sequences(
        model, state, actions, num_particles=p, generator=generator(3), discount=0.9
    )
    particles = default_expand(model)(state, p, generator(3))  # the same draws
    assert len(set(model.member(particles).tolist())) == 3  # particles differ by member
    expected = loop_scores(model, particles, actions, p, 0.9)
    assert scores.shape == (b, n)
    torch.testing.assert_close(scores, expected, rtol=1e-5, atol=1e-5)


def test_scorer_equals_a_loop_with_terminal_rows():
    model = Quadratic(end=2, leaky=True)
    state = torch.cat([STATES, quadratic_states((0.0, 0.0, 0.0, 0.0))])
    state[2, -1] = 1.0  # one row starts a step before its end
    actions = torch.rand(3, 5, 4, D, generator=generator(4))
    scores = score_sequences(model, state, actions, num_particles=2, discount=0.8)
    particles = state.repeat_interleave(2, dim=0)
    torch.testing.assert_close(scores, loop_scores(model, particles, actions, 2, 0.8))


def test_terminal_rows_stop_collecting_reward():
    """Closed form: the leaky world pays after the end, the scorer must not count it."""
    model = Quadratic(end=2, leaky=True)
    actions = torch.rand(2, 3, 5, D, generator=generator(6))
    optimum = model.optimum(STATES, 5)[:, None]
    per_step = -((actions - optimum) ** 2).sum(-1)  # [B, N, H]
    scores = score_sequences(model, STATES, actions, discount=0.5)
    expected = per_step[..., 0] + 0.5 * per_step[..., 1]  # steps 0 and 1 only
    torch.testing.assert_close(scores, expected)
    absorbing = score_sequences(Quadratic(end=2), STATES, actions, discount=0.5)
    torch.testing.assert_close(absorbing, expected)


def test_scorer_refuses_mismatched_shapes():
    model = Quadratic()
    with pytest.raises(ShapeError, match="start states"):
        score_sequences(model, STATES[:1], torch.zeros(2, 3, 4, D))
    with pytest.raises(ShapeError, match="action_shape"):
        score_sequences(model, STATES, torch.zeros(2, 3, 4, D + 1))


# ---------------------------------------------------------------------- coloured noise
@pytest.mark.parametrize("beta", [0.0, 1.0, 2.0, 2.5])
def test_colored_noise_has_the_power_law_spectrum(beta):
    horizon, samples = 32, 4000
    noise = colored_noise(beta, (samples, horizon), generator=generator(7))
    assert noise.shape == (samples, horizon)
    assert abs(float(noise.var()) - 1.0) < 0.05  # unit variance per entry
    periodogram = (torch.fft.rfft(noise.double()).abs() ** 2).mean(0)
    expected = expected_periodogram(beta, horizon)
    torch.testing.assert_close(periodogram, expected, rtol=0.12, atol=0.0)
    # The slope of log power against log frequency is -beta (interior frequencies).
    freqs = torch.fft.rfftfreq(horizon, dtype=torch.float64)[1:-1]
    x, y = freqs.log(), periodogram[1:-1].log()
    slope = float(((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum())
    assert slope == pytest.approx(-beta, abs=0.05)


def test_colored_noise_closed_form_is_a_power_law():
    expected = expected_periodogram(2.0, 16)
    freqs = torch.fft.rfftfreq(16, dtype=torch.float64)
    ratio = expected[1:] * freqs[1:] ** 2  # f**-2 times f**2: constant
    torch.testing.assert_close(ratio, torch.full_like(ratio, float(ratio[0])))


# ---------------------------------------------------------------------- optimisers
MPPI_FIELDS = {"temperature": 0.02, "noise_std": 0.1, "filter_beta": 1.0}
PLANNERS = {
    "random_shooting": lambda **kw: RandomShooting(
        RandomShootingConfig(horizon=3, num_particles=1, population_size=3000, **kw)
    ),
    "cem": lambda **kw: CEM(
        CEMConfig(
            horizon=3, num_particles=1, population_size=200, num_elites=20, num_iterations=10, **kw
        )
    ),
    "mppi": lambda **kw: MPPI(
        MPPIConfig(
            horizon=3, num_particles=1, population_size=500, num_iterations=15, **MPPI_FIELDS, **kw
        )
    ),
    "icem": lambda **kw: ICEM(
        ICEMConfig(
            horizon=3,
            num_particles=1,
            population_size=300,
            num_elites=20,
            num_iterations=10,
            init_std=1.0,
            **kw,
        )
    ),  # iCEM's std collapses faster than CEM's (its population shrinks): a wider start
}
TOLERANCE = {"random_shooting": 0.4, "cem": 0.01, "mppi": 0.03, "icem": 0.02}


@pytest.mark.parametrize("name", PLANNERS)
def test_each_optimiser_finds_the_optimum_of_a_quadratic(name):
    model = Quadratic()
    plan = PLANNERS[name]().plan(model, STATES, generator(8))
    optimum = model.optimum(STATES, 3)
    assert plan.shape == (2, 3, D)
    error = float((plan - optimum).abs().max())
    assert error < TOLERANCE[name], f"{name}: max error {error:.4f}"


def test_cem_returns_the_elite_mean_not_the_best_sample():
    model = Quadratic()
    config = CEMConfig(
        horizon=2, num_particles=1, population_size=30, num_elites=5, num_iterations=1
    )
    mean = CEM(config).plan(model, STATES, generator(9))
    best = CEM(replace(config, choice=PlanChoice.BEST)).plan(model, STATES, generator(9))
    assert not torch.allclose(mean, best)
    # The same draws by hand: the elites' mean and the best sample of the one iteration.
    noise = torch.randn((2, 30, 2, D), generator=generator(9))
    problem = planning_problem(model, STATES, config, None, None, "CEM")
    samples = problem.clip(problem.centre + 0.5 * problem.half_range * noise)
    elite_scores = score_sequences(model, STATES, samples)
    index = elite_scores.topk(5, dim=1).indices
    elites = torch.take_along_dim(samples, index[:, :, None, None], dim=1)
    torch.testing.assert_close(mean, elites.mean(1))
    torch.testing.assert_close(best, elites[:, 0])


@pytest.mark.parametrize("name", PLANNERS)
def test_plans_respect_the_bounds(name):
    model = Quadratic()
    far = quadratic_states((3.0, -2.0, 0.5, 0.5), (-3.0, 4.0, 0.0, 0.0))  # optimum outside
    plan = PLANNERS[name]().plan(model, far, generator(10))
    low, high = torch.tensor(LOW), torch.tensor(HIGH)
    assert ((plan >= low) & (plan <= high)).all()
    if name != "random_shooting":  # the best in the box is the clipped optimum
        clipped = torch.clamp(model.optimum(far, 3), low, high)
        assert float((plan - clipped).abs().max()) < 0.06


# The optimiser's noise shrunk to nothing: its plan is then the warm start itself.
FROZEN = {
    "cem": {"init_std": 1e-7},
    "mppi": {"noise_std": 1e-7, "filter_beta": 1.0},
    "icem": {"init_std": 1e-7, "keep_elites_fraction": 0.0, "choice": PlanChoice.ELITE_MEAN},
}


@pytest.mark.parametrize("name", FROZEN)
def test_warm_start_is_the_last_plan_shifted_and_padded_with_the_centre(name):
    model = Quadratic()
    planner = PLANNERS[name]()
    first = planner.plan(model, STATES, generator(11))
    planner.config = replace(planner.config, **FROZEN[name])
    second = planner.plan(model, STATES, generator(12))
    centre = (torch.tensor(LOW) + torch.tensor(HIGH)) / 2
    torch.testing.assert_close(second[:, :-1], first[:, 1:], atol=1e-4, rtol=0)
    torch.testing.assert_close(second[:, -1], centre.expand(2, D), atol=1e-4, rtol=0)
    planner.reset(torch.tensor([True, False]))  # row 0's environment starts again
    third = planner.plan(model, STATES, generator(13))
    torch.testing.assert_close(third[0], centre.expand(3, D), atol=1e-4, rtol=0)
    torch.testing.assert_close(third[1, :-1], second[1, 1:], atol=1e-4, rtol=0)
    planner.reset()
    torch.testing.assert_close(
        planner.plan(model, STATES, generator(14)), centre.expand(2, 3, D), atol=1e-4, rtol=0
    )


def test_random_shooting_keeps_the_shifted_plan_as_a_candidate():
    model = Quadratic()
    planner = PLANNERS["random_shooting"]()
    first = planner.plan(model, STATES, generator(15))
    planner.config = replace(planner.config, population_size=1)  # only the warm start
    second = planner.plan(model, STATES, generator(16))
    torch.testing.assert_close(second[:, :-1], first[:, 1:])


def test_warm_start_refuses_another_batch_size():
    warm = WarmStart()
    problem = planning_problem(Quadratic(), STATES, CEMConfig(horizon=3), None, None, "CEM")
    warm.keep(problem.centre_plan(3))
    with pytest.raises(ValueError, match="reset"):
        warm.shifted(problem)


@pytest.mark.parametrize("name", PLANNERS)
def test_rows_are_planned_independently(name):
    """The plan of one start state does not depend on the others planned beside it."""
    model = Quadratic()
    other = quadratic_states((0.9, 1.2, -0.1, 0.0))
    a = PLANNERS[name]().plan(model, STATES, generator(17))
    b = PLANNERS[name]().plan(model, torch.cat([STATES[:1], other]), generator(17))
    torch.testing.assert_close(a[0], b[0], rtol=0, atol=0)
    assert not torch.equal(a[1], b[1])


@pytest.mark.parametrize("name", PLANNERS)
def test_same_generator_same_plan(name):
    model = Quadratic()
    a = PLANNERS[name]().plan(model, STATES, generator(18))
    b = PLANNERS[name]().plan(model, STATES, generator(18))
    assert torch.equal(a, b)


@pytest.mark.parametrize("name", PLANNERS)
def test_a_discrete_or_unbounded_model_is_refused(name):
    discrete = Quadratic()
    discrete.spec = ModelSpec(
        name="tiny_discrete", obs_shape=(1,), state_shape=(1,), state_dtype=torch.int64,
        num_actions=3,
    )  # fmt: skip
    planner = PLANNERS[name]()
    with pytest.raises(ValueError, match=r"tiny_discrete.*num_actions=3"):
        planner.plan(discrete, STATES, generator())
    with pytest.raises(ValueError, match=r"action_low/action_high"):
        planner.plan(Quadratic(bounded=False), STATES, generator())


@pytest.mark.parametrize(
    ("config", "field", "value"),
    [
        (RolloutFields, "horizon", 0),
        (RolloutFields, "num_particles", 0),
        (RolloutFields, "discount", 0.0),
        (RolloutFields, "discount", 1.5),
        (RandomShootingConfig, "population_size", 0),
        (CEMConfig, "num_elites", 600),
        (CEMConfig, "num_elites", 0),
        (CEMConfig, "num_iterations", 0),
        (CEMConfig, "alpha", 1.0),
        (CEMConfig, "init_std", 0.0),
        (CEMConfig, "choice", "best"),
        (CEMConfig, "horizon", 2.5),
        (MPPIConfig, "temperature", -1.0),
        (MPPIConfig, "temperature", 0.0),
        (MPPIConfig, "noise_std", 0.0),
        (MPPIConfig, "filter_beta", 0.0),
        (MPPIConfig, "num_iterations", 0),
        (ICEMConfig, "noise_beta", -0.5),
        (ICEMConfig, "population_decay", 0.9),
        (ICEMConfig, "keep_elites_fraction", 1.5),
        (ICEMConfig, "num_elites", 200),
        (ICEMConfig, "num_particles", -1),
    ],
)
def test_bad_configs_are_refused_naming_the_field(config, field, value):
    with pytest.raises(ValueError, match=rf"{config.__name__}\.{field} must"):
        config(**{field: value})


def test_icem_population_decays_to_twice_the_elites():
    config = ICEMConfig(population_size=100, num_elites=10, population_decay=2.0)
    assert [config.population(i) for i in range(4)] == [100, 50, 25, 20]
    assert config.num_kept == 3


# ---------------------------------------------------------------------- a learned model
@pytest.mark.parametrize("name", PLANNERS)
def test_plans_through_a_learned_ensemble(name):
    model = small_learned_model(kind=EnsembleKind.PROBABILISTIC)
    obs = torch.randn(2, 3, generator=generator(19)) * 0.5
    state = model.initial_state(obs)
    planner = PLANNERS[name]()
    planner.config = replace(planner.config, num_particles=4, horizon=5, population_size=60)
    if name in ("cem", "icem"):
        planner.config = replace(planner.config, num_elites=6, num_iterations=2)
    for _ in range(2):  # the second call warm-starts
        plan = planner.plan(model, state, generator(20))
        assert plan.shape == (2, 5, D) and plan.dtype == torch.float32
        assert torch.isfinite(plan).all()
        assert ((plan >= torch.tensor(LOW)) & (plan <= torch.tensor(HIGH))).all()
        state = model.step(state, plan[:, 0], generator(21)).state


def test_mppi_filters_its_noise_along_time():
    """One sample: the plan is that sample, ``u_t = beta (mean_t + eps_t) + (1 - beta)
    u_{t-1}`` from the centre, clipped; the same draws by hand."""
    model = Quadratic()
    config = MPPIConfig(
        horizon=4, num_particles=1, population_size=1, noise_std=0.4, filter_beta=0.3
    )
    plan = MPPI(config).plan(model, STATES, generator(23))
    low, high = torch.tensor(LOW), torch.tensor(HIGH)
    centre, half_range = (low + high) / 2, (high - low) / 2
    noise = 0.4 * half_range * torch.randn((2, 1, 4, D), generator=generator(23))
    action, expected = centre.expand(2, D), []
    for t in range(4):
        action = 0.3 * (centre + noise[:, 0, t]) + 0.7 * action
        expected.append(torch.clamp(action, low, high))
    torch.testing.assert_close(plan, torch.stack(expected, 1))


def test_icem_adds_its_mean_in_the_last_iteration():
    """With one iteration the warm start (the shifted last plan) is itself a candidate:
    the plan scores at least as well as it, though the noise alone would not."""
    model = Quadratic()
    planner = PLANNERS["icem"](keep_elites_fraction=0.0)
    first = planner.plan(model, STATES, generator(24))
    planner.config = replace(planner.config, num_iterations=1, population_size=40)
    after = STATES.clone()
    after[:, -1] += 1  # the world a step on: the shifted plan is near its optimum
    second = planner.plan(model, after, generator(25))
    centre = (torch.tensor(LOW) + torch.tensor(HIGH)) / 2
    shifted = torch.cat([first[:, 1:], centre.expand(2, 1, D)], 1)
    scores = score_sequences(model, after, torch.stack([second, shifted], 1))
    assert (scores[:, 0] >= scores[:, 1]).all()
    noise_only = ICEM(replace(planner.config, choice=PlanChoice.BEST))
    alone = score_sequences(model, after, noise_only.plan(model, after, generator(25))[:, None])
    assert (alone[:, 0] < scores[:, 1]).all()  # the test could fail without the mean


class NaNRewards(Quadratic):
    """Every reward is NaN (a diverged model): every candidate scores -inf."""

    def step(self, state, action, generator=None) -> Step:
        result = super().step(state, action, generator)
        return Step(result.state, torch.full_like(result.reward, math.nan), result.terminal)


@pytest.mark.parametrize("name", PLANNERS)
def test_nan_returns_score_minus_infinity_and_plans_stay_in_the_box(name):
    model = NaNRewards()
    scores = score_sequences(model, STATES, torch.zeros(2, 3, 4, D))
    assert (scores == -math.inf).all()
    plan = PLANNERS[name]().plan(model, STATES, generator(26))
    assert ((plan >= torch.tensor(LOW)) & (plan <= torch.tensor(HIGH))).all()


@pytest.mark.parametrize("name", ["cem", "mppi", "icem"])
def test_receding_horizon_control_is_better_warm_started(name):
    """MPC with two iterations per step: the executed actions are nearer the optimum
    when each plan starts from the last one shifted than when it starts afresh."""
    model = Quadratic()

    def mpc_error(warm: bool) -> float:
        planner = PLANNERS[name]()
        planner.config = replace(planner.config, num_iterations=2, horizon=5)
        g, state, total = generator(30), STATES.clone(), 0.0
        for _ in range(8):
            if not warm:
                planner.reset()
            action = planner.plan(model, state, g)[:, 0]
            total += float((action - model.optimum(state, 1)[:, 0]).abs().max())
            state = model.step(state, action).state
        return total

    assert mpc_error(warm=True) < 0.7 * mpc_error(warm=False)


def test_scorer_averages_over_the_particles_of_a_given_expand():
    """Particles that differ (each its own target offset): the score is the mean of the
    particles' closed-form returns."""
    model = Quadratic()
    offsets = torch.tensor([[0.0, 0.0], [0.2, -0.1], [-0.3, 0.4]])

    def expand(state, num_particles, generator=None):
        rows = state.repeat_interleave(num_particles, dim=0).clone()
        rows[:, :D] += offsets.repeat(state.shape[0], 1)
        return rows

    actions = torch.rand(2, 4, 3, D, generator=generator(27))
    scores = score_sequences(model, STATES, actions, num_particles=3, expand=expand)
    expected = torch.zeros(2, 4)
    for offset in offsets:
        shifted = STATES.clone()
        shifted[:, :D] += offset
        optimum = model.optimum(shifted, 3)[:, None]
        expected += -((actions - optimum) ** 2).sum((-1, -2)) / 3
    torch.testing.assert_close(scores, expected)
    with pytest.raises(ShapeError, match="expand must return 6 rows"):
        score_sequences(model, STATES, actions, num_particles=3, expand=lambda s, p, g: s)
