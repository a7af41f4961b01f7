"""Mistake rate against the connect-four solver (needs the optional ``bitbully``)."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("bitbully")

from mbrl import games
from mbrl.evaluation.mistakes import (
    is_critical,
    is_mistake,
    mistake_rate,
    replay,
    solver_positions,
    solver_scores,
)
from mbrl.games.players import make_player

WIN_NOW = [0, 1, 0, 1, 0, 1]
"""x to move: column 0 wins at once, every other column loses."""
SLOW_WIN = [0, 6, 0, 6, 0, 6]
"""x to move: column 0 wins at once, column 6 wins later, the rest lose."""
MUST_BLOCK = [6, 5, 6, 5, 6]
"""o to move: only blocking column 6 avoids an immediate loss."""
LOST = [1, 1, 2, 2, 3]
"""o to move against two open threats (columns 0 and 4): every move loses."""


@pytest.fixture(scope="module")
def game():
    return games.make("connect_four")


@pytest.fixture(scope="module")
def positions():
    return solver_positions(40, max_plies=10, seed=0)


class Leftmost:
    name = "leftmost"

    def __init__(self, game):
        self.game = game

    def act(self, state, histories):
        return self.game.legal_actions(state).int().argmax(dim=1)


class Fixed:
    """Plays the given column in every position."""

    name = "fixed"

    def __init__(self, column):
        self.column = column

    def act(self, state, histories):
        return torch.full((state.shape[0],), self.column, dtype=torch.int64)


def test_solver_makes_no_mistakes(game, positions):
    report = mistake_rate(make_player("solver", game), positions, game, batch_size=16)
    assert report.num_positions == len(positions) == 40
    assert report.critical_positions > 0
    assert report.num_mistakes == 0
    assert report.rate == report.critical_rate == 0.0


def test_random_player_makes_mistakes(game, positions):
    report = mistake_rate(make_player("random", game), positions, game, batch_size=7)
    assert report.critical_positions > 10
    assert report.critical_rate > 0.2
    assert 0 < report.rate <= report.critical_rate
    assert report.num_mistakes <= report.critical_positions


def test_leftmost_by_hand(game):
    # empty board: column 0 loses, column 3 wins -> mistake (critical)
    # WIN_NOW and SLOW_WIN: column 0 wins at once -> no mistake (critical)
    # MUST_BLOCK: column 0 lets x win -> mistake (critical)
    # LOST: every move loses -> no mistake (not critical)
    positions = [[], WIN_NOW, SLOW_WIN, MUST_BLOCK, LOST]
    report = mistake_rate(Leftmost(game), positions, game, batch_size=2)
    assert report.num_positions == 5
    assert report.num_mistakes == 2
    assert report.critical_positions == 4
    assert report.rate == pytest.approx(2 / 5)
    assert report.critical_rate == pytest.approx(2 / 4)


def test_immediate_win_any_other_move_is_a_mistake(game):
    scores = solver_scores(WIN_NOW)
    assert set(scores) == set(range(7))
    assert scores[0] > 0 and scores[0] == max(scores.values())
    assert all(is_mistake(scores, a) for a in range(1, 7))
    assert not is_mistake(scores, 0)
    assert is_critical(scores)
    assert mistake_rate(Fixed(0), [WIN_NOW], game).num_mistakes == 0
    assert mistake_rate(Fixed(3), [WIN_NOW], game).num_mistakes == 1


def test_slower_win_is_not_a_mistake(game):
    scores = solver_scores(SLOW_WIN)
    assert scores[0] > scores[6] > 0
    assert mistake_rate(Fixed(6), [SLOW_WIN], game).num_mistakes == 0
    assert mistake_rate(Fixed(5), [SLOW_WIN], game).num_mistakes == 1


def test_position_without_a_possible_mistake(game):
    scores = solver_scores(LOST)
    assert all(s < 0 for s in scores.values())
    assert not is_critical(scores)
    assert not any(is_mistake(scores, a) for a in scores)


def test_positions_are_seeded(game):
    a = solver_positions(15, max_plies=8, seed=1)
    assert a == solver_positions(15, max_plies=8, seed=1)
    assert a != solver_positions(15, max_plies=8, seed=2)
    assert all(len(h) < 8 for h in a)
    states = replay(game, a)
    assert not game.is_terminal(states).any()
    assert len({tuple(row) for row in states.tolist()}) == len(a)  # no duplicate boards


def test_illegal_move_and_finished_game_are_errors(game):
    full_column = [0, 1, 0, 1, 1, 0, 1, 0, 0, 1, 0, 1]  # column 0 is full, no four
    assert 0 not in solver_scores(full_column)
    with pytest.raises(ValueError, match="not a legal move"):
        mistake_rate(Fixed(0), [full_column], game)
    with pytest.raises(ValueError, match="finished"):
        mistake_rate(Fixed(2), [[*WIN_NOW, 0]], game)
