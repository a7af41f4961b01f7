"""Exact minimax for tic-tac-toe: every reachable position solved once.

Scores are from the point of view of the player to move and prefer quick
wins and slow losses: a win with ``k`` empty cells left after the winning
move scores ``1 + k``, a loss ``-(1 + k)``, a draw 0. The sign is the
game-theoretic value.
"""

from __future__ import annotations

from functools import cache

from .tic_tac_toe import FULL, WIN_LINES

_LINES = [int(x) for x in WIN_LINES]


def _won(bits: int) -> bool:
    return any(bits & line == line for line in _LINES)


@cache
def solve(mine: int, theirs: int) -> int:
    """Score of the position for the player to move, whose stones are ``mine``.

    Assumes the position is not over (the previous move did not win).
    """
    free = FULL & ~(mine | theirs)
    if free == 0:
        return 0
    return max(move_score(mine, theirs, a) for a in range(9) if free >> a & 1)


def move_score(mine: int, theirs: int, action: int) -> int:
    """Score for the player to move of playing ``action`` (a free cell)."""
    after = mine | 1 << action
    empty_after = 9 - bin(after | theirs).count("1")
    if _won(after):
        return 1 + empty_after
    return -solve(theirs, after)


def move_scores(state_row) -> dict[int, int]:
    """Scores of every legal move in a tic-tac-toe state row ``[5]`` (int64 words)."""
    x, o, to_play, done = (int(v) for v in state_row[:4])
    if done:
        return {}
    mine, theirs = (x, o) if to_play == 0 else (o, x)
    free = FULL & ~(x | o)
    return {a: move_score(mine, theirs, a) for a in range(9) if free >> a & 1}


def value(state_row) -> int:
    """Game-theoretic value (-1, 0, +1) for the player to move; 0 for a finished game."""
    scores = move_scores(state_row)
    best = max(scores.values()) if scores else 0
    return (best > 0) - (best < 0)
