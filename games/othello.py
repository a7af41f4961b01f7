"""Othello (8x8 reversi) as numba kernels over bitboards, as OpenSpiel's ``othello``.

Rules as in OpenSpiel: player 0 is Black (``x``) and moves first, player 1 is
White (``o``); the start has White on d4, e5 and Black on e4, d5. Actions
0..63 are the cells ``row * 8 + col`` with row 0 the top row (written "a1" at
the top left .. "h8" at the bottom right), action 64 is the pass, legal only
when the player to move has no other move. After a disc is placed the game
ends when neither player has a move (full board included); it never ends on
a pass. The winner has more discs: returns +1/-1, or 0 for both on a tie.

State words: ``[bits_player0, bits_player1, TO_PLAY, DONE, OUTCOME]`` where
bit ``a`` of a player's word is cell ``a`` (stored as int64, worked on as
uint64). Observation ``[3, 8, 8]``: the mover's discs, the opponent's discs,
and a plane of ones when player 1 (White) is to move.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from mbrl.planners.threads import batch_kernel

from ._native import GameKernels, NativeGame, Symmetry, splitmix64

SIZE = 8
NUM_CELLS = SIZE * SIZE
PASS = NUM_CELLS
NUM_ACTIONS = NUM_CELLS + 1
TO_PLAY, DONE, OUTCOME = 2, 3, 4
# OpenSpiel's max_game_length(); the true bound is 120 (60 discs, each pass follows a disc).
MAX_PLIES = 128

# Every operand of the bit work is uint64 (int64/uint64 mixes become float64 in numba).
U0 = np.uint64(0)
U1 = np.uint64(1)
U7 = np.uint64(7)
U8 = np.uint64(8)
U9 = np.uint64(9)
INNER = np.uint64(0x7E7E7E7E7E7E7E7E)  # columns b..g: no wrap across the a/h files
M1 = np.uint64(0x5555555555555555)
M2 = np.uint64(0x3333333333333333)
M4 = np.uint64(0x0F0F0F0F0F0F0F0F)
H01 = np.uint64(0x0101010101010101)
U56 = np.uint64(56)


def _initial() -> np.ndarray:
    black = (1 << (3 * SIZE + 4)) | (1 << (4 * SIZE + 3))  # e4, d5
    white = (1 << (3 * SIZE + 3)) | (1 << (4 * SIZE + 4))  # d4, e5
    return np.array([black, white, 0, 0, 0], dtype=np.int64)


@numba.njit(inline="always")
def _popcount(x):
    x = x - ((x >> U1) & M1)
    x = (x & M2) + ((x >> np.uint64(2)) & M2)
    x = (x + (x >> np.uint64(4))) & M4
    return np.int64((x * H01) >> U56)


@numba.njit(inline="always")
def _fill(own, opp, s):
    """Empty-or-not cells that end a run of ``opp`` started next to ``own``, along ±s."""
    t = opp & (own << s)
    t |= opp & (t << s)
    t |= opp & (t << s)
    t |= opp & (t << s)
    t |= opp & (t << s)
    t |= opp & (t << s)
    u = opp & (own >> s)
    u |= opp & (u >> s)
    u |= opp & (u >> s)
    u |= opp & (u >> s)
    u |= opp & (u >> s)
    u |= opp & (u >> s)
    return (t << s) | (u >> s)


@numba.njit(inline="always")
def _moves(own, opp):
    """Bitboard of the cells where ``own`` may place a disc."""
    inner = opp & INNER
    m = _fill(own, inner, U1) | _fill(own, opp, U8) | _fill(own, inner, U7) | _fill(own, inner, U9)
    return m & ~(own | opp)


@numba.njit(inline="always")
def _flip_line(own, opp, move, s):
    t = opp & (move << s)
    t |= opp & (t << s)
    t |= opp & (t << s)
    t |= opp & (t << s)
    t |= opp & (t << s)
    t |= opp & (t << s)
    if (t << s) & own == U0:
        t = U0
    u = opp & (move >> s)
    u |= opp & (u >> s)
    u |= opp & (u >> s)
    u |= opp & (u >> s)
    u |= opp & (u >> s)
    u |= opp & (u >> s)
    if (u >> s) & own == U0:
        u = U0
    return t | u


@numba.njit(inline="always")
def _flips(own, opp, move):
    """Opponent discs turned by ``own`` placing the single-bit ``move``."""
    inner = opp & INNER
    return (
        _flip_line(own, inner, move, U1)
        | _flip_line(own, opp, move, U8)
        | _flip_line(own, inner, move, U7)
        | _flip_line(own, inner, move, U9)
    )


@numba.njit(inline="always")
def _score(black, white):
    """Player 0's return from the disc counts."""
    nb, nw = _popcount(black), _popcount(white)
    return 1 if nb > nw else (-1 if nb < nw else 0)


@numba.njit(inline="always")
def _play(row, move):
    """Place the single-bit ``move`` for the mover in ``row`` (in place); returns its reward."""
    p = row[TO_PLAY]
    own, opp = np.uint64(row[p]), np.uint64(row[1 - p])
    flips = _flips(own, opp, move)
    own |= move | flips
    opp &= ~flips
    row[p] = np.int64(own)
    row[1 - p] = np.int64(opp)
    row[TO_PLAY] = 1 - p
    if _moves(own, opp) == U0 and _moves(opp, own) == U0:
        outcome = _score(np.uint64(row[0]), np.uint64(row[1]))
        row[DONE] = 1
        row[OUTCOME] = outcome
        return np.float32(outcome if p == 0 else -outcome)
    return np.float32(0.0)


MIN_PARALLEL_BATCH = {
    "step": 256,
    "legal": 4096,
    "observe": 256,
    "board": 256,
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
        p = states[b, TO_PLAY]
        legal = _moves(np.uint64(states[b, p]), np.uint64(states[b, 1 - p]))
        if a == PASS and legal == U0:
            out[b, TO_PLAY] = 1 - p
        elif 0 <= a < NUM_CELLS and (legal >> np.uint64(a)) & U1:
            rewards[b] = _play(out[b], U1 << np.uint64(a))
        else:
            errors[b] = 1
            num_errors += 1
    return num_errors


@batch_kernel(min_parallel_batch=MIN_PARALLEL_BATCH["legal"])
def _legal(states, mask):
    for b in prange(states.shape[0]):
        if states[b, DONE]:
            for a in range(NUM_ACTIONS):
                mask[b, a] = False
            continue
        p = states[b, TO_PLAY]
        m = _moves(np.uint64(states[b, p]), np.uint64(states[b, 1 - p]))
        for a in range(NUM_CELLS):
            mask[b, a] = (m >> np.uint64(a)) & U1 != U0
        mask[b, PASS] = m == U0


@batch_kernel(min_parallel_batch=MIN_PARALLEL_BATCH["observe"])
def _observe(states, obs):
    for b in prange(states.shape[0]):
        p = states[b, TO_PLAY]
        mine, theirs = np.uint64(states[b, p]), np.uint64(states[b, 1 - p])
        for a in range(NUM_CELLS):
            r, c = a // SIZE, a % SIZE
            obs[b, 0, r, c] = (mine >> np.uint64(a)) & U1
            obs[b, 1, r, c] = (theirs >> np.uint64(a)) & U1
            obs[b, 2, r, c] = p


@batch_kernel(min_parallel_batch=MIN_PARALLEL_BATCH["board"])
def _board(states, cells):
    for b in prange(states.shape[0]):
        black, white = np.uint64(states[b, 0]), np.uint64(states[b, 1])
        for a in range(NUM_CELLS):
            r, c = a // SIZE, a % SIZE
            if (black >> np.uint64(a)) & U1:
                cells[b, r, c] = 0
            elif (white >> np.uint64(a)) & U1:
                cells[b, r, c] = 1
            else:
                cells[b, r, c] = -1


@batch_kernel(min_parallel_batch=MIN_PARALLEL_BATCH["playout"])
def _playout(states, seeds, outcome):
    for b in prange(states.shape[0]):
        if states[b, DONE]:
            outcome[b] = states[b, OUTCOME]
            continue
        p = states[b, TO_PLAY]
        own, opp = np.uint64(states[b, p]), np.uint64(states[b, 1 - p])
        rng = seeds[b]
        while True:
            m = _moves(own, opp)
            if m == U0:
                if _moves(opp, own) == U0:
                    break  # neither can move: the game is over
                own, opp = opp, own  # forced pass
                p = 1 - p
                continue
            rng, r = splitmix64(rng)
            k = np.int64(r % np.uint64(_popcount(m)))
            for _ in range(k):
                m &= m - U1
            move = m & (~m + U1)  # the k-th set bit of the legal moves
            flips = _flips(own, opp, move)
            own, opp = opp & ~flips, own | move | flips
            p = 1 - p
        # own belongs to player p.
        outcome[b] = _score(own, opp) if p == 0 else _score(opp, own)


COLUMNS = "abcdefgh"
ROWS = "12345678"


def _action_to_string(action: int) -> str:
    if action == PASS:
        return "pass"
    return f"{COLUMNS[action % SIZE]}{action // SIZE + 1}"


def _string_to_action(text: str) -> int:
    if text == "pass":
        return PASS
    if len(text) == 2 and text[0] in COLUMNS and text[1] in ROWS:
        return (int(text[1]) - 1) * SIZE + COLUMNS.index(text[0])
    raise ValueError(
        f"not an othello move: {text!r}; write a cell as column+row, e.g. 'd3' (a1..h8), or 'pass'"
    )


def _render(cells: np.ndarray, to_play: int, done: bool, outcome: int) -> str:
    symbols = {-1: ".", 0: "x", 1: "o"}
    header = "  " + " ".join(COLUMNS)
    lines = [header]
    for r in range(SIZE):
        lines.append(f"{r + 1} " + " ".join(symbols[int(v)] for v in cells[r]) + f" {r + 1}")
    lines.append(header)
    counts = f"x {int((cells == 0).sum())}, o {int((cells == 1).sum())}"
    if done:
        result = {1: "x (black) wins", -1: "o (white) wins", 0: "draw"}[outcome]
    else:
        result = f"{('x (black)', 'o (white)')[to_play]} to play"
    lines.append(f"{result}; discs: {counts}")
    return "\n".join(lines)


def make() -> NativeGame:
    """The othello model."""
    return NativeGame(
        name="othello",
        kernels=GameKernels(_step, _legal, _observe, _board, _playout),
        num_actions=NUM_ACTIONS,
        board_shape=(SIZE, SIZE),
        num_planes=3,
        initial=_initial(),
        max_episode_length=MAX_PLIES,
        symmetry=Symmetry.DIHEDRAL,
        action_grid=np.arange(NUM_CELLS).reshape(SIZE, SIZE),
        action_to_string=_action_to_string,
        string_to_action=_string_to_action,
        render_board=_render,
    )
