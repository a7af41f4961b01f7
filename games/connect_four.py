"""Connect four as numba kernels over bitboards.

Six rows by seven columns, actions 0..6 are the columns (as OpenSpiel's
``connect_four``); player 0 is ``x`` and moves first. Each player's stones are
one int64 word in the classic layout: 7 bits per column (6 rows and an
always-empty sentinel bit on top), bit ``col * 7 + row`` with row 0 at the
bottom. State words: ``[x_bits, o_bits, TO_PLAY, DONE, OUTCOME]``; the column
heights follow from ``x_bits | o_bits``.

Observation ``[3, 6, 7]``: the mover's stones, the opponent's stones, and a
plane of ones when player 1 (``o``) is to move; row 0 is the top row of the
board, as printed.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from mbrl.planners.threads import batch_kernel

from ._native import GameKernels, NativeGame, Symmetry, splitmix64

NUM_ROWS, NUM_COLS = 6, 7
STRIDE = NUM_ROWS + 1
"""Bits per column: the rows plus a sentinel bit that stays empty."""
TO_PLAY, DONE, OUTCOME = 2, 3, 4
COLUMN = (1 << NUM_ROWS) - 1
"""The playable bits of column 0."""
BOTTOM = sum(1 << (c * STRIDE) for c in range(NUM_COLS))
TOP = BOTTOM << (NUM_ROWS - 1)
"""The top-row bit of every column: a column is full iff its top bit is set."""
FULL = BOTTOM * COLUMN


@numba.njit(inline="always")
def _has_four(bits):
    """Four in a row anywhere in ``bits`` (shift-and over the four directions)."""
    m = bits & (bits >> 1)  # vertical
    if m & (m >> 2):
        return True
    m = bits & (bits >> STRIDE)  # horizontal
    if m & (m >> (2 * STRIDE)):
        return True
    m = bits & (bits >> (STRIDE - 1))  # diagonal \
    if m & (m >> (2 * (STRIDE - 1))):
        return True
    m = bits & (bits >> (STRIDE + 1))  # diagonal /
    return (m & (m >> (2 * (STRIDE + 1)))) != 0


@numba.njit(inline="always")
def _drop(occupied, col):
    """The bit a stone dropped into ``col`` lands on (0 if the column is full)."""
    shift = col * STRIDE
    return (occupied + (np.int64(1) << shift)) & (np.int64(COLUMN) << shift)


@numba.njit(inline="always")
def _play(row, col):
    """Drop the mover's stone into ``col`` (not full) in place; returns the mover's reward."""
    p = row[TO_PLAY]
    row[p] |= _drop(row[0] | row[1], col)
    row[TO_PLAY] = 1 - p
    if _has_four(row[p]):
        row[DONE] = 1
        row[OUTCOME] = 1 if p == 0 else -1
        return 1.0
    if (row[0] | row[1]) == FULL:
        row[DONE] = 1
    return 0.0


MIN_PARALLEL_BATCH = {
    "step": 1024,
    "legal": 16384,
    "observe": 1024,
    "board": 1024,
    "playout": 256,
}
"""Batch sizes from which each kernel may run in parallel: where the ``prange`` build
beat the serial one on an idle 2-core machine (``benchmarks/kernel_threads.py``)."""


@batch_kernel(min_parallel_batch=MIN_PARALLEL_BATCH["step"])
def _step(states, actions, out, rewards, errors):
    num_errors = 0
    for b in prange(states.shape[0]):
        for w in range(states.shape[1]):
            out[b, w] = states[b, w]
        rewards[b] = 0.0
        if states[b, DONE]:
            continue
        a = actions[b]
        if (
            a < 0
            or a >= NUM_COLS
            or ((states[b, 0] | states[b, 1]) >> (a * STRIDE + NUM_ROWS - 1)) & 1
        ):
            errors[b] = 1
            num_errors += 1
            continue
        rewards[b] = _play(out[b], a)
    return num_errors


@batch_kernel(min_parallel_batch=MIN_PARALLEL_BATCH["legal"])
def _legal(states, mask):
    for b in prange(states.shape[0]):
        occupied = states[b, 0] | states[b, 1]
        for a in range(NUM_COLS):
            top = (occupied >> (a * STRIDE + NUM_ROWS - 1)) & 1
            mask[b, a] = states[b, DONE] == 0 and top == 0


@batch_kernel(min_parallel_batch=MIN_PARALLEL_BATCH["observe"])
def _observe(states, obs):
    for b in prange(states.shape[0]):
        p = states[b, TO_PLAY]
        mine, theirs = states[b, p], states[b, 1 - p]
        for c in range(NUM_COLS):
            for r in range(NUM_ROWS):
                i = c * STRIDE + r
                obs[b, 0, NUM_ROWS - 1 - r, c] = (mine >> i) & 1
                obs[b, 1, NUM_ROWS - 1 - r, c] = (theirs >> i) & 1
                obs[b, 2, NUM_ROWS - 1 - r, c] = p


@batch_kernel(min_parallel_batch=MIN_PARALLEL_BATCH["board"])
def _board(states, cells):
    for b in prange(states.shape[0]):
        for c in range(NUM_COLS):
            for r in range(NUM_ROWS):
                i = c * STRIDE + r
                if (states[b, 0] >> i) & 1:
                    cells[b, NUM_ROWS - 1 - r, c] = 0
                elif (states[b, 1] >> i) & 1:
                    cells[b, NUM_ROWS - 1 - r, c] = 1
                else:
                    cells[b, NUM_ROWS - 1 - r, c] = -1


@batch_kernel(min_parallel_batch=MIN_PARALLEL_BATCH["playout"])
def _playout(states, seeds, outcome):
    for b in prange(states.shape[0]):
        if states[b, DONE]:
            outcome[b] = states[b, OUTCOME]
            continue
        p = states[b, TO_PLAY]
        mine, theirs = states[b, p], states[b, 1 - p]
        occupied = mine | theirs
        free = ~occupied & TOP  # the top bits of the columns that are not full
        n = np.uint64(0)
        f = free
        while f:
            f &= f - 1
            n += np.uint64(1)
        rng = seeds[b]
        r = np.uint64(0)
        bits_left = 0
        result = 0
        while n:
            # 32 random bits per move (two moves per SplitMix64 call);
            # k = floor(u32 * n / 2^32) is uniform in [0, n) up to a bias < 2^-29.
            if bits_left == 0:
                rng, r = splitmix64(rng)
                bits_left = 2
            k = ((r & np.uint64(0xFFFFFFFF)) * n) >> np.uint64(32)
            r >>= np.uint64(32)
            bits_left -= 1
            f = free
            while k:
                f &= f - 1
                k -= np.uint64(1)
            top = f & -f  # the top bit of the chosen column
            bottom = top >> (NUM_ROWS - 1)
            move = (occupied + bottom) & (top + top - bottom)
            occupied |= move
            mine |= move
            if move == top:  # the column is now full
                free ^= top
                n -= np.uint64(1)
            if _has_four(mine):
                result = 1 if p == 0 else -1
                break
            mine, theirs = theirs, mine
            p = 1 - p
        outcome[b] = result


def _action_to_string(action: int) -> str:
    return str(action + 1)


def _string_to_action(text: str) -> int:
    if len(text) == 1 and text in "1234567":
        return int(text) - 1
    raise ValueError(f"not a connect-four move: {text!r}; write a column number 1..7")


def _render(cells: np.ndarray, to_play: int, done: bool, outcome: int) -> str:
    symbols = {-1: ".", 0: "x", 1: "o"}
    lines = [" ".join(str(c + 1) for c in range(NUM_COLS))]
    for r in range(NUM_ROWS):
        lines.append(" ".join(symbols[int(v)] for v in cells[r]))
    if done:
        lines.append({1: "x wins", -1: "o wins", 0: "draw"}[outcome])
    else:
        lines.append(f"{'xo'[to_play]} to play")
    return "\n".join(lines)


def make() -> NativeGame:
    """The connect-four model."""
    return NativeGame(
        name="connect_four",
        kernels=GameKernels(_step, _legal, _observe, _board, _playout),
        num_actions=NUM_COLS,
        board_shape=(NUM_ROWS, NUM_COLS),
        num_planes=3,
        initial=np.zeros(5, dtype=np.int64),
        max_episode_length=NUM_ROWS * NUM_COLS,
        symmetry=Symmetry.MIRROR,
        action_grid=np.arange(NUM_COLS).reshape(1, NUM_COLS),
        action_to_string=_action_to_string,
        string_to_action=_string_to_action,
        render_board=_render,
    )
