import numpy as np
import pytest
import torch

from mbrl import IllegalActionError
from mbrl.games import make

from .crosscheck import crosscheck_random_games


@pytest.fixture(scope="module")
def game():
    return make("tic_tac_toe")


def play(game, moves):
    state = game.initial_state(1)
    for m in moves:
        state = game.step(state, torch.tensor([game.string_to_action(m)])).state
    return state


def test_crosscheck_openspiel(game):
    assert crosscheck_random_games(game, "tic_tac_toe", num_games=1000, seed=0) > 5000


@pytest.mark.slow
def test_crosscheck_openspiel_10k(game):
    crosscheck_random_games(game, "tic_tac_toe", num_games=10_000, seed=1)


def test_win_reward_and_returns(game):
    state = play(game, ["a1", "a2", "b1", "b2"])
    result = game.step(state, torch.tensor([game.string_to_action("c1")]))
    assert result.terminal.item() and result.reward.item() == 1.0
    assert game.returns(result.state).tolist() == [[1.0, -1.0]]
    assert "x wins" in game.render(result.state)


def test_illegal_action_names_row_and_legal_moves(game):
    state = torch.cat([game.initial_state(1), play(game, ["b2"])])
    with pytest.raises(IllegalActionError) as info:
        game.step(state, torch.tensor([0, 4]))
    assert info.value.row == 1 and info.value.action == 4
    assert 4 not in info.value.legal and "row 1" in str(info.value)


def test_parse_and_format_roundtrip(game):
    for a in range(9):
        assert game.string_to_action(game.action_to_string(a)) == a
    with pytest.raises(ValueError, match=r"a1\.\.c3"):
        game.string_to_action("z9")


def test_symmetries_map_legal_moves(game):
    state = play(game, ["a1", "b2", "b1"])
    obs = game.observe(state)
    legal = game.legal_actions(state).float()
    sym_obs, sym_legal = game.symmetries(obs, legal)
    assert sym_obs.shape == (8, 1, 3, 3, 3) and sym_legal.shape == (8, 1, 9)
    for s in range(8):
        # A cell is legal iff it is empty in the transformed observation.
        empty = 1 - sym_obs[s, 0, 0] - sym_obs[s, 0, 1]
        assert torch.equal(empty.reshape(-1), sym_legal[s, 0])
    assert len({tuple(p.flatten().tolist()) for p in sym_obs}) == 8
    np.testing.assert_array_equal(sym_obs[0], obs)
