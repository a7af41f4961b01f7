"""Learned models: ensembles, trainers, learned-model adapters, frame models.

- :mod:`~mbrl.models.ensemble`: probabilistic and deterministic MLP ensembles, one batched
  product over the members;
- :mod:`~mbrl.models.trainer`: bootstrap, held-out early stopping, elites, warm starts;
- :mod:`~mbrl.models.learned`: an ensemble as a :class:`~mbrl.model.Model`, with the
  propagation modes;
- :mod:`~mbrl.models.vector_env`: a gymnasium ``VectorEnv`` view of any one-player model,
  reset from given real starts, for model-free agents to train in;
- :mod:`~mbrl.models.known`: known reward and termination functions of the suites' envs
  (exact or approximate, each measured against the env), for a learned model to use.
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
from .known import KnownFunctions, covered_envs, known_functions, shaped_envs
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
    "KnownFunctions",
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
    "covered_envs",
    "known_functions",
    "observation_starts",
    "shaped_envs",
]
