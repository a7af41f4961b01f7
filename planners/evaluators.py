"""Evaluators: where planners get values and priors (the seam between search and value source).

Every evaluator maps states ``[B, *S]`` to ``Evaluation(logits [B, A], value [B])``
with the value for the player to move.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from mbrl.model import Evaluation, GameModel, Model, PlayoutGame

__all__ = ["RandomRolloutEvaluator", "UniformEvaluator"]


class UniformEvaluator:
    """Uniform prior, value 0: plain search guided by rewards alone."""

    def __init__(self, model: Model):
        self.num_actions = model.spec.num_actions

    def evaluate(self, state: Tensor) -> Evaluation:
        B = state.shape[0]
        return Evaluation(torch.zeros(B, self.num_actions), torch.zeros(B))


class RandomRolloutEvaluator:
    """Uniform prior; value = mean outcome of uniformly random playouts (classic MCTS).

    Args:
        game: an exact game with ``random_playouts`` (native or OpenSpiel adapter).
        num_rollouts: playouts averaged per state.
        rng: the playouts' randomness.
    """

    def __init__(
        self, game: GameModel, num_rollouts: int = 1, rng: np.random.Generator | None = None
    ):
        if num_rollouts < 1:
            raise ValueError(f"num_rollouts must be >= 1, got {num_rollouts}")
        if not isinstance(game, PlayoutGame):
            raise TypeError(f"{game.spec.name} has no random_playouts kernel (PlayoutGame)")
        self.game = game
        self.num_rollouts = num_rollouts
        self.rng = rng if rng is not None else np.random.default_rng()

    def evaluate(self, state: Tensor) -> Evaluation:
        B = state.shape[0]
        repeated = state
        if self.num_rollouts > 1:
            repeated = state.repeat(self.num_rollouts, *([1] * (state.ndim - 1)))
        # numpy for the few small element-wise steps: a dozen torch calls cost more than
        # the playouts themselves at B=1
        outcome = self.game.random_playouts(repeated, self.rng).numpy()
        outcome = outcome.reshape(self.num_rollouts, B).mean(0, dtype=np.float32)
        sign = 1.0 - 2.0 * self.game.to_play(state).numpy().astype(np.float32)
        value = np.where(self.game.is_terminal(state).numpy(), np.float32(0.0), outcome * sign)
        logits = torch.zeros(B, self.game.spec.num_actions)
        return Evaluation(logits, torch.from_numpy(value.astype(np.float32, copy=False)))
