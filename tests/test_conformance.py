"""The model conformance suite: every model in the project obeys the one interface.

Add a model by adding a case to ``CASES``: a factory and a way to reach
varied states. Checks: shapes and dtypes, no mutation, batch rows are
independent, terminal states absorb, legal masks are enforced, wrong shapes
are refused, and the same generator gives the same result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from mbrl import games
from mbrl.model import GameModel, IllegalActionError, Model, ShapeError


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
