"""mbrl: model-based reinforcement learning through one batched model interface.

Subpackages by role: :mod:`mbrl.games` (exact game models), :mod:`mbrl.planners`
(MCTS and evaluators), :mod:`mbrl.models` (learned dynamics),
:mod:`mbrl.algorithms` (one file per algorithm), :mod:`mbrl.training` (runs,
rollouts, replay, self-play), :mod:`mbrl.evaluation` (arena, bench, report).
"""

from mbrl import _compat
from mbrl.agent import Agent
from mbrl.model import (
    Evaluation,
    Evaluator,
    GameModel,
    IllegalActionError,
    Model,
    ModelSpec,
    PlayoutGame,
    ShapeError,
    Step,
    SymmetricGame,
    UnknownNameError,
)

_compat.install()  # old module names (mbrl.sac, mbrl.replay, ...) still import

__version__ = "0.1.0"

__all__ = [
    "Agent",
    "Evaluation",
    "Evaluator",
    "GameModel",
    "IllegalActionError",
    "Model",
    "ModelSpec",
    "PlayoutGame",
    "ShapeError",
    "Step",
    "SymmetricGame",
    "UnknownNameError",
]
