"""The Pons connect-four benchmark and its minimax baseline, against the solver."""

from __future__ import annotations

import pytest

from mbrl import games
from mbrl.evaluation.pons import SETS, pons_benchmark, pons_set, pons_table
from mbrl.games import connect_four_minimax
from mbrl.games.players import check_player_spec, make_player

pytestmark = pytest.mark.usefixtures("one_thread")


def _class(score: int) -> int:
    return (score > 0) - (score < 0)


def test_the_six_sets_are_vendored_whole():
    for name in SETS:
        positions = pons_set(name)
        assert len(positions) == 1000
        assert all(0 <= c < 7 for p in positions for c in p.history)
    first = pons_set("end-easy")[0]  # its file's first line: "22525762534622441... -1"
    assert first.history[:5] == (1, 1, 4, 1, 4) and first.score == -1
    with pytest.raises(ValueError, match="unknown Pons set"):
        pons_set("end-hard")


def test_the_files_scores_agree_with_the_solver():
    from mbrl.evaluation.mistakes import solver_scores

    pytest.importorskip("bitbully")
    for name in SETS:
        for position in pons_set(name, 20):
            best = max(solver_scores(position.history).values())
            assert _class(best) == _class(position.score), (name, position)


def test_minimax_is_exact_when_it_sees_to_the_end():
    pytest.importorskip("bitbully")
    from mbrl.games.players import ConnectFourSolver

    solver, checked = ConnectFourSolver(), 0
    for position in pons_set("end-easy", 300):
        empty = 42 - len(position.history)
        if empty > 10:
            continue
        ours = connect_four_minimax.move_scores(position.history, empty)
        exact = solver.move_scores(position.history)
        assert {c: _class(s) for c, s in ours.items()} == {c: _class(s) for c, s in exact.items()}
        checked += 1
    assert checked >= 30


def test_minimax_takes_a_win_in_one_and_blocks_a_loss_in_one():
    # x: columns 0, 1, 2 on the bottom row; o above them; x to move wins at 3
    win = [0, 0, 1, 1, 2, 2]
    scores = connect_four_minimax.move_scores(win, 1)
    assert scores[3] == 99 and all(s == 0 for c, s in scores.items() if c != 3)
    # o to move must block column 3 (every other move loses at once)
    block = [0, 6, 1, 6, 2]
    scores = connect_four_minimax.move_scores(block, 2)
    assert scores[3] == 0 and all(s == -98 for c, s in scores.items() if c != 3)
    with pytest.raises(ValueError, match="already won"):
        connect_four_minimax.move_scores([0, 1, 0, 1, 0, 1, 0], 3)
    with pytest.raises(ValueError, match="illegal"):
        connect_four_minimax.bitboards([0] * 7)


def test_the_benchmark_separates_the_solver_from_random_play():
    pytest.importorskip("bitbully")
    game = games.make("connect_four")
    players = [make_player("solver", game), make_player("random", game, seed=1)]
    results = pons_benchmark(players, game, per_set=20, sets=["end-easy", "beginning-hard"])
    for reports in results.values():
        assert reports[0].num_mistakes == 0 and reports[0].num_positions == 20
    assert sum(reports[1].num_mistakes for reports in results.values()) > 5
    table = pons_table(["solver", "random"], results)
    assert table.row_count == 2


def test_minimax_specs_are_checked():
    check_player_spec("minimax:4", "connect_four")
    check_player_spec("minimax", "tic_tac_toe")
    for spec, game in [("minimax:0", "connect_four"), ("minimax:4", "tic_tac_toe"),
                       ("minimax", "othello"), ("minimax:x", "connect_four")]:  # fmt: skip
        with pytest.raises(ValueError, match="minimax"):
            check_player_spec(spec, game)
    player = make_player("minimax:3", games.make("connect_four"), seed=0)
    state = games.make("connect_four").initial_state(1)
    assert player.name == "minimax:3" and int(player.act(state, [[]])[0]) in range(7)


def test_vendored_score_lines_round_trip():
    from mbrl.evaluation.pons import format_scores, parse_scores

    scores = {0: -3, 2: 0, 3: 5, 6: -1}
    assert format_scores(scores) == "-3 . 0 5 . . -1"
    assert parse_scores(format_scores(scores)) == scores
    with pytest.raises(ValueError, match="7 columns"):
        parse_scores("1 2 3")


def test_every_position_has_vendored_move_scores():
    # no solver needed: the legal columns are the position's, and the best move's class
    # is the class Pons' file gives the position
    for name in SETS:
        for position in pons_set(name):
            scores = position.move_scores
            assert scores is not None, name
            legal = {c for c in range(7) if position.history.count(c) < 6}
            assert set(scores) == legal, (name, position)
            assert _class(max(scores.values())) == _class(position.score), (name, position)


def test_the_vendored_move_scores_equal_the_solvers():
    pytest.importorskip("bitbully")
    from mbrl.games.players import ConnectFourSolver

    solver = ConnectFourSolver()
    for name in SETS:
        for position in pons_set(name)[::40]:
            assert position.move_scores == solver.move_scores(position.history), (name, position)
