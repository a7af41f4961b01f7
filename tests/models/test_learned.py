"""The propagation modes of a learned model, for a batch not divisible by the members
(B=7, E=5), its known reward and termination functions, and its errors."""

from __future__ import annotations

import pytest
import torch

from mbrl.model import IllegalActionError, Model, ShapeError
from mbrl.models import (
    Ensemble,
    EnsembleConfig,
    EnsembleKind,
    LearnedModel,
    ModelDivergedError,
    Propagation,
)

pytestmark = pytest.mark.usefixtures("one_thread")

D, A, E, B = 3, 2, 5, 7
ELITES = [4, 1, 3]


def make_model(kind=EnsembleKind.DETERMINISTIC, propagation=Propagation.TS_INF, **fields):
    config = EnsembleConfig(
        obs_dim=D, action_dim=A, kind=kind, num_members=E, num_elites=3, hidden_sizes=(16,)
    )
    ensemble = Ensemble(config, generator=torch.Generator().manual_seed(0))
    ensemble.elites.copy_(torch.tensor(ELITES))
    return LearnedModel(ensemble, propagation=propagation, **fields)


def start(model, seed=1, num_particles=1):
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(B, D, generator=g)
    return model.initial_state(obs, num_particles, generator=g)


def actions(seed, rows=B):
    return torch.rand(rows, A, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def member_predictions(model, state, action):
    """``[E, B, K]`` every member's mean for every row."""
    ensemble = model.ensemble
    with torch.no_grad():
        return ensemble(ensemble.features(model.observe(state), action)).mean


def test_ts_inf_keeps_each_rows_member():
    model = make_model(propagation=Propagation.TS_INF)
    state = start(model)
    member = model.member(state)
    assert set(member.tolist()) <= set(ELITES)
    g = torch.Generator().manual_seed(2)
    for t in range(4):
        action = actions(t)
        means = member_predictions(model, state, action)
        result = model.step(state, action, generator=g)
        assert torch.equal(model.member(result.state), member)
        expected = model.observe(state) + means[member, torch.arange(B), :D]
        torch.testing.assert_close(model.observe(result.state), expected)
        torch.testing.assert_close(result.reward, means[member, torch.arange(B), D])
        state = result.state


def test_with_member_sets_any_members_rows_under_ts_inf():
    model = make_model(propagation=Propagation.TS_INF)
    state = start(model)
    member = torch.tensor([0, 2, 4, 0, 2, 4, 0])  # 0 and 2 are not elites
    picked = model.with_member(state, member)
    assert torch.equal(model.member(picked), member)
    assert torch.equal(model.observe(picked), model.observe(state))  # the rest is kept
    assert not torch.equal(model.member(state), member)  # a copy
    action = actions(0)
    means = member_predictions(model, picked, action)
    result = model.step(picked, action)
    expected = model.observe(state) + means[member, torch.arange(B), :D]
    torch.testing.assert_close(model.observe(result.state), expected)
    assert torch.equal(model.member(model.with_member(state, 3)), torch.full((B,), 3))
    with pytest.raises(ValueError, match=r"members are 0\.\.4"):
        model.with_member(state, 5)


def test_ts1_draws_a_member_per_row_and_step_from_the_elites():
    model = make_model(propagation=Propagation.TS1)
    state = start(model)
    g = torch.Generator().manual_seed(3)
    drawn = []
    for t in range(30):
        action = actions(t)
        means = member_predictions(model, state, action)
        result = model.step(state, action, generator=g)
        member = model.member(result.state)
        expected = model.observe(state) + means[member, torch.arange(B), :D]
        torch.testing.assert_close(model.observe(result.state), expected)
        drawn.append(member)
        state = result.state
    drawn = torch.stack(drawn)  # [T, B]
    assert set(drawn.unique().tolist()) == set(ELITES)  # every elite, nothing else
    for row in range(B):  # a row changes member between steps
        assert len(drawn[:, row].unique()) > 1
    counts = torch.bincount(drawn.flatten(), minlength=E)[ELITES]
    assert counts.min() > 40  # 210 uniform draws over 3 elites: about 70 each


def test_initial_state_spreads_a_starts_particles_over_the_elites():
    model = make_model()
    state = start(model, num_particles=4)
    assert state.shape == (B * 4, 2 * D + 2)
    obs = model.observe(state).reshape(B, 4, D)
    assert (obs == obs[:, :1]).all()  # rows (b p): the particles of a start are together
    member = model.member(state).reshape(B, 4)
    for row in member:
        counts = torch.bincount(row, minlength=E)[ELITES]
        assert counts.sum() == 4 and counts.max() - counts.min() <= 1
    assert not model.is_terminal(state).any()
    assert (model.variance(state) == 0).all()


@pytest.mark.parametrize("kind", list(EnsembleKind))
def test_mean_is_the_elites_average_and_deterministic(kind):
    model = make_model(kind, propagation=Propagation.MEAN)
    state, action = start(model), actions(4)
    means = member_predictions(model, state, action)[ELITES].mean(0)
    results = [
        model.step(state, action, generator=torch.Generator().manual_seed(s)) for s in (0, 1)
    ]
    torch.testing.assert_close(model.observe(results[0].state), model.observe(state) + means[:, :D])
    torch.testing.assert_close(results[0].reward, means[:, D])
    assert torch.equal(results[0].state, results[1].state)
    assert torch.equal(model.member(results[0].state), model.member(state))
    assert (model.variance(results[0].state) == 0).all()


@pytest.mark.parametrize("kind", list(EnsembleKind))
def test_expectation_matches_the_moments_of_the_mixture(kind):
    model = make_model(kind, propagation=Propagation.EXPECTATION)
    state, action = start(model), actions(5)
    with torch.no_grad():
        out = model.ensemble(model.ensemble.features(model.observe(state), action))
    means = out.mean[ELITES, :, :D]  # [3, B, D]
    variance = means.var(0, unbiased=False)  # the spread of the means
    if kind is EnsembleKind.PROBABILISTIC:
        variance = variance + out.log_var[ELITES, :, :D].exp().mean(0)
    first = model.step(state, action, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(model.observe(first.state), model.observe(state) + means.mean(0))
    torch.testing.assert_close(model.variance(first.state), variance)
    again = model.step(state, action, generator=torch.Generator().manual_seed(9))
    assert torch.equal(first.state, again.state)
    second = model.step(first.state, action)  # the belief's variance adds up
    assert (model.variance(second.state) > model.variance(first.state)).all()
    mean_model = model.with_propagation(Propagation.MEAN)
    assert torch.equal(
        model.observe(first.state), model.observe(mean_model.step(state, action).state)
    )


def test_probabilistic_ts_samples_through_the_generator():
    model = make_model(EnsembleKind.PROBABILISTIC, propagation=Propagation.TS_INF)
    state, action = start(model), actions(6)
    one = model.step(state, action, generator=torch.Generator().manual_seed(7))
    two = model.step(state, action, generator=torch.Generator().manual_seed(7))
    other = model.step(state, action, generator=torch.Generator().manual_seed(8))
    assert torch.equal(one.state, two.state) and torch.equal(one.reward, two.reward)
    assert not torch.allclose(one.state, other.state)
    mean = member_predictions(model, state, action)[model.member(state), torch.arange(B)]
    assert not torch.allclose(model.observe(one.state), model.observe(state) + mean[:, :D])


def test_known_reward_and_termination_functions():
    seen = {}

    def reward_fn(obs, action, next_obs):
        seen["args"] = (obs, action, next_obs)
        return next_obs.sum(1) - action.sum(1)

    def termination_fn(obs, action, next_obs):
        return next_obs[:, 0] > 0

    config = EnsembleConfig(
        obs_dim=D, action_dim=A, num_members=E, num_elites=E, learn_reward=False
    )
    ensemble = Ensemble(config, generator=torch.Generator().manual_seed(0))
    model = LearnedModel(
        ensemble,
        propagation=Propagation.MEAN,
        reward_fn=reward_fn,
        termination_fn=termination_fn,
        action_low=[-1.0, -0.5],
        action_high=[1.0, 0.5],
    )
    assert model.spec.action_low == (-1.0, -0.5) and model.spec.action_high == (1.0, 0.5)
    state = start(model)
    action = actions(7) * 3
    result = model.step(state, action)
    obs, used_action, next_obs = seen["args"]
    assert torch.equal(obs, model.observe(state))
    assert torch.equal(
        used_action, torch.clamp(action, torch.tensor([-1, -0.5]), torch.tensor([1, 0.5]))
    )
    assert torch.equal(result.reward, next_obs.sum(1) - used_action.sum(1))
    assert torch.equal(result.terminal, next_obs[:, 0] > 0)
    assert 0 < result.terminal.sum() < B
    assert torch.equal(model.is_terminal(result.state), result.terminal)
    legal = model.legal_actions(result.state)
    assert legal.shape == (B, 1) and torch.equal(legal[:, 0], ~result.terminal)
    again = model.step(result.state, actions(8))
    done = result.terminal
    assert torch.equal(again.state[done], result.state[done])
    assert (again.reward[done] == 0).all() and again.terminal[done].all()


def test_reward_and_termination_sources_are_checked():
    config = EnsembleConfig(obs_dim=D, action_dim=A, num_members=2, num_elites=2)
    ensemble = Ensemble(config)
    with pytest.raises(ValueError, match="exactly one reward source"):
        LearnedModel(ensemble, reward_fn=lambda o, a, n: o.sum(1))
    no_reward = Ensemble(
        EnsembleConfig(obs_dim=D, action_dim=A, num_members=2, num_elites=2, learn_reward=False)
    )
    with pytest.raises(ValueError, match="exactly one reward source"):
        LearnedModel(no_reward)
    heads = Ensemble(
        EnsembleConfig(obs_dim=D, action_dim=A, num_members=2, num_elites=2, learn_termination=True)
    )
    with pytest.raises(ValueError, match="termination_fn"):
        LearnedModel(heads, termination_fn=lambda o, a, n: o[:, 0] > 0)
    with pytest.raises(ValueError, match="Propagation"):
        LearnedModel(ensemble, propagation="ts1")
    bad_reward = LearnedModel(no_reward, reward_fn=lambda o, a, n: o)
    state = bad_reward.initial_state(torch.zeros(2, D))
    with pytest.raises(ShapeError, match="reward_fn"):
        bad_reward.step(state, torch.zeros(2, A))


def test_a_nan_prediction_names_the_member():
    model = make_model(propagation=Propagation.TS_INF)
    state = start(model)
    poisoned = int(model.member(state)[2])
    with torch.no_grad():
        model.ensemble.weights[0][poisoned, 0, 0] = float("nan")
        model.ensemble.epochs_trained.fill_(12)
    with pytest.raises(
        ModelDivergedError, match=f"member {poisoned} predicted a non-finite"
    ) as info:
        model.step(state, actions(9))
    assert (info.value.member, info.value.epoch) == (poisoned, 12)
    assert "12 training epochs" in str(info.value)
    mean = model.with_propagation(Propagation.MEAN)
    with pytest.raises(ModelDivergedError, match=f"member {poisoned}"):
        mean.step(state, actions(9))
    healthy = [m for m in ELITES if m != poisoned]
    model.ensemble.elites.copy_(torch.tensor([healthy[0]] * 3))
    mean.step(state, actions(9))  # the poisoned member no longer takes part


def test_ts_inf_refuses_rows_without_a_member():
    model = make_model(propagation=Propagation.TS_INF)
    state = start(model)
    state[3, 2 * D] = -1.0
    with pytest.raises(ValueError, match="row 3 has no valid member"):
        model.step(state, actions(10))


def test_discrete_actions():
    config = EnsembleConfig(
        obs_dim=D, action_dim=4, discrete_actions=True, num_members=3, num_elites=3
    )
    model = LearnedModel(Ensemble(config), propagation=Propagation.TS1)
    assert isinstance(model, Model)
    assert model.spec.num_actions == 4 and model.spec.action_shape == ()
    state = model.initial_state(torch.randn(5, D))
    assert model.legal_actions(state).shape == (5, 4) and model.legal_actions(state).all()
    result = model.step(state, torch.tensor([0, 1, 2, 3, 0]))
    assert result.state.shape == state.shape
    with pytest.raises(IllegalActionError) as info:
        model.step(state, torch.tensor([0, 1, 4, 3, 0]))
    assert (info.value.row, info.value.action, info.value.legal) == (2, 4, [0, 1, 2, 3])
    with pytest.raises(ShapeError):
        model.step(state, torch.zeros(5, 4))


@pytest.mark.parametrize("propagation", list(Propagation))
def test_bfloat16_products_stay_within_their_rounding(propagation):
    """compute_dtype=bfloat16 gives float32 states whose predicted deltas are within
    bfloat16's rounding of the float32 model's, with the same members and noise."""
    exact = make_model(EnsembleKind.PROBABILISTIC, propagation=propagation)
    low = LearnedModel(exact.ensemble, propagation=propagation, compute_dtype=torch.bfloat16)
    state, action = start(exact, num_particles=4), actions(5, rows=4 * B)
    steps = [m.step(state, action, torch.Generator().manual_seed(3)) for m in (exact, low)]
    assert steps[1].state.dtype == torch.float32
    assert torch.equal(exact.member(steps[0].state), low.member(steps[1].state))
    delta = [exact.observe(s.state) - exact.observe(state) for s in steps]
    error = (delta[1] - delta[0]).norm() / delta[0].norm()
    assert 0 < error < 3e-2, error  # bfloat16 keeps 8 bits: rounding, and not none
    torch.testing.assert_close(steps[1].reward, steps[0].reward, rtol=5e-2, atol=5e-2)
    with pytest.raises(ValueError, match="compute_dtype"):
        LearnedModel(exact.ensemble, compute_dtype=torch.float16)
