"""Learned models: ensembles, trainers, learned-model adapters, frame models.

- :mod:`~mbrl.models.ensemble`: probabilistic and deterministic MLP ensembles, one batched
  product over the members;
- :mod:`~mbrl.models.trainer`: bootstrap, held-out early stopping, elites, warm starts;
- :mod:`~mbrl.models.learned`: an ensemble as a :class:`~mbrl.model.Model`, with the
  propagation modes;
- :mod:`~mbrl.models.vector_env`: a gymnasium ``VectorEnv`` view of any one-player model,
  reset from given real starts, for model-free agents to train in.
"""

from .ensemble import (
    Activation,
    Ensemble,
    EnsembleConfig,
    EnsembleKind,
    EnsembleOutput,
    ModelDivergedError,
    Normalizer,
)
from .learned import LearnedModel, Propagation, RewardFn, TerminationFn
from .trainer import EnsembleTrainer, FitReport, TrainerConfig, Transitions
from .vector_env import ModelVectorEnv, StartFn, VectorEnvConfig, observation_starts

__all__ = [
    "Activation",
    "Ensemble",
    "EnsembleConfig",
    "EnsembleKind",
    "EnsembleOutput",
    "EnsembleTrainer",
    "FitReport",
    "LearnedModel",
    "ModelDivergedError",
    "ModelVectorEnv",
    "Normalizer",
    "Propagation",
    "RewardFn",
    "StartFn",
    "TerminationFn",
    "TrainerConfig",
    "Transitions",
    "VectorEnvConfig",
    "observation_starts",
]
