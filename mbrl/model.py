"""The one batched model interface shared by exact games and learned dynamics.

Everything a planner or an imagining agent needs from a world, and nothing
more. States are values: a tensor ``[B, *state_shape]`` whose rows are
independent worlds. ``step`` returns new tensors and never writes into its
inputs, so planners may keep parents around (a tree stores states as
``[B, N, *state_shape]``).

Conventions (letters as everywhere in the project: B batch, A actions):

- ``reward`` is for the player who acted. In a two-player zero-sum game the
  search flips the sign whenever ``to_play`` changes.
- A terminal state is absorbing: stepping it is a no-op that returns the same
  state, reward 0 and ``terminal=True``; its legal mask is all False.
- Values and priors are not the model's job: an :class:`Evaluator` gives them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

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


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """Static description of a model: shapes, action space, players."""

    name: str
    """Registry name, e.g. ``"connect_four"`` or ``"openspiel:hex"``."""
    obs_shape: tuple[int, ...]
    """Shape of one observation (``observe`` returns ``[B, *obs_shape]`` float32)."""
    state_shape: tuple[int, ...]
    """Shape of one state row (``[B, *state_shape]``)."""
    state_dtype: torch.dtype
    """dtype of the state tensor (int64 for exact games, float32 for learned models)."""
    num_actions: int | None
    """Number of discrete actions A, or None for a continuous action space."""
    action_shape: tuple[int, ...] = ()
    """Shape of one action: ``()`` for discrete actions, ``(D,)`` for continuous."""
    num_players: int = 1
    """1 for single-agent worlds, 2 for two-player zero-sum games."""
    max_episode_length: int | None = None
    """Upper bound on the number of steps of one episode, if known."""
    board_shape: tuple[int, int] | None = None
    """(rows, cols) of the board for board games, else None."""
    action_low: tuple[float, ...] | None = None
    """Lower bound of each action dimension of a continuous action space (``action_shape``
    entries), else None; planners sample and clip actions inside ``[action_low, action_high]``."""
    action_high: tuple[float, ...] | None = None
    """Upper bound of each action dimension of a continuous action space, else None."""

    def __post_init__(self):
        if (self.action_low is None) != (self.action_high is None):
            raise ValueError("ModelSpec.action_low and action_high must be given together")
        if self.action_low is not None:
            size = int(np.prod(self.action_shape))
            if self.num_actions is not None or not (
                len(self.action_low) == len(self.action_high) == size
            ):
                raise ValueError(
                    "ModelSpec.action_low and action_high must have one entry per dimension "
                    f"of a continuous action_shape {self.action_shape}, got "
                    f"{len(self.action_low)} and {len(self.action_high)}"
                )
            if any(low > high for low, high in zip(self.action_low, self.action_high)):
                raise ValueError(
                    f"ModelSpec.action_low must be <= action_high, got {self.action_low} "
                    f"and {self.action_high}"
                )

    @property
    def is_discrete(self) -> bool:
        return self.num_actions is not None


@dataclass(frozen=True)
class Step:
    """Result of :meth:`Model.step`; every field has leading batch dimension B."""

    state: Tensor
    """[B, *state_shape] the next state."""
    reward: Tensor
    """[B] float32, for the player who acted."""
    terminal: Tensor
    """[B] bool, True where the next state is terminal."""


@runtime_checkable
class Model(Protocol):
    """A batched, functional world model."""

    spec: ModelSpec

    def step(self, state: Tensor, action: Tensor, generator: torch.Generator | None = None) -> Step:
        """Advance every row: state ``[B, *S]``, action ``[B]`` (discrete) or ``[B, D]``."""
        ...

    def observe(self, state: Tensor) -> Tensor:
        """``[B, *obs_shape]`` float32, as the player to move sees it."""
        ...

    def legal_actions(self, state: Tensor) -> Tensor:
        """``[B, A]`` bool, True = legal (all True for learned models, all False if terminal)."""
        ...

    def to_play(self, state: Tensor) -> Tensor:
        """``[B]`` int64 index of the player to move (zeros for one-player worlds)."""
        ...


@runtime_checkable
class GameModel(Model, Protocol):
    """An exact game: a :class:`Model` that can also start games and score them."""

    def initial_state(self, batch_size: int) -> Tensor:
        """``[B, *state_shape]`` the start position, repeated B times."""
        ...

    def is_terminal(self, state: Tensor) -> Tensor:
        """``[B]`` bool."""
        ...

    def returns(self, state: Tensor) -> Tensor:
        """``[B, num_players]`` float32 final outcome (zeros while the game is on)."""
        ...

    def render(self, state: Tensor) -> str:
        """A text picture of one state (``[*state_shape]`` or ``[1, *state_shape]``)."""
        ...

    def action_to_string(self, action: int) -> str: ...

    def string_to_action(self, text: str) -> int:
        """Parse a move as a person types it; raises ValueError with the legal forms."""
        ...


@runtime_checkable
class SymmetricGame(Protocol):
    """A game whose boards have symmetries (augmentation of training positions)."""

    num_symmetries: int
    """How many (the identity included): 2 for a mirror, 8 for the square's dihedral group."""

    def symmetries(self, obs: Tensor, policy: Tensor) -> tuple[Tensor, Tensor]:
        """Every symmetry of observations ``[B, *obs]`` and policies ``[B, A]``:
        ``([K, B, *obs], [K, B, A])`` with the identity first."""
        ...


@runtime_checkable
class PlayoutGame(Protocol):
    """A game with a fused random-playout kernel (the random-rollout evaluator needs one)."""

    def random_playouts(self, state: Tensor, rng: np.random.Generator) -> Tensor:
        """``[B]`` float32 outcome for player 0 of one uniformly random playout per state."""
        ...


@dataclass(frozen=True)
class Evaluation:
    """What an evaluator says about B states."""

    logits: Tensor
    """[B, A] float32 prior logits over actions (illegal ones are masked by the planner)."""
    value: Tensor
    """[B] float32 value in [-1, 1] for games (any scale otherwise), for the player to move."""


@runtime_checkable
class Evaluator(Protocol):
    """Gives planners values and priors: a network, random rollouts, a solver."""

    def evaluate(self, state: Tensor) -> Evaluation: ...


class ShapeError(ValueError):
    """A tensor given to a model has the wrong shape or dtype."""


class IllegalActionError(ValueError):
    """An action that is not legal in its row's state was played."""

    def __init__(self, message: str, *, row: int, action: int, legal: list[int]):
        super().__init__(message)
        self.row = row
        self.action = action
        self.legal = legal


class UnknownNameError(KeyError):
    """A name (game, player, model) that is not registered."""

    def __init__(self, message: str, *, name: str, known: list[str] | None = None):
        super().__init__(message)
        self.name = name
        self.known = list(known or [])

    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return str(self.args[0])
