import numpy as np
import pyspiel
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mbrl import IllegalActionError, games

from .crosscheck import crosscheck_random_games

# Fills the board (columns 1..7 as people write them) without four in a row:
# found by search for the pattern where each column alternates colours.
DRAWN_GAME = "111111222222533333344444455555666667777776"


@pytest.fixture(scope="module")
def game():
    return games.make("connect_four")


def play(game, moves):
    state = game.initial_state(1)
    for m in moves:
        state = game.step(state, torch.tensor([game.string_to_action(m)])).state
    return state


def openspiel_play(moves):
    state = pyspiel.load_game("connect_four").new_initial_state()
    for m in moves:
        assert not state.is_terminal()
        state.apply_action(int(m) - 1)
    return state


def test_crosscheck_openspiel(game):
    assert crosscheck_random_games(game, "connect_four", num_games=1000, seed=0) > 15_000


@pytest.mark.slow
def test_crosscheck_openspiel_10k(game):
    crosscheck_random_games(game, "connect_four", num_games=10_000, seed=1)


def test_board_matches_openspiel_printout(game):
    moves = "4453321127"
    cells = game.board(play(game, moves))[0].numpy()
    ours = "".join("".join(".xo"[v + 1] for v in row) + "\n" for row in cells)
    assert ours == str(openspiel_play(moves))


WINS = {
    # name: (moves before the winning move, the winning move), x always wins.
    "vertical": ("121212", "1"),
    "horizontal": ("112233", "4"),
    "diagonal /": ("1223343447", "4"),
    "diagonal \\": ("7665545441", "4"),
}


@pytest.mark.parametrize("name", list(WINS))
def test_win_in_one(game, name):
    before, win = WINS[name]
    state = play(game, before)
    assert not game.is_terminal(state).item() and game.to_play(state).item() == 0
    # Every other move keeps the game going with reward 0.
    for col in np.flatnonzero(game.legal_actions(state)[0].numpy()):
        if col != game.string_to_action(win):
            other = game.step(state, torch.tensor([int(col)]))
            assert not other.terminal.item() and other.reward.item() == 0.0
    result = game.step(state, torch.tensor([game.string_to_action(win)]))
    assert result.terminal.item() and result.reward.item() == 1.0
    assert game.returns(result.state).tolist() == [[1.0, -1.0]]
    assert not game.legal_actions(result.state).any()
    assert "x wins" in game.render(result.state)
    twin = openspiel_play(before + win)
    assert twin.is_terminal() and twin.returns() == [1.0, -1.0]


def test_player_one_win(game):
    result = game.step(play(game, "1212127"), torch.tensor([1]))
    assert result.terminal.item() and result.reward.item() == 1.0
    assert game.returns(result.state).tolist() == [[-1.0, 1.0]]
    assert "o wins" in game.render(result.state)


def test_full_column_is_illegal(game):
    full = play(game, "111111")
    assert game.legal_actions(full)[0].tolist() == [False] + [True] * 6
    state = torch.cat([game.initial_state(1), full])
    with pytest.raises(IllegalActionError) as info:
        game.step(state, torch.tensor([0, 0]))
    assert info.value.row == 1 and info.value.action == 0
    assert info.value.legal == [1, 2, 3, 4, 5, 6] and "row 1" in str(info.value)
    with pytest.raises(IllegalActionError) as info:
        game.step(game.initial_state(1), torch.tensor([7]))
    assert info.value.row == 0 and info.value.legal == list(range(7))


def test_draw_on_full_board(game):
    twin = openspiel_play(DRAWN_GAME)
    assert twin.is_terminal() and twin.returns() == [0.0, 0.0]
    state = play(game, DRAWN_GAME[:-1])
    assert not game.is_terminal(state).item()
    assert game.legal_actions(state)[0].tolist() == [False] * 5 + [True, False]
    result = game.step(state, torch.tensor([game.string_to_action(DRAWN_GAME[-1])]))
    assert result.terminal.item() and result.reward.item() == 0.0
    assert game.returns(result.state).tolist() == [[0.0, 0.0]]
    assert (game.board(result.state) >= 0).all()
    assert game.render(result.state).endswith("draw")
    assert game.random_playouts(result.state, np.random.default_rng(0)).tolist() == [0.0]


def test_terminal_rows_are_no_ops(game):
    done = game.step(play(game, "121212"), torch.tensor([0])).state
    result = game.step(done, torch.tensor([0]))
    assert (
        torch.equal(result.state, done) and result.reward.item() == 0.0 and result.terminal.item()
    )


def test_parse_and_format(game):
    for a in range(7):
        assert game.action_to_string(a) == str(a + 1)
        assert game.string_to_action(game.action_to_string(a)) == a
    assert game.string_to_action(" 4 ") == 3
    for bad in ["0", "8", "a", "", "11", "d4"]:
        with pytest.raises(ValueError, match=r"column number 1\.\.7"):
            game.string_to_action(bad)


def test_render(game):
    text = game.render(play(game, "44"))
    lines = text.splitlines()
    assert lines[0].split() == list("1234567")
    assert lines[-3].split() == list("...o...") and lines[-2].split() == list("...x...")
    assert lines[-1] == "x to play"


def test_observation_planes(game):
    state = play(game, "445")
    obs = game.observe(state)[0]
    assert obs.shape == (3, 6, 7)
    # o to play: plane 0 = o's stones, plane 1 = x's stones, row 5 = bottom.
    assert obs[0].nonzero().tolist() == [[4, 3]]
    assert obs[1].nonzero().tolist() == [[5, 3], [5, 4]]
    assert (obs[2] == 1).all()
    assert (game.observe(play(game, "44"))[0, 2] == 0).all()


def test_symmetries_mirror(game):
    moves = "1111112234"
    state = play(game, moves)
    obs = game.observe(state)
    legal = game.legal_actions(state).float()
    sym_obs, sym_legal = game.symmetries(obs, legal)
    assert sym_obs.shape == (2, 1, 3, 6, 7) and sym_legal.shape == (2, 1, 7)
    for s in range(2):
        # A column is legal iff its top cell is empty in the transformed observation.
        empty_top = 1 - sym_obs[s, 0, 0, 0] - sym_obs[s, 0, 1, 0]
        assert torch.equal(empty_top, sym_legal[s, 0])
    np.testing.assert_array_equal(sym_obs[0], obs)
    mirrored = play(game, "".join(str(8 - int(m)) for m in moves))
    assert torch.equal(sym_obs[1], game.observe(mirrored))
    assert torch.equal(sym_legal[1], game.legal_actions(mirrored).float())


def test_random_playouts_reproducible(game):
    state = torch.cat([game.initial_state(500), play(game, "4444").expand(500, -1)])
    a = game.random_playouts(state, np.random.default_rng(7))
    b = game.random_playouts(state, np.random.default_rng(7))
    assert torch.equal(a, b)
    assert set(a.unique().tolist()) <= {-1.0, 0.0, 1.0}


def test_random_playouts_match_openspiel(game):
    n_ours, n_spiel = 100_000, 3000
    ours = game.random_playouts(game.initial_state(n_ours), np.random.default_rng(3)).numpy()
    spiel = pyspiel.load_game("connect_four")
    rng = np.random.default_rng(4)
    theirs = []
    for _ in range(n_spiel):
        state = spiel.new_initial_state()
        while not state.is_terminal():
            legal = state.legal_actions()
            state.apply_action(legal[rng.integers(len(legal))])
        theirs.append(state.returns()[0])
    theirs = np.array(theirs)
    for value in (1.0, -1.0):
        p, q = (ours == value).mean(), (theirs == value).mean()
        se = np.sqrt(p * (1 - p) / n_ours + q * (1 - q) / n_spiel)
        assert abs(p - q) < 4 * se, (value, p, q)
    assert 0.53 < (ours == 1.0).mean() < 0.58


def exact_random_play(state, memo):
    """OpenSpiel oracle: P(x wins), P(o wins) under uniformly random play from ``state``."""
    key = str(state)
    if key not in memo:
        if state.is_terminal():
            ret = state.returns()[0]
            memo[key] = np.array([ret == 1.0, ret == -1.0], dtype=float)
        else:
            legal = state.legal_actions()
            memo[key] = sum(exact_random_play(state.child(a), memo) for a in legal) / len(legal)
    return memo[key]


@pytest.mark.parametrize("moves", ["756553715664333467174355", "252352752353573234415147"])
def test_random_playouts_exact_from_midgame(game, moves):
    p_x, p_o = exact_random_play(openspiel_play(moves), {})
    n = 200_000
    state = play(game, moves).expand(n, -1).contiguous()
    out = game.random_playouts(state, np.random.default_rng(5)).numpy()
    for p, value in ((p_x, 1.0), (p_o, -1.0)):
        assert abs((out == value).mean() - p) < 5 * np.sqrt(p * (1 - p) / n), (value, p)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 6), max_size=50))
def test_invariants_under_random_moves(choices):
    game = games.make("connect_four")
    state = game.initial_state(1)
    for choice in choices:
        legal = np.flatnonzero(game.legal_actions(state)[0].numpy())
        done = game.is_terminal(state).item()
        action = int(legal[choice % len(legal)]) if len(legal) else choice
        assert done == (len(legal) == 0)
        result = game.step(state, torch.tensor([action]))
        if done:
            assert torch.equal(result.state, state) and result.reward.item() == 0.0
            assert result.terminal.item()
        state = result.state
        cells = game.board(state)[0].numpy()
        x, o = int((cells == 0).sum()), int((cells == 1).sum())
        assert x - o in (0, 1)
        assert game.to_play(state).item() == (x + o) % 2
        # Stones rest on the bottom or on other stones.
        filled = cells >= 0
        assert not (filled[:-1] & ~filled[1:]).any()
