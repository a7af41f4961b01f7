import numpy as np
import pyspiel
import pytest
import torch

from mbrl import GameModel, IllegalActionError, ShapeError, UnknownNameError
from mbrl.games import make
from mbrl.games.openspiel import OpenSpielGame, make_openspiel

from .crosscheck import crosscheck_random_games


@pytest.fixture(scope="module")
def ttt():
    return make("openspiel:tic_tac_toe")


@pytest.fixture(scope="module")
def c4():
    return make("openspiel:connect_four")


def random_trajectory(game, rng, batch_size):
    """States visited by uniformly random play, with the actions taken: [(state, actions)]."""
    state = game.initial_state(batch_size)
    out = []
    while not game.is_terminal(state).all():
        legal = game.legal_actions(state).numpy()
        done = game.is_terminal(state).numpy()
        actions = np.where(done, 0, (rng.random(legal.shape) * legal).argmax(axis=1))
        out.append((state, torch.from_numpy(actions)))
        state = game.step(state, torch.from_numpy(actions)).state
    out.append((state, None))
    return out


def play(game, moves):
    return game.from_history(moves)


# ------------------------------------------------------------ against pyspiel
@pytest.mark.parametrize(
    "name, games",
    [("tic_tac_toe", 200), ("connect_four", 200), ("breakthrough(rows=5,columns=5)", 100)],
)
def test_crosscheck_against_pyspiel(name, games):
    model = make(f"openspiel:{name}")
    assert isinstance(model, GameModel)
    assert crosscheck_random_games(model, name, num_games=games, seed=0, batch_size=100) > games * 5


def test_spec_follows_the_game():
    model = make("openspiel:hex(board_size=5)")
    game = pyspiel.load_game("hex(board_size=5)")
    spec = model.spec
    assert spec.name == "openspiel:hex(board_size=5)"
    assert spec.obs_shape == tuple(game.observation_tensor_shape())
    assert spec.num_actions == game.num_distinct_actions() == 25
    assert spec.num_players == 2 and spec.max_episode_length == game.max_game_length()
    assert spec.state_shape == (game.max_game_length() + 1,) and spec.state_dtype == torch.int64
    state = model.initial_state(3)
    assert state.shape == (3, 26) and state[:, 0].eq(0).all() and state[:, 1:].eq(-1).all()


@pytest.mark.parametrize("name", ["connect_four", "othello"])  # othello: obs depends on the player
def test_observation_and_strings_match_pyspiel(name):
    model = make(f"openspiel:{name}")
    rng = np.random.default_rng(1)
    for state, _ in random_trajectory(model, rng, batch_size=4):
        obs = model.observe(state).numpy()
        players = model.to_play(state).numpy()
        for b in range(state.shape[0]):
            twin = model.to_pyspiel(state[b])
            player = 0 if twin.is_terminal() else twin.current_player()
            assert int(players[b]) == player
            expected = np.asarray(twin.observation_tensor(player), dtype=np.float32)
            np.testing.assert_array_equal(obs[b].reshape(-1), expected)
            for a in twin.legal_actions():
                text = model.action_to_string(a, state[b])
                assert text == twin.action_to_string(player, a)
                assert model.string_to_action(text, state[b]) == a


def test_intermediate_rewards_use_rewards_of_the_mover():
    model = make("openspiel:cliff_walking")
    game = pyspiel.load_game("cliff_walking")
    assert model.spec.num_players == 1
    rng = np.random.default_rng(2)
    for _ in range(5):
        state, twin, total = model.initial_state(1), game.new_initial_state(), 0.0
        while not twin.is_terminal():
            a = int(rng.choice(twin.legal_actions()))
            result = model.step(state, torch.tensor([a]))
            twin.apply_action(a)
            assert result.reward.item() == pytest.approx(twin.rewards()[0])
            assert result.terminal.item() == twin.is_terminal()
            total += result.reward.item()
            state = result.state
        assert model.returns(state).tolist() == [[pytest.approx(twin.returns()[0])]]
        assert total == pytest.approx(twin.returns()[0])


# ------------------------------------------------------------------ values
def test_step_does_not_mutate_its_input(c4):
    state = torch.cat([c4.initial_state(1), play(c4, [3, 3, 2])])
    before = state.clone()
    result = c4.step(state, torch.tensor([0, 4]), generator=torch.Generator())
    assert torch.equal(state, before)
    assert result.state.data_ptr() != state.data_ptr()
    assert result.state[:, 0].tolist() == [1, 4]
    assert result.state[0, :2].tolist() == [1, 0]
    assert result.state[1, :5].tolist() == [4, 3, 3, 2, 4]


def test_terminal_state_is_absorbing(ttt):
    won = play(ttt, [0, 3, 1, 4, 2])  # x takes the top row
    assert ttt.is_terminal(won).item()
    assert ttt.returns(won).tolist() == [[1.0, -1.0]]
    assert not ttt.legal_actions(won).any() and ttt.to_play(won).item() == 0
    assert "player 0 wins" in ttt.render(won)
    for action in (0, 8):  # occupied or not, a terminal row ignores the action
        result = ttt.step(won, torch.tensor([action]))
        assert torch.equal(result.state, won)
        assert result.reward.item() == 0.0 and result.terminal.item()


def test_winning_move_rewards_the_mover(ttt):
    state = play(ttt, [4, 0, 5, 1])
    result = ttt.step(state, torch.tensor([3]))  # x completes the middle row
    assert result.terminal.item() and result.reward.item() == 1.0
    state = play(ttt, [4, 0, 8, 1, 5])
    result = ttt.step(state, torch.tensor([2]))  # o completes the top row
    assert result.reward.item() == 1.0 and ttt.returns(result.state).tolist() == [[-1.0, 1.0]]
    assert ttt.returns(state).tolist() == [[0.0, 0.0]]


# ------------------------------------------------------------------ errors
def test_illegal_action_names_row_action_and_legal_moves(ttt):
    state = torch.cat([ttt.initial_state(1), play(ttt, [4])])
    with pytest.raises(IllegalActionError) as info:
        ttt.step(state, torch.tensor([0, 4]))
    err = info.value
    assert err.row == 1 and err.action == 4 and err.legal == [0, 1, 2, 3, 5, 6, 7, 8]
    assert "row 1" in str(err) and "illegal action 4" in str(err) and "o(0,0)" in str(err)
    with pytest.raises(IllegalActionError, match="out of range") as info:
        ttt.step(state, torch.tensor([9, 0]))
    assert info.value.row == 0 and info.value.action == 9


def test_wrong_state_shape_or_dtype(ttt):
    good = ttt.initial_state(2)
    for bad in (good.float(), good[:, :5], good[0], good.reshape(2, 1, 10)):
        with pytest.raises(ShapeError, match=r"int64 \[B, 10\]"):
            ttt.legal_actions(bad)
    with pytest.raises(ShapeError, match=r"\[B\] = \[2\]"):
        ttt.step(good, torch.tensor([0]))
    with pytest.raises(ShapeError, match="integers"):
        ttt.step(good, torch.tensor([0.0, 1.0]))
    with pytest.raises(ShapeError, match="batch of 2"):
        ttt.render(good)


def test_unreachable_history_is_rejected(ttt):
    state = play(ttt, [4, 0]).clone()
    state[0, 2] = 4  # the same cell twice
    with pytest.raises(ValueError, match="not a reachable state"):
        ttt.legal_actions(state)
    state[0, 0] = 99
    with pytest.raises(ValueError, match="move count 99"):
        ttt.to_play(state)


def test_unknown_name_lists_close_matches():
    with pytest.raises(UnknownNameError) as info:
        make("openspiel:connect_fuor")
    assert "connect_four" in str(info.value) and "connect_four" in info.value.known
    with pytest.raises(UnknownNameError, match="breakthrough"):
        make_openspiel("breakthru(rows=5)")


def test_bad_parameters_are_a_value_error():
    with pytest.raises(ValueError, match="board_sz"):
        make_openspiel("hex(board_sz=5)")


@pytest.mark.parametrize(
    "name, prop",
    [
        ("pig", "chance_mode"),
        ("backgammon", "chance_mode"),
        ("kuhn_poker", "information is IMPERFECT_INFORMATION"),
        ("phantom_ttt", "information is IMPERFECT_INFORMATION"),
        ("matrix_rps", "dynamics is SIMULTANEOUS"),
    ],
)
def test_unsupported_games_are_rejected(name, prop):
    with pytest.raises(ValueError, match=prop) as info:
        make_openspiel(name)
    assert repr(name) in str(info.value)
    assert not isinstance(info.value, UnknownNameError)


# ------------------------------------------------------------------- cache
def test_tiny_cache_gives_the_same_results():
    small = OpenSpielGame("connect_four", cache_size=4)
    big = OpenSpielGame("connect_four", cache_size=100_000)
    rng = np.random.default_rng(3)
    trajectory = random_trajectory(big, rng, batch_size=16)
    # Visit the states in a scrambled order so that the small cache must replay.
    order = rng.permutation(len(trajectory))
    for i in order:
        state, actions = trajectory[i]
        for method in ("legal_actions", "observe", "to_play", "is_terminal", "returns"):
            assert torch.equal(getattr(small, method)(state), getattr(big, method)(state)), method
        if actions is not None:
            a, b = small.step(state, actions), big.step(state, actions)
            assert torch.equal(a.state, b.state) and torch.equal(a.state, trajectory[i + 1][0])
            assert torch.equal(a.reward, b.reward) and torch.equal(a.terminal, b.terminal)
    assert len(small._cache) <= 4 and small.cache_misses > 0


def test_cache_stores_and_replays_from_the_longest_prefix():
    game = OpenSpielGame("tic_tac_toe", cache_size=4)
    state = game.from_history([4, 0])  # cached
    child = game.step(state, torch.tensor([8])).state  # cached too
    game.legal_actions(child)
    assert (game.cache_hits, game.cache_misses, game.replayed_plies) == (2, 0, 0)
    game.clear_cache()
    game.legal_actions(child)  # replays all three moves
    game.legal_actions(child)  # and remembers the result
    assert (game.cache_misses, game.replayed_plies) == (1, 3)
    game.clear_cache()
    game.from_history([4])
    game.to_play(child)  # the prefix [4] is cached: two moves to replay
    assert (game.cache_misses, game.replayed_plies) == (2, 5)
    assert game.to_play(child).item() == 1 and game.history(child) == [4, 0, 8]


def test_history_roundtrip_and_to_pyspiel_is_a_clone(c4):
    rng = np.random.default_rng(4)
    trajectory = random_trajectory(c4, rng, batch_size=4)
    final = trajectory[-1][0]
    fresh = OpenSpielGame("connect_four")  # empty cache: from_history replays from scratch
    for b in range(final.shape[0]):
        history = c4.history(final[b])
        rebuilt = fresh.from_history(history)
        assert rebuilt.shape == (1, c4.spec.state_shape[0])
        assert torch.equal(rebuilt[0], final[b])
        twin = c4.to_pyspiel(final[b])
        assert twin.history() == history and twin.is_terminal()
        replay = c4.game.new_initial_state()
        for a in history:
            replay.apply_action(a)
        assert str(twin) == str(replay) and twin.returns() == replay.returns()
    twin = c4.to_pyspiel(play(c4, [3]))
    twin.apply_action(3)  # mutating the clone must not leak into the model's cache
    assert c4.legal_actions(play(c4, [3]))[0].sum() == 7
    assert c4.to_pyspiel(play(c4, [3])).history() == [3]
    with pytest.raises(IllegalActionError) as info:
        c4.from_history([3, 3, 3, 3, 3, 3, 3])  # column 3 holds six discs
    assert info.value.row == 6 and info.value.action == 3


# --------------------------------------------------------------- for people
def test_strings_and_render(ttt):
    assert ttt.action_to_string(4) == "x(1,1)"
    assert ttt.string_to_action("x(1,1)") == 4
    assert ttt.string_to_action("o(2,2)") == 8  # without a state any player's names are accepted
    assert ttt.string_to_action(" X(0,2) ") == 2
    state = play(ttt, [4])
    assert ttt.string_to_action("o(0,0)", state) == 0
    with pytest.raises(ValueError, match=r"legal moves: .*o\(0,0\)"):
        ttt.string_to_action("o(1,1)", state)  # occupied
    with pytest.raises(ValueError, match="out of range"):
        ttt.action_to_string(9)
    text = ttt.render(state[0])
    assert text.startswith(str(ttt.to_pyspiel(state)).rstrip())
    assert text.endswith("player 1 to play")
    assert "draw" in ttt.render(play(ttt, [0, 4, 8, 1, 7, 6, 2, 5, 3]))


def test_random_playouts(ttt):
    rng = np.random.default_rng(5)
    outcome = ttt.random_playouts(ttt.initial_state(2000), rng)
    assert outcome.shape == (2000,) and outcome.dtype == torch.float32
    assert set(outcome.tolist()) <= {-1.0, 0.0, 1.0}
    # Random tic-tac-toe: x wins 58.5%, o 28.8% -> mean 0.297.
    assert 0.22 < outcome.mean().item() < 0.37
    won = play(ttt, [0, 3, 1, 4, 2])
    assert ttt.random_playouts(won, rng).tolist() == [1.0]
    threat = play(ttt, [0, 4, 1])  # x threatens the top row, o to move
    expected = exact_random_value(ttt.to_pyspiel(threat))
    mean = ttt.random_playouts(threat.repeat(4000, 1), rng).mean().item()
    assert abs(mean - expected) < 0.06, (mean, expected)


def exact_random_value(state):
    """Player 0's expected return under uniformly random play (exhaustive)."""
    if state.is_terminal():
        return state.returns()[0]
    legal = state.legal_actions()
    return sum(exact_random_value(state.child(a)) for a in legal) / len(legal)
