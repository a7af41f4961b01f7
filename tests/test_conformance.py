"""The model conformance suite: every model in the project obeys the one interface.

Add a model by adding a case to ``CASES``: a factory and a way to reach
varied states. Checks: shapes and dtypes, no mutation, batch rows are
independent, terminal states absorb, legal masks are enforced, wrong shapes
are refused, and the same generator gives the same result.

Learned models (``LEARNED_CASES``: ensembles in every propagation mode, continuous
and discrete actions, learned or known reward and termination) get the same checks
where they apply: they start from observations, have no legal mask beyond their
terminal rows, clip continuous actions into the declared box, and may sample.

Exact simulators (``SIMULATOR_CASES``: gymnasium's MuJoCo tasks stepped in batches) get
them too: continuous actions clipped into the box, deterministic steps, a reset law.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from mbrl import games
from mbrl.model import GameModel, IllegalActionError, Model, ShapeError
from mbrl.models import Ensemble, EnsembleConfig, EnsembleKind, LearnedModel, Propagation


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[], Model]


def _game_case(name: str) -> Case:
    return Case(name, lambda: games.make(name))


CASES = [
    _game_case("tic_tac_toe"),
    _game_case("connect_four"),
    _game_case("othello"),
    _game_case("openspiel:tic_tac_toe"),
    _game_case("openspiel:connect_four"),
    _game_case("openspiel:breakthrough(rows=5,columns=5)"),
]


@pytest.fixture(scope="module", params=CASES, ids=[c.name for c in CASES])
def model(request) -> Model:
    return request.param.make()


def random_actions(model: Model, state: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    legal = model.legal_actions(state).numpy()
    scores = rng.random(legal.shape) * legal
    return torch.from_numpy(scores.argmax(axis=1))


def varied_states(model: GameModel, batch_size: int, seed: int) -> torch.Tensor:
    """States after a random number of random plies (terminal ones included)."""
    rng = np.random.default_rng(seed)
    depth = rng.integers(0, model.spec.max_episode_length + 1, size=batch_size)
    state = model.initial_state(batch_size)
    for ply in range(int(depth.max())):
        live = torch.from_numpy(depth > ply) & ~model.is_terminal(state)
        if not live.any():
            break
        rows = torch.nonzero(live).flatten()
        state = state.clone()
        state[rows] = model.step(state[rows], random_actions(model, state[rows], rng)).state
    return state


def test_protocol_and_spec(model):
    assert isinstance(model, Model)
    spec = model.spec
    assert all(isinstance(d, int) and d > 0 for d in spec.obs_shape)
    assert spec.num_actions is None or spec.num_actions > 0
    assert spec.num_players in (1, 2)


def test_shapes_and_dtypes(model):
    state = varied_states(model, 16, seed=0)
    spec = model.spec
    assert state.shape == (16, *spec.state_shape) and state.dtype == spec.state_dtype
    obs = model.observe(state)
    assert obs.shape == (16, *spec.obs_shape) and obs.dtype == torch.float32
    legal = model.legal_actions(state)
    assert legal.shape == (16, spec.num_actions) and legal.dtype == torch.bool
    to_play = model.to_play(state)
    assert to_play.shape == (16,) and to_play.dtype == torch.int64
    assert ((to_play >= 0) & (to_play < spec.num_players)).all()
    live = ~model.is_terminal(state)
    result = model.step(state[live], random_actions(model, state[live], np.random.default_rng(0)))
    n = int(live.sum())
    assert result.state.shape == (n, *spec.state_shape) and result.state.dtype == spec.state_dtype
    assert result.reward.shape == (n,) and result.reward.dtype == torch.float32
    assert result.terminal.shape == (n,) and result.terminal.dtype == torch.bool
    assert torch.equal(result.terminal, model.is_terminal(result.state))


def test_no_mutation(model):
    state = varied_states(model, 12, seed=1)
    before = state.clone()
    actions = random_actions(model, state, np.random.default_rng(1))
    model.observe(state)
    model.legal_actions(state)
    model.to_play(state)
    model.step(state, actions)
    assert torch.equal(state, before)


def test_rows_are_independent(model):
    state = varied_states(model, 10, seed=2)
    actions = random_actions(model, state, np.random.default_rng(2))
    batched = model.step(state, actions)
    for i in range(state.shape[0]):
        single = model.step(state[i : i + 1], actions[i : i + 1])
        assert torch.equal(single.state[0], batched.state[i])
        assert single.reward[0] == batched.reward[i] and single.terminal[0] == batched.terminal[i]
    assert torch.equal(model.observe(state)[3:4], model.observe(state[3:4]))


def test_terminal_is_absorbing(model):
    rng = np.random.default_rng(3)
    state = model.initial_state(8)
    while not model.is_terminal(state).all():
        live = torch.nonzero(~model.is_terminal(state)).flatten()
        state = state.clone()
        state[live] = model.step(state[live], random_actions(model, state[live], rng)).state
    assert not model.legal_actions(state).any()
    again = model.step(state, torch.zeros(8, dtype=torch.int64))
    assert torch.equal(again.state, state)
    assert again.terminal.all() and (again.reward == 0).all()
    returns = model.returns(state)
    assert returns.shape == (8, model.spec.num_players)
    if model.spec.num_players == 2:
        assert torch.equal(returns[:, 0], -returns[:, 1])


def test_rewards_sum_to_returns(model):
    """Per-ply rewards, credited to the mover (and, zero-sum, debited to the other
    player), add up to each player's final return."""
    rng = np.random.default_rng(4)
    state = model.initial_state(6)
    totals = torch.zeros(6, model.spec.num_players)
    while not model.is_terminal(state).all():
        movers = model.to_play(state)
        live = ~model.is_terminal(state)
        result = model.step(state, torch.where(live, random_actions(model, state, rng), 0))
        reward = torch.where(live, result.reward, 0.0)
        totals[torch.arange(6), movers] += reward
        if model.spec.num_players == 2:
            totals[torch.arange(6), 1 - movers] -= reward
        state = result.state
    assert torch.equal(totals, model.returns(state))


def test_illegal_actions_are_refused(model):
    state = varied_states(model, 32, seed=5)
    legal = model.legal_actions(state)
    rows = torch.nonzero(legal.any(1) & ~legal.all(1)).flatten()
    assert rows.numel() > 0
    row = int(rows[0])
    actions = random_actions(model, state, np.random.default_rng(5))
    bad = int(torch.nonzero(~legal[row])[0])
    actions[row] = bad
    with pytest.raises(IllegalActionError) as info:
        model.step(state, torch.where(legal.any(1), actions, 0))
    assert info.value.row == row and info.value.action == bad
    assert info.value.legal == torch.nonzero(legal[row]).flatten().tolist()


def test_wrong_shapes_are_refused(model):
    state = model.initial_state(4)
    with pytest.raises(ShapeError, match=r"\["):
        model.step(state, torch.zeros(3, dtype=torch.int64))
    with pytest.raises(ShapeError):
        model.observe(state[:, :-1] if state.ndim == 2 else state[0])
    with pytest.raises(ShapeError):
        model.legal_actions(state.float())


def test_same_generator_same_result(model):
    state = varied_states(model, 8, seed=6)
    live = torch.nonzero(~model.is_terminal(state)).flatten()
    state = state[live]
    actions = random_actions(model, state, np.random.default_rng(6))
    first = model.step(state, actions, generator=torch.Generator().manual_seed(7))
    second = model.step(state, actions, generator=torch.Generator().manual_seed(7))
    assert torch.equal(first.state, second.state) and torch.equal(first.reward, second.reward)
    playouts = [model.random_playouts(state, np.random.default_rng(8)) for _ in range(2)]
    assert torch.equal(playouts[0], playouts[1])
    assert set(playouts[0].tolist()) <= {-1.0, 0.0, 1.0}
    assert varied_states(model, 5, seed=9).equal(varied_states(model, 5, seed=9))


# ------------------------------------------------------------------ learned models
# A learned model starts from observations (no initial position, no game outcome) and may
# be stochastic; it has continuous or discrete actions and no legal mask beyond its
# terminal rows, and its terminal rows come from a termination head or function.
@dataclass(frozen=True)
class LearnedCase:
    name: str
    make: Callable[[], LearnedModel]
    deterministic: bool
    """A step is a function of the state and the action alone (no sampling)."""


LEARNED_OBS_DIM = 4


def _learned_case(
    kind: EnsembleKind, propagation: Propagation, *, discrete=False, known_fns=False
) -> LearnedCase:
    def make() -> LearnedModel:
        config = EnsembleConfig(
            obs_dim=LEARNED_OBS_DIM,
            action_dim=3 if discrete else 2,
            discrete_actions=discrete,
            kind=kind,
            num_members=5,
            num_elites=3,
            hidden_sizes=(16, 16),
            learn_reward=not known_fns,
            learn_termination=not known_fns,
        )
        ensemble = Ensemble(config, generator=torch.Generator().manual_seed(0))
        fns = {}
        if known_fns:
            fns = {
                "reward_fn": lambda obs, action, next_obs: -(next_obs**2).sum(1),
                "termination_fn": lambda obs, action, next_obs: next_obs[:, 0] > 0.3,
            }
        bounds = {} if discrete else {"action_low": (-1.0, -2.0), "action_high": (1.0, 0.5)}
        return LearnedModel(ensemble, propagation=propagation, name=name, **fns, **bounds)

    deterministic = propagation in (Propagation.MEAN, Propagation.EXPECTATION) or (
        kind is EnsembleKind.DETERMINISTIC and propagation is Propagation.TS_INF
    )
    name = f"learned:{kind.value}-{propagation.value}" + ("-discrete-known" if known_fns else "")
    return LearnedCase(name, make, deterministic)


LEARNED_CASES = [
    *(_learned_case(EnsembleKind.PROBABILISTIC, mode) for mode in Propagation),
    _learned_case(EnsembleKind.DETERMINISTIC, Propagation.TS_INF),
    _learned_case(EnsembleKind.DETERMINISTIC, Propagation.TS1, discrete=True, known_fns=True),
    _learned_case(EnsembleKind.DETERMINISTIC, Propagation.MEAN, discrete=True, known_fns=True),
]


@pytest.fixture(scope="module", params=LEARNED_CASES, ids=[c.name for c in LEARNED_CASES])
def learned_case(request) -> LearnedCase:
    return request.param


@pytest.fixture
def learned(learned_case, one_thread) -> LearnedModel:
    return learned_case.make()


def learned_actions(model: LearnedModel, batch: int, rng: np.random.Generator) -> torch.Tensor:
    """Random actions: uniform in the box (continuous) or over the actions (discrete)."""
    spec = model.spec
    if spec.is_discrete:
        return torch.from_numpy(rng.integers(spec.num_actions, size=batch))
    shape = (batch, *spec.action_shape)
    return torch.from_numpy(rng.uniform(spec.action_low, spec.action_high, shape)).float()


def learned_start(model: LearnedModel, batch: int, seed: int) -> torch.Tensor:
    obs = torch.randn(batch, LEARNED_OBS_DIM, generator=torch.Generator().manual_seed(seed))
    return model.initial_state(obs, generator=torch.Generator().manual_seed(seed))


def learned_varied_states(model: LearnedModel, batch: int, seed: int) -> torch.Tensor:
    """States after a random number (0 to 6) of random steps (terminal ones included)."""
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    depth = torch.from_numpy(rng.integers(0, 7, size=batch))
    state = learned_start(model, batch, seed)
    for t in range(6):
        result = model.step(state, learned_actions(model, batch, rng), generator=generator)
        state = torch.where((depth > t)[:, None], result.state, state)
    return state


def test_learned_protocol_and_spec(learned):
    assert isinstance(learned, Model) and not isinstance(learned, GameModel)
    spec = learned.spec
    assert spec.obs_shape == (LEARNED_OBS_DIM,) and spec.state_dtype == torch.float32
    assert spec.num_players == 1 and learned.num_members == 5
    if spec.is_discrete:
        assert spec.action_shape == () and spec.action_low is None and spec.action_high is None
    else:
        assert spec.num_actions is None and len(spec.action_shape) == 1
        assert len(spec.action_low) == len(spec.action_high) == spec.action_shape[0]


def test_learned_shapes_and_dtypes(learned):
    state = learned_varied_states(learned, 16, seed=0)
    spec = learned.spec
    assert state.shape == (16, *spec.state_shape) and state.dtype == spec.state_dtype
    obs = learned.observe(state)
    assert obs.shape == (16, *spec.obs_shape) and obs.dtype == torch.float32
    legal = learned.legal_actions(state)
    assert legal.shape == (16, spec.num_actions or 1) and legal.dtype == torch.bool
    assert torch.equal(legal, ~learned.is_terminal(state)[:, None].expand_as(legal))
    to_play = learned.to_play(state)
    assert to_play.shape == (16,) and to_play.dtype == torch.int64 and (to_play == 0).all()
    result = learned.step(state, learned_actions(learned, 16, np.random.default_rng(0)))
    assert result.state.shape == state.shape and result.state.dtype == spec.state_dtype
    assert result.reward.shape == (16,) and result.reward.dtype == torch.float32
    assert result.terminal.shape == (16,) and result.terminal.dtype == torch.bool
    assert torch.equal(result.terminal, learned.is_terminal(result.state))
    assert torch.isfinite(result.state).all() and torch.isfinite(result.reward).all()


def test_learned_no_mutation(learned):
    state = learned_varied_states(learned, 12, seed=1)
    before = state.clone()
    actions = learned_actions(learned, 12, np.random.default_rng(1))
    actions_before = actions.clone()
    learned.observe(state)[:] = 99.0  # observe returns a copy
    learned.legal_actions(state)
    learned.to_play(state)
    learned.step(state, actions, generator=torch.Generator().manual_seed(1))
    assert torch.equal(state, before) and torch.equal(actions, actions_before)


def test_learned_rows_are_independent(learned, learned_case):
    if not learned_case.deterministic:
        pytest.skip("a sampled step draws for all rows at once")
    state = learned_varied_states(learned, 10, seed=2)
    actions = learned_actions(learned, 10, np.random.default_rng(2))
    batched = learned.step(state, actions)
    for i in range(10):
        single = learned.step(state[i : i + 1], actions[i : i + 1])
        torch.testing.assert_close(single.state[0], batched.state[i])
        torch.testing.assert_close(single.reward[0], batched.reward[i])
        assert single.terminal[0] == batched.terminal[i]


def test_learned_terminal_is_absorbing(learned):
    rng = np.random.default_rng(3)
    generator = torch.Generator().manual_seed(3)
    state = learned_start(learned, 32, seed=3)
    live_seen = False
    for _ in range(30):
        result = learned.step(state, learned_actions(learned, 32, rng), generator=generator)
        live_seen |= bool((~result.terminal).any())
        state = result.state
        if learned.is_terminal(state).all():
            break
    done = learned.is_terminal(state)
    assert done.any() and live_seen
    assert not learned.legal_actions(state)[done].any()
    assert learned.legal_actions(state)[~done].all()
    again = learned.step(state, learned_actions(learned, 32, rng), generator=generator)
    assert torch.equal(again.state[done], state[done])
    assert again.terminal[done].all() and (again.reward[done] == 0).all()


def test_learned_actions_outside_the_box_act_as_clipped(learned):
    spec = learned.spec
    if spec.is_discrete:
        pytest.skip("discrete actions")
    state = learned_varied_states(learned, 8, seed=4)
    wild = torch.from_numpy(np.random.default_rng(4).normal(0, 5, (8, *spec.action_shape))).float()
    low, high = torch.tensor(spec.action_low), torch.tensor(spec.action_high)
    assert ((wild < low) | (wild > high)).any()
    outside = learned.step(state, wild, generator=torch.Generator().manual_seed(4))
    clipped = learned.step(state, wild.clamp(low, high), generator=torch.Generator().manual_seed(4))
    assert torch.equal(outside.state, clipped.state) and torch.equal(outside.reward, clipped.reward)


def test_learned_wrong_shapes_are_refused(learned):
    state = learned_start(learned, 4, seed=5)
    actions = learned_actions(learned, 4, np.random.default_rng(5))
    with pytest.raises(ShapeError, match=r"\["):
        learned.step(state, actions[:3])
    with pytest.raises(ShapeError):
        learned.step(state[:, :-1], actions)
    with pytest.raises(ShapeError):
        learned.observe(state[0])
    with pytest.raises(ShapeError):
        learned.legal_actions(state.double())
    with pytest.raises(ShapeError):
        learned.initial_state(torch.zeros(4, LEARNED_OBS_DIM + 1))


def test_learned_same_generator_same_result(learned, learned_case):
    state = learned_varied_states(learned, 9, seed=6)
    actions = learned_actions(learned, 9, np.random.default_rng(6))
    first = learned.step(state, actions, generator=torch.Generator().manual_seed(7))
    second = learned.step(state, actions, generator=torch.Generator().manual_seed(7))
    assert torch.equal(first.state, second.state) and torch.equal(first.reward, second.reward)
    assert learned_varied_states(learned, 5, seed=9).equal(learned_varied_states(learned, 5, 9))
    start = learned_start(learned, 9, seed=6)  # live rows: a stochastic step differs
    first = learned.step(start, actions, generator=torch.Generator().manual_seed(7))
    other = learned.step(start, actions, generator=torch.Generator().manual_seed(8))
    assert torch.equal(first.state, other.state) == learned_case.deterministic


# ------------------------------------------------------------------ exact simulators
# An exact simulator (MuJoCo state stepped in batches) is deterministic, has continuous
# actions clipped into the declared box, no legal mask beyond its terminal rows, and starts
# from a reset law (``initial_state(batch_size, np.random.Generator)``) or real envs.
@dataclass(frozen=True)
class SimulatorCase:
    name: str
    make: Callable[[], Model]


def _mujoco_case(env_id: str) -> SimulatorCase:
    def make() -> Model:
        from mbrl.games.mujoco import MujocoConfig, MujocoModel

        return MujocoModel(MujocoConfig(env_id=env_id))

    return SimulatorCase(f"mujoco:{env_id}", make)


SIMULATOR_CASES = [
    _mujoco_case("InvertedPendulum-v5"),
    _mujoco_case("HalfCheetah-v5"),
    _mujoco_case("Hopper-v5"),
]


@pytest.fixture(scope="module", params=SIMULATOR_CASES, ids=[c.name for c in SIMULATOR_CASES])
def simulator(request) -> Model:
    return request.param.make()


def simulator_actions(model: Model, batch: int, rng: np.random.Generator) -> torch.Tensor:
    spec = model.spec
    shape = (batch, *spec.action_shape)
    return torch.from_numpy(rng.uniform(spec.action_low, spec.action_high, shape))


def simulator_varied_states(model: Model, batch: int, seed: int) -> torch.Tensor:
    """States after a random number (0 to 40) of random steps (terminal ones included)."""
    rng = np.random.default_rng(seed)
    depth = torch.from_numpy(rng.integers(0, 41, size=batch))
    state = model.initial_state(batch, rng)
    for t in range(40):
        result = model.step(state, simulator_actions(model, batch, rng))
        state = torch.where((depth > t)[:, None], result.state, state)
    return state


def test_simulator_protocol_and_spec(simulator):
    assert isinstance(simulator, Model) and not isinstance(simulator, GameModel)
    spec = simulator.spec
    assert spec.num_players == 1 and spec.num_actions is None and len(spec.action_shape) == 1
    assert len(spec.action_low) == len(spec.action_high) == spec.action_shape[0]
    assert all(isinstance(d, int) and d > 0 for d in spec.obs_shape)


def test_simulator_shapes_and_dtypes(simulator):
    state = simulator_varied_states(simulator, 16, seed=0)
    spec = simulator.spec
    assert state.shape == (16, *spec.state_shape) and state.dtype == spec.state_dtype
    obs = simulator.observe(state)
    assert obs.shape == (16, *spec.obs_shape) and obs.dtype == torch.float32
    legal = simulator.legal_actions(state)
    assert legal.shape == (16, 1) and legal.dtype == torch.bool
    assert torch.equal(legal[:, 0], ~simulator.is_terminal(state))
    to_play = simulator.to_play(state)
    assert to_play.shape == (16,) and to_play.dtype == torch.int64 and (to_play == 0).all()
    result = simulator.step(state, simulator_actions(simulator, 16, np.random.default_rng(0)))
    assert result.state.shape == state.shape and result.state.dtype == spec.state_dtype
    assert result.reward.shape == (16,) and result.reward.dtype == torch.float32
    assert result.terminal.shape == (16,) and result.terminal.dtype == torch.bool
    assert torch.equal(result.terminal, simulator.is_terminal(result.state))
    assert torch.isfinite(result.state).all() and torch.isfinite(result.reward).all()


def test_simulator_no_mutation(simulator):
    state = simulator_varied_states(simulator, 12, seed=1)
    before = state.clone()
    actions = simulator_actions(simulator, 12, np.random.default_rng(1)) * 3  # some outside
    actions_before = actions.clone()
    simulator.observe(state)[:] = 99.0
    simulator.legal_actions(state)
    simulator.to_play(state)
    simulator.step(state, actions)
    assert torch.equal(state, before) and torch.equal(actions, actions_before)


def test_simulator_rows_are_independent(simulator):
    state = simulator_varied_states(simulator, 10, seed=2)
    actions = simulator_actions(simulator, 10, np.random.default_rng(2))
    batched = simulator.step(state, actions)
    for i in range(10):
        single = simulator.step(state[i : i + 1], actions[i : i + 1])
        assert torch.equal(single.state[0], batched.state[i])
        assert single.reward[0] == batched.reward[i] and single.terminal[0] == batched.terminal[i]
    assert torch.equal(simulator.observe(state)[3:4], simulator.observe(state[3:4]))


def test_simulator_terminal_is_absorbing(simulator):
    state = simulator_varied_states(simulator, 16, seed=3)
    done = simulator.is_terminal(state)
    if not done.any():
        pytest.skip(f"{simulator.spec.name} never terminates")
    assert not simulator.legal_actions(state)[done].any()
    again = simulator.step(state, simulator_actions(simulator, 16, np.random.default_rng(3)))
    assert torch.equal(again.state[done], state[done])
    assert again.terminal[done].all() and (again.reward[done] == 0).all()


def test_simulator_actions_outside_the_box_act_as_clipped(simulator):
    spec = simulator.spec
    state = simulator_varied_states(simulator, 8, seed=4)
    wild = torch.from_numpy(np.random.default_rng(4).normal(0, 5, (8, *spec.action_shape)))
    low, high = torch.tensor(spec.action_low), torch.tensor(spec.action_high)
    assert ((wild < low) | (wild > high)).any()
    outside, clipped = simulator.step(state, wild), simulator.step(state, wild.clamp(low, high))
    assert torch.equal(outside.state, clipped.state) and torch.equal(outside.reward, clipped.reward)


def test_simulator_wrong_shapes_are_refused(simulator):
    state = simulator.initial_state(4, np.random.default_rng(5))
    actions = simulator_actions(simulator, 4, np.random.default_rng(5))
    with pytest.raises(ShapeError, match=r"\["):
        simulator.step(state, actions[:3])
    with pytest.raises(ShapeError):
        simulator.step(state[:, :-1], actions)
    with pytest.raises(ShapeError):
        simulator.observe(state[0])
    with pytest.raises(ShapeError):
        simulator.legal_actions(state.float())


def test_simulator_same_generator_same_result(simulator):
    state = simulator_varied_states(simulator, 9, seed=6)
    actions = simulator_actions(simulator, 9, np.random.default_rng(6))
    first = simulator.step(state, actions, generator=torch.Generator().manual_seed(7))
    second = simulator.step(state, actions, generator=torch.Generator().manual_seed(8))
    assert torch.equal(first.state, second.state) and torch.equal(first.reward, second.reward)
    assert simulator_varied_states(simulator, 5, 9).equal(simulator_varied_states(simulator, 5, 9))
