"""Depth-limited minimax for connect four: the baseline of the Pons benchmark.

Alpha-beta negamax over the bitboards of :mod:`mbrl.games.connect_four` (seven
columns of seven bits, six cells and a sentinel; here ``position`` holds the stones of
the player to move and ``mask`` every stone, as in Pascal Pons' solver), compiled with
numba, with that module's four-in-a-row test and stone drop. It sees wins and losses
within ``depth`` plies and nothing else: a leaf that is not decided scores 0, a win
``k`` plies from the root scores ``100 - k`` (sooner is better) and a loss
``-(100 - k)``; a full board is a draw. Moves are tried centre first. With ``depth``
at least the number of empty cells it is exact (the tests check it against the solver).
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np

from .connect_four import NUM_COLS, NUM_ROWS, STRIDE, _drop, _has_four

__all__ = ["HEIGHT", "WIDTH", "bitboards", "move_scores"]

WIDTH, HEIGHT = NUM_COLS, NUM_ROWS
_ORDER = np.array([3, 2, 4, 1, 5, 0, 6], dtype=np.int64)
_WIN = 100


@numba.njit(inline="always")
def _full(mask: np.int64, col: int) -> bool:
    return (mask & (np.int64(1) << np.int64(HEIGHT - 1 + col * STRIDE))) != 0


@numba.njit(inline="always")
def _wins(position: np.int64, mask: np.int64, col: int) -> bool:
    return _has_four(position | _drop(mask, col))


@numba.njit(inline="always")
def _after(mask: np.int64, col: int) -> np.int64:
    return mask | _drop(mask, col)


@numba.njit  # no cache: numba's cache of a recursive function crashes when it is reloaded
def _negamax(position, mask, stones, depth, ply, alpha, beta) -> int:
    if stones == WIDTH * HEIGHT:
        return 0
    for i in range(WIDTH):  # a win in one ends the search here
        col = _ORDER[i]
        if not _full(mask, col) and _wins(position, mask, col):
            return _WIN - (ply + 1)
    if depth <= 1:
        return 0
    best = -_WIN - 1
    for i in range(WIDTH):
        col = _ORDER[i]
        if _full(mask, col):
            continue
        after_mask = _after(mask, col)
        score = -_negamax(
            position ^ mask, after_mask, stones + 1, depth - 1, ply + 1, -beta, -alpha
        )
        if score > best:
            best = score
        if score > alpha:
            alpha = score
        if alpha >= beta:
            break
    return best


@numba.njit
def _root_scores(position, mask, stones, depth) -> np.ndarray:
    scores = np.full(WIDTH, -(2 * _WIN), dtype=np.int64)  # illegal columns
    for col in range(WIDTH):
        if _full(mask, col):
            continue
        if _wins(position, mask, col):
            scores[col] = _WIN - 1
        elif depth > 1:
            after = _after(mask, col)
            scores[col] = -_negamax(
                position ^ mask, after, stones + 1, depth - 1, 1, -_WIN - 1, _WIN + 1
            )
        else:
            scores[col] = 0
    return scores


def bitboards(history: Sequence[int]) -> tuple[int, int]:
    """``(position, mask)`` after ``history`` (0-based columns): the mover's stones and all."""
    position = mask = 0
    heights = [0] * WIDTH
    for col in history:
        col = int(col)
        if not 0 <= col < WIDTH or heights[col] == HEIGHT:
            raise ValueError(f"illegal connect-four move {col} in {list(history)}")
        heights[col] += 1
        position ^= mask
        mask |= mask + (1 << (col * STRIDE))
    return position, mask


def move_scores(history: Sequence[int], depth: int) -> dict[int, int]:
    """The depth-limited minimax score of every legal column after ``history`` (0-based):
    positive a forced win within ``depth`` plies (sooner larger), negative a forced loss,
    0 undecided (or a draw). Raises ValueError for a finished or illegal history."""
    if depth < 1:
        raise ValueError(f"minimax depth must be >= 1, got {depth}")
    position, mask = bitboards(history)
    if _has_four(np.int64(position ^ mask)):
        raise ValueError(f"the game after {list(history)} is already won")
    if len(history) == WIDTH * HEIGHT:
        raise ValueError(f"the board after {list(history)} is full")
    scores = _root_scores(np.int64(position), np.int64(mask), len(history), depth)
    return {col: int(s) for col, s in enumerate(scores) if s > -(2 * _WIN)}
