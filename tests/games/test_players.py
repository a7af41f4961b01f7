import numpy as np
import pyspiel
import pytest
import torch
from open_spiel.python.algorithms.minimax import alpha_beta_search

from mbrl.evaluation.arena import play_games, play_match
from mbrl.games import make, minimax
from mbrl.games.players import (
    HumanPlayer,
    MinimaxPlayer,
    OpenSpielMCTSPlayer,
    QuitGame,
    RandomPlayer,
    make_player,
)
from mbrl.model import UnknownNameError


@pytest.fixture(scope="module")
def ttt():
    return make("tic_tac_toe")


def replay(game, moves):
    state = game.initial_state(1)
    for a in moves:
        state = game.step(state, torch.tensor([a])).state
    return state


def test_minimax_agrees_with_openspiel_alpha_beta(ttt):
    spiel = pyspiel.load_game("tic_tac_toe")
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(60):
        spiel_state, moves = spiel.new_initial_state(), []
        for _ in range(rng.integers(2, 7)):
            if spiel_state.is_terminal():
                break
            a = int(rng.choice(spiel_state.legal_actions()))
            spiel_state.apply_action(a)
            moves.append(a)
        if spiel_state.is_terminal():
            continue
        row = replay(ttt, moves)[0].numpy()
        expected, _ = alpha_beta_search(spiel, state=spiel_state.clone())
        assert minimax.value(row) == expected, moves
        # Every move's sign is the value of the child for the mover.
        for action, score in minimax.move_scores(row).items():
            child = spiel_state.child(action)
            if child.is_terminal():
                child_value = child.returns()[spiel_state.current_player()]
            else:
                child_value = -alpha_beta_search(spiel, state=child)[0]
            assert np.sign(score) == child_value
        checked += 1
    assert checked > 30


def test_solved_positions(ttt):
    assert minimax.value(ttt.initial_state(1)[0].numpy()) == 0  # tic-tac-toe is a draw
    # x: a1, c3; o: b2 (centre) ... x to move after o errs at a3? Known: corner-corner fork.
    # x a1, o b1 (edge reply to a corner loses), x wins.
    row = replay(ttt, [0, 1])[0].numpy()
    assert minimax.value(row) == 1
    # Win in one is preferred over a slower win.
    row = replay(ttt, [0, 3, 1, 4])[0].numpy()  # x a1 b1, o a2 b2: x plays c1 now
    scores = minimax.move_scores(row)
    assert max(scores, key=scores.get) == 2


def test_minimax_never_loses(ttt):
    result = play_match(ttt, MinimaxPlayer(ttt, seed=0), RandomPlayer(ttt, seed=1), num_games=200)
    assert result.losses == 0 and result.wins > 150
    draws = play_match(ttt, MinimaxPlayer(ttt, seed=2), MinimaxPlayer(ttt, seed=3), num_games=20)
    assert draws.draws == 20


def test_openspiel_mcts_beats_random(ttt):
    result = play_match(
        ttt, OpenSpielMCTSPlayer(ttt, 200, seed=0), RandomPlayer(ttt, 1), num_games=20
    )
    assert result.losses <= 1 and result.wins >= 14


def test_play_games_records(ttt):
    records = play_games(ttt, RandomPlayer(ttt, 0), RandomPlayer(ttt, 1), num_games=50)
    assert records.returns.shape == (50, 2)
    spiel = pyspiel.load_game("tic_tac_toe")
    for history, ret in zip(records.histories, records.returns):
        state = spiel.new_initial_state()
        for a in history:
            state.apply_action(a)
        assert state.is_terminal() and list(ret) == state.returns()


def test_human_player_reprompts_on_bad_input(ttt):
    answers = iter(["nonsense", "b2", "a1"])
    messages = []
    player = HumanPlayer(ttt, read=lambda prompt: next(answers), write=messages.append)
    state = replay(ttt, [4])
    assert player.act(state, [[4]]).tolist() == [0]
    assert "a1..c3" in messages[0] and "not legal" in messages[1]
    with pytest.raises(QuitGame):
        HumanPlayer(ttt, read=lambda prompt: "q").act(state, [[4]])

    def eof(prompt):
        raise EOFError

    with pytest.raises(QuitGame):
        HumanPlayer(ttt, read=eof).act(state, [[4]])


def test_make_player_errors(ttt):
    with pytest.raises(UnknownNameError, match="mcts:N"):
        make_player("alphabeta", ttt)
    with pytest.raises(ValueError, match="mcts:1000"):
        make_player("mcts:many", ttt)
    with pytest.raises(ValueError, match="no solver"):
        make_player("solver", make("othello"))
    assert make_player("solver", ttt).name == "minimax"


def test_connect_four_solver_never_loses():
    pytest.importorskip("bitbully")
    game = make("connect_four")
    solver = make_player("solver", game, seed=0)
    versus_random = play_match(game, solver, RandomPlayer(game, 1), num_games=10)
    assert versus_random.wins == 10
    versus_mcts = play_match(game, solver, OpenSpielMCTSPlayer(game, 100, seed=2), num_games=2)
    assert versus_mcts.losses == 0


def test_connect_four_solver_scores():
    pytest.importorskip("bitbully")
    from mbrl.games.players import ConnectFourSolver

    scores = ConnectFourSolver().move_scores([])
    assert (
        max(scores, key=scores.get) == 3 and scores[3] > 0
    )  # the first player wins via the centre
    # Player 0 has 3 stones stacked in column 0: only blocking there avoids a loss.
    scores = ConnectFourSolver().move_scores([0, 6, 0, 6, 0])
    assert max(scores, key=scores.get) == 0
    assert all(s < 0 for col, s in scores.items() if col != 0)
