"""mbrl: model-based reinforcement learning through one batched model interface.

Subpackages: :mod:`mbrl.games` (exact game models), :mod:`mbrl.planners`
(MCTS, CEM, shooting), :mod:`mbrl.models` (learned dynamics).
"""

from mbrl.model import (
    Evaluation,
    Evaluator,
    GameModel,
    IllegalActionError,
    Model,
    ModelSpec,
    ShapeError,
    Step,
    UnknownNameError,
)

__version__ = "0.1.0"

__all__ = [
    "Evaluation",
    "Evaluator",
    "GameModel",
    "IllegalActionError",
    "Model",
    "ModelSpec",
    "ShapeError",
    "Step",
    "UnknownNameError",
]
