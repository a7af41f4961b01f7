"""Tic-tac-toe as numba kernels over bitboards.

Actions 0..8 are the cells in row-major order (as OpenSpiel's
``tic_tac_toe``); player 0 is ``x`` and moves first. State words:
``[x_bits, o_bits, TO_PLAY, DONE, OUTCOME]`` with bit ``a`` = cell ``a``.
Observation ``[3, 3, 3]``: the mover's stones, the opponent's stones, and a
plane of ones when player 1 (``o``) is to move.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from mbrl.planners.threads import batch_kernel

from ._native import GameKernels, NativeGame, Symmetry, splitmix64

NUM_CELLS = 9
TO_PLAY, DONE, OUTCOME = 2, 3, 4
FULL = (1 << NUM_CELLS) - 1
WIN_LINES = np.array(
    [
        0b000000111,
        0b000111000,
        0b111000000,
        0b001001001,
        0b010010010,
        0b100100100,
        0b100010001,
        0b001010100,
    ],
    dtype=np.int64,
)


@numba.njit(inline="always")
def _has_line(bits, lines):
    for i in range(lines.shape[0]):
        if bits & lines[i] == lines[i]:
            return True
    return False


@numba.njit(inline="always")
def _play(row, a, lines):
    """Play cell ``a`` for the mover in place; returns the mover's reward."""
    p = row[TO_PLAY]
    row[p] |= np.int64(1) << a
    row[TO_PLAY] = 1 - p
    if _has_line(row[p], lines):
        row[DONE] = 1
        row[OUTCOME] = 1 if p == 0 else -1
        return 1.0
    if (row[0] | row[1]) == FULL:
        row[DONE] = 1
    return 0.0


MIN_PARALLEL_BATCH = {
    "step": 1024,
    "legal": 16384,
    "observe": 4096,
    "board": 4096,
    "playout": 64,
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
        if a < 0 or a >= NUM_CELLS or ((states[b, 0] | states[b, 1]) >> a) & 1:
            errors[b] = 1
            num_errors += 1
            continue
        rewards[b] = _play(out[b], a, WIN_LINES)
    return num_errors


@batch_kernel(min_parallel_batch=MIN_PARALLEL_BATCH["legal"])
def _legal(states, mask):
    for b in prange(states.shape[0]):
        occupied = states[b, 0] | states[b, 1]
        for a in range(NUM_CELLS):
            mask[b, a] = states[b, DONE] == 0 and ((occupied >> a) & 1) == 0


@batch_kernel(min_parallel_batch=MIN_PARALLEL_BATCH["observe"])
def _observe(states, obs):
    for b in prange(states.shape[0]):
        p = states[b, TO_PLAY]
        mine, theirs = states[b, p], states[b, 1 - p]
        for a in range(NUM_CELLS):
            r, c = a // 3, a % 3
            obs[b, 0, r, c] = (mine >> a) & 1
            obs[b, 1, r, c] = (theirs >> a) & 1
            obs[b, 2, r, c] = p


@batch_kernel(min_parallel_batch=MIN_PARALLEL_BATCH["board"])
def _board(states, cells):
    for b in prange(states.shape[0]):
        for a in range(NUM_CELLS):
            r, c = a // 3, a % 3
            if (states[b, 0] >> a) & 1:
                cells[b, r, c] = 0
            elif (states[b, 1] >> a) & 1:
                cells[b, r, c] = 1
            else:
                cells[b, r, c] = -1


@batch_kernel(min_parallel_batch=MIN_PARALLEL_BATCH["playout"])
def _playout(states, seeds, outcome):
    for b in prange(states.shape[0]):
        row = states[b].copy()
        rng = seeds[b]
        while row[DONE] == 0:
            free = FULL & ~(row[0] | row[1])
            n = 0
            for a in range(NUM_CELLS):
                n += (free >> a) & 1
            rng, r = splitmix64(rng)
            k = np.int64(r % np.uint64(n))
            for a in range(NUM_CELLS):
                if (free >> a) & 1:
                    if k == 0:
                        _play(row, a, WIN_LINES)
                        break
                    k -= 1
        outcome[b] = row[OUTCOME]


COLUMNS = "abc"


def _action_to_string(action: int) -> str:
    return f"{COLUMNS[action % 3]}{action // 3 + 1}"


def _string_to_action(text: str) -> int:
    if len(text) == 2 and text[0] in COLUMNS and text[1] in "123":
        return (int(text[1]) - 1) * 3 + COLUMNS.index(text[0])
    raise ValueError(
        f"not a tic-tac-toe move: {text!r}; write a cell as column+row, e.g. 'b2' (a1..c3)"
    )


def _render(cells: np.ndarray, to_play: int, done: bool, outcome: int) -> str:
    symbols = {-1: ".", 0: "x", 1: "o"}
    lines = ["   " + " ".join(COLUMNS)]
    for r in range(3):
        lines.append(f"{r + 1}  " + " ".join(symbols[int(v)] for v in cells[r]))
    if done:
        lines.append({1: "x wins", -1: "o wins", 0: "draw"}[outcome])
    else:
        lines.append(f"{'xo'[to_play]} to play")
    return "\n".join(lines)


def make() -> NativeGame:
    """The tic-tac-toe model."""
    return NativeGame(
        name="tic_tac_toe",
        kernels=GameKernels(_step, _legal, _observe, _board, _playout),
        num_actions=NUM_CELLS,
        board_shape=(3, 3),
        num_planes=3,
        initial=np.zeros(5, dtype=np.int64),
        max_episode_length=9,
        symmetry=Symmetry.DIHEDRAL,
        action_grid=np.arange(NUM_CELLS).reshape(3, 3),
        action_to_string=_action_to_string,
        string_to_action=_string_to_action,
        render_board=_render,
    )
