import random

import numpy as np
import pyspiel
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mbrl import IllegalActionError
from mbrl.games import make

from .crosscheck import crosscheck_random_games

PASS = 64


@pytest.fixture(scope="module")
def game():
    return make("othello")


@pytest.fixture(scope="module")
def openspiel_game():
    return pyspiel.load_game("othello")


def play(game, actions):
    state = game.initial_state(1)
    for a in actions:
        state = game.step(state, torch.tensor([a])).state
    return state


def openspiel_random_game(openspiel_game, seed):
    """The actions of one uniformly random OpenSpiel game, and its final state."""
    rng = random.Random(seed)
    state = openspiel_game.new_initial_state()
    actions = []
    while not state.is_terminal():
        actions.append(rng.choice(state.legal_actions()))
        state.apply_action(actions[-1])
    return actions, state


def make_state(black, white, to_play):
    def bits(cells):
        word = sum(1 << c for c in cells)
        return word - (1 << 64) if word >= 1 << 63 else word

    return torch.tensor([[bits(black), bits(white), to_play, 0, 0]], dtype=torch.int64)


def legal_list(game, state):
    return np.flatnonzero(game.legal_actions(state)[0].numpy()).tolist()


def test_crosscheck_openspiel(game):
    assert crosscheck_random_games(game, "othello", num_games=1000, seed=0) > 50_000


@pytest.mark.slow
def test_crosscheck_openspiel_10k(game):
    crosscheck_random_games(game, "othello", num_games=10_000, seed=1)


def test_initial_position(game, openspiel_game):
    state = game.initial_state(1)
    twin = openspiel_game.new_initial_state()
    assert legal_list(game, state) == twin.legal_actions() == [19, 26, 37, 44]
    assert [game.action_to_string(a) for a in legal_list(game, state)] == ["d3", "c4", "f5", "e6"]
    assert game.to_play(state).item() == 0 and not game.is_terminal(state).item()
    cells = game.board(state)[0]
    assert (cells == -1).sum() == 60
    assert cells[3, 4] == cells[4, 3] == 0 and cells[3, 3] == cells[4, 4] == 1


def test_observation_and_board_match_openspiel(game, openspiel_game):
    actions, _ = openspiel_random_game(openspiel_game, seed=3)
    twin = openspiel_game.new_initial_state()
    state = game.initial_state(1)
    for a in actions[:-1]:
        twin.apply_action(a)
        state = game.step(state, torch.tensor([a])).state
        planes = np.array(twin.observation_tensor(0)).reshape(3, 8, 8)  # empty, black, white
        p = twin.current_player()
        obs = game.observe(state)[0].numpy()
        np.testing.assert_array_equal(obs[0], planes[1 + p])
        np.testing.assert_array_equal(obs[1], planes[2 - p])
        np.testing.assert_array_equal(obs[2], np.full((8, 8), float(p)))
        cells = game.board(state)[0].numpy()
        np.testing.assert_array_equal(cells, np.argmax(planes, axis=0) - 1)


def test_forced_pass_hand_made(game):
    # x (black) on b4 next to o (white) on a4: black cannot capture, white can play c4.
    state = make_state(black=[25], white=[24], to_play=0)
    assert legal_list(game, state) == [PASS]
    with pytest.raises(IllegalActionError):
        game.step(state, torch.tensor([26]))
    result = game.step(state, torch.tensor([PASS]))
    assert result.reward.item() == 0.0 and not result.terminal.item()
    assert game.to_play(result.state).item() == 1
    assert legal_list(game, result.state) == [26]
    # White may not pass while it has a move; c4 wipes black out and ends the game.
    with pytest.raises(IllegalActionError):
        game.step(result.state, torch.tensor([PASS]))
    final = game.step(result.state, torch.tensor([26]))
    assert final.terminal.item() and final.reward.item() == 1.0
    assert game.returns(final.state).tolist() == [[-1.0, 1.0]]
    assert "o (white) wins" in game.render(final.state) and "o 3" in game.render(final.state)


def test_forced_pass_from_openspiel_game(game, openspiel_game):
    for seed in range(200):
        actions, _ = openspiel_random_game(openspiel_game, seed)
        if PASS in actions:
            break
    else:
        pytest.fail("no random game with a pass in 200 seeds")
    i = actions.index(PASS)
    state = play(game, actions[:i])
    assert legal_list(game, state) == [PASS]
    after = game.step(state, torch.tensor([PASS])).state
    assert game.to_play(after).item() == 1 - game.to_play(state).item()
    assert torch.equal(after[:, :2], state[:, :2])


def test_final_move_loses(game, openspiel_game):
    for seed in range(100):
        actions, twin = openspiel_random_game(openspiel_game, seed)
        before = openspiel_game.new_initial_state()
        for a in actions[:-1]:
            before.apply_action(a)
        mover = before.current_player()
        if twin.returns()[mover] == -1.0:
            break
    else:
        pytest.fail("no random game in 100 seeds whose last mover loses")
    state = play(game, actions[:-1])
    assert not game.is_terminal(state).item() and game.to_play(state).item() == mover
    result = game.step(state, torch.tensor([actions[-1]]))
    assert result.terminal.item() and result.reward.item() == -1.0
    assert game.returns(result.state)[0].tolist() == list(twin.returns())
    # Terminal rows are no-ops.
    again = game.step(result.state, torch.tensor([0]))
    assert torch.equal(again.state, result.state) and again.reward.item() == 0.0
    assert not game.legal_actions(result.state).any()


def test_illegal_action_names_row_and_legal_moves(game):
    state = torch.cat([game.initial_state(1), game.initial_state(1)])
    with pytest.raises(IllegalActionError) as info:
        game.step(state, torch.tensor([19, 0]))
    assert info.value.row == 1 and info.value.action == 0
    assert info.value.legal == [19, 26, 37, 44]
    assert "row 1" in str(info.value) and "d3, c4, f5, e6" in str(info.value)
    with pytest.raises(IllegalActionError) as info:
        game.step(state, torch.tensor([PASS, 19]))
    assert info.value.row == 0 and info.value.action == PASS
    with pytest.raises(IllegalActionError, match="out of range"):
        game.step(state, torch.tensor([19, 65]))


def test_parse_and_format_match_openspiel(game, openspiel_game):
    twin = openspiel_game.new_initial_state()
    for a in range(65):
        text = game.action_to_string(a)
        assert text == twin.action_to_string(0, a)
        assert game.string_to_action(text) == a
    assert game.string_to_action(" D3 ") == 19 and game.string_to_action("h8") == 63
    for bad in ["z9", "i1", "a9", "a0", "d", "passs", ""]:
        with pytest.raises(ValueError, match=r"a1\.\.h8.*pass"):
            game.string_to_action(bad)


def test_render(game):
    text = game.render(game.initial_state(1))
    lines = text.splitlines()
    assert lines[0].split() == list("abcdefgh") and lines[9].split() == list("abcdefgh")
    assert lines[4].split() == ["4", ".", ".", ".", "o", "x", ".", ".", ".", "4"]
    assert "x (black) to play" in lines[-1] and "x 2, o 2" in lines[-1]


def dihedral(k, flip):
    def transform(x):
        return np.rot90(x[..., ::-1] if flip else x, k, axes=(-2, -1))

    return transform


def test_symmetries_map_legal_moves(game, openspiel_game):
    actions, _ = openspiel_random_game(openspiel_game, seed=5)
    grid = np.arange(64).reshape(8, 8)
    initial_cells = game.board(game.initial_state(1))[0].numpy()
    prefix = actions[:20]
    state = play(game, prefix)
    obs, legal = game.observe(state), game.legal_actions(state).float()
    labels = torch.arange(65, dtype=torch.float32)[None]
    sym_obs, sym_legal = game.symmetries(obs, legal)
    _, sym_labels = game.symmetries(obs, labels)
    assert sym_obs.shape == (8, 1, 3, 8, 8) and sym_legal.shape == (8, 1, 65)
    assert len({tuple(o.flatten().tolist()) for o in sym_obs}) == 8
    symmetric_start = 0
    for s in range(8):
        transform = dihedral(*divmod(s, 2))
        moved = np.ascontiguousarray(transform(grid)).reshape(-1)  # new cell -> old cell
        np.testing.assert_array_equal(sym_obs[s, 0].numpy(), transform(obs[0].numpy()))
        # Policy permutation and planes agree cell by cell; pass maps to itself.
        assert sym_labels[s, 0, :64].long().tolist() == moved.tolist()
        assert sym_labels[s, 0, 64] == 64
        planes = obs[0].numpy().reshape(3, 64)
        np.testing.assert_array_equal(sym_obs[s, 0].numpy().reshape(3, 64), planes[:, moved])
        # The game's own legal mask of the transformed position (rebuilt from the planes).
        mine = np.flatnonzero(sym_obs[s, 0, 0].numpy().reshape(-1)).tolist()
        theirs = np.flatnonzero(sym_obs[s, 0, 1].numpy().reshape(-1)).tolist()
        p = game.to_play(state).item()
        black, white = (mine, theirs) if p == 0 else (theirs, mine)
        rebuilt = make_state(black, white, p)
        assert torch.equal(game.legal_actions(rebuilt)[0].float(), sym_legal[s, 0])
        # Where the start is symmetric, replay the transformed moves from it.
        if np.array_equal(transform(initial_cells), initial_cells):
            symmetric_start += 1
            new_of_old = np.argsort(moved)
            replay = play(game, [a if a == PASS else int(new_of_old[a]) for a in prefix])
            assert torch.equal(game.legal_actions(replay)[0].float(), sym_legal[s, 0])
            assert torch.equal(game.observe(replay)[0], sym_obs[s, 0])
    assert symmetric_start == 4  # identity, the two diagonal reflections and the half turn


def test_random_playouts_reproducible(game):
    state = game.initial_state(1000)
    a = game.random_playouts(state, np.random.default_rng(7))
    b = game.random_playouts(state, np.random.default_rng(7))
    c = game.random_playouts(state, np.random.default_rng(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert set(a.tolist()) <= {-1.0, 0.0, 1.0}


def test_random_playouts_from_terminal_and_forced_endings(game, openspiel_game):
    actions, twin = openspiel_random_game(openspiel_game, seed=11)
    final = play(game, actions)
    out = game.random_playouts(final.repeat(4, 1), np.random.default_rng(0))
    assert out.tolist() == [twin.returns()[0]] * 4
    # A game whose last few plies were all forced: every playout from there ends the same way.
    for seed in range(100):
        actions, twin = openspiel_random_game(openspiel_game, seed)
        replay = openspiel_game.new_initial_state()
        forced_from = None
        for i, a in enumerate(actions):
            if len(replay.legal_actions()) > 1:
                forced_from = None
            elif forced_from is None:
                forced_from = i
            replay.apply_action(a)
        if forced_from is not None and forced_from <= len(actions) - 2:
            break
    else:
        pytest.fail("no random game ending with two forced plies in 100 seeds")
    state = play(game, actions[:forced_from])
    out = game.random_playouts(state.repeat(64, 1), np.random.default_rng(1))
    assert out.tolist() == [twin.returns()[0]] * 64


def test_random_playouts_match_openspiel_distribution(game, openspiel_game):
    n_os, n_ours = 3000, 50_000
    rng = random.Random(0)
    os_outcomes = []
    for _ in range(n_os):
        state = openspiel_game.new_initial_state()
        while not state.is_terminal():
            state.apply_action(rng.choice(state.legal_actions()))
        os_outcomes.append(state.returns()[0])
    os_outcomes = np.array(os_outcomes)
    ours = game.random_playouts(game.initial_state(n_ours), np.random.default_rng(0)).numpy()
    for value in (-1.0, 0.0, 1.0):
        p, q = (os_outcomes == value).mean(), (ours == value).mean()
        se = np.sqrt(p * (1 - p) / n_os + q * (1 - q) / n_ours)
        assert abs(p - q) < 4 * se + 1e-9, f"P(outcome={value}): openspiel {p:.4f} vs ours {q:.4f}"


@settings(max_examples=15, deadline=None)
@given(choices=st.lists(st.integers(0, 2**31), min_size=1, max_size=130))
def test_random_sequences_keep_invariants(choices):
    game = make("othello")
    state = game.initial_state(1)
    discs = 4
    for choice in choices:
        legal = legal_list(game, state)
        if game.is_terminal(state).item():
            assert legal == []
            result = game.step(state, torch.tensor([choice % 65]))
            assert torch.equal(result.state, state) and result.reward.item() == 0.0
            assert result.terminal.item()
            continue
        action = legal[choice % len(legal)]
        mover = game.to_play(state).item()
        result = game.step(state, torch.tensor([action]))
        black, white = result.state[0, 0].item(), result.state[0, 1].item()
        assert black & white == 0
        cells = game.board(result.state)[0]
        new_discs = int((cells >= 0).sum())
        assert new_discs == discs + (0 if action == PASS else 1)
        if action != PASS:
            assert cells[action // 8, action % 8] == mover
        if result.terminal.item():
            assert result.reward.item() == game.returns(result.state)[0, mover].item()
            counts = [int((cells == 0).sum()), int((cells == 1).sum())]
            assert game.returns(result.state)[0, 0].item() == np.sign(counts[0] - counts[1])
        else:
            assert result.reward.item() == 0.0
            assert game.to_play(result.state).item() == 1 - mover
        discs, state = new_discs, result.state
