"""An exact full-width search of the first few plies: which root moves are decided.

Before its simulations, the MCTS can prove the root moves whose outcome is settled
within ``plies`` plies whatever the network thinks: every legal move of every
position down to that depth is stepped once through the model (one batched
``model.step`` a ply, no evaluator), and the values are backed up by exact
minimax over the moves that end the game. A move is *proven* when its value is
known exactly: a forced win within the depth (some reply-proof line ends in a win
for the mover), a forced loss (every line the mover can take there loses), or a
draw that every continuation reaches. Every root move is searched; below the root the
search stops widening under a position as soon as one of its moves wins at once,
so tactical positions cost far less than the ``A + A^2 + ... + A^plies`` steps of
the full width.

This is what a network-guided search cannot guarantee: a win in three plies
behind a move the prior dislikes (connect four's double threats) is found here
and played; a move that lets the opponent win within the depth is proven lost
and not played. Use it with exact models (games): a learned model's terminal
predictions are guesses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from mbrl.model import Model

__all__ = ["RootProof", "auto_proof_plies", "prove_root_moves"]


def auto_proof_plies(num_actions: int, budget: int = 4096) -> int:
    """The deepest full width whose ``A + A^2 + ... + A^d`` steps per root fit ``budget``
    (connect four, A = 7: 4 plies, 2,800 steps; tic-tac-toe, A = 9: 3; A = 65: 1)."""
    plies, total = 0, 0
    while total + num_actions ** (plies + 1) <= budget:
        plies += 1
        total += num_actions**plies
    return plies


@dataclass(frozen=True)
class RootProof:
    """What the full-width search proved about each root move, ``[B, A]`` each."""

    proven: np.ndarray
    """bool: the move's value is exact (legal moves only)."""
    value: np.ndarray
    """float32: the move's exact value for the player to move at the root (0 if unproven)."""
    reward: np.ndarray
    """float32: the mover's reward on the move's edge."""
    ends: np.ndarray
    """bool: the move ends the game."""
    child_to_play: np.ndarray
    """int64: the player to move after the move."""
    child_value: np.ndarray
    """float32: the exact value of the position after the move for its player to move."""


def prove_root_moves(
    model: Model, root_state: Tensor, plies: int, win_value: float | None = 1.0
) -> RootProof:
    """Prove what ``plies`` plies of exact full-width search decide about the root moves.

    Args:
        model: a discrete-action model whose ``terminal`` and ``reward`` are exact.
        root_state: ``[B, *state_shape]`` non-terminal states.
        plies: depth of the search (1: the moves that end the game; 0 proves nothing).
        win_value: an edge worth at least this much wins (1 for win/draw/loss games);
            None: a position is proven only when every move is.
    """
    if plies < 0:
        raise ValueError(f"plies must be >= 0, got {plies}")
    win = math.inf if win_value is None else win_value
    B, A = root_state.shape[0], model.spec.num_actions
    # Level l: its positions' states, parent position and move (level l - 1), to_play.
    states, to_play = root_state, model.to_play(root_state).numpy()
    levels = []
    for depth in range(plies):
        legal = model.legal_actions(states).numpy()
        rows, actions = np.nonzero(legal)
        step = model.step(states[torch.from_numpy(rows)], torch.from_numpy(actions))
        reward = np.zeros((len(legal), A), np.float32)
        ends = np.zeros((len(legal), A), np.bool_)
        reward[rows, actions] = step.reward.numpy()
        ends[rows, actions] = step.terminal.numpy()
        child_to_play = np.zeros((len(legal), A), np.int64)
        child_to_play[rows, actions] = model.to_play(step.state).numpy()
        # Widen below every root move, deeper only below positions that do not win at
        # once (their value is known), and never past the depth.
        wins_now = (ends & (reward >= win)).any(axis=1) & (depth > 0)
        grow = ~ends[rows, actions] & ~wins_now[rows] & (depth + 1 < plies)
        child = np.full((len(legal), A), -1, np.int64)
        child[rows[grow], actions[grow]] = np.arange(int(grow.sum()))
        levels.append((legal, reward, ends, to_play, child_to_play, child))
        states = step.state[torch.from_numpy(np.flatnonzero(grow))]
        to_play = child_to_play[rows[grow], actions[grow]]
    # Back up from the deepest level: value[k], known[k] of each position of a level.
    value = known = None
    edge_value = edge_known = None
    for legal, reward, ends, to_play, child_to_play, child in reversed(levels):
        edge_known = ends.copy()
        edge_value = np.where(ends, reward, 0.0).astype(np.float32)
        if value is not None:
            has = child >= 0
            c = child[has]
            same = child_to_play == to_play[:, None]
            sign = np.where(same[has], 1.0, -1.0)
            edge_known[has] = known[c]
            edge_value[has] = np.where(known[c], reward[has] + sign * value[c], 0.0)
        proven_win = (legal & edge_known & (edge_value >= win)).any(axis=1)
        all_known = (edge_known | ~legal).all(axis=1)
        best = np.where(legal & edge_known, edge_value, -np.inf).max(axis=1)
        known = proven_win | all_known
        value = np.where(known, best, 0.0).astype(np.float32)
    if not levels:
        zeros = np.zeros((B, A), np.float32)
        return RootProof(zeros != 0, zeros, zeros, zeros != 0, zeros.astype(np.int64), zeros)
    legal, reward, ends, to_play, child_to_play, child = levels[0]
    proven = legal & edge_known
    sign = np.where(child_to_play == to_play[:, None], 1.0, -1.0).astype(np.float32)
    child_value = np.where(proven & ~ends, (edge_value - reward) * sign, 0.0)
    return RootProof(
        proven=proven,
        value=np.where(proven, edge_value, 0.0).astype(np.float32),
        reward=reward,
        ends=ends,
        child_to_play=child_to_play,
        child_value=child_value.astype(np.float32),
    )
