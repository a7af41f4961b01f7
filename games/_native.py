"""Shared machinery of the native batched games.

A native game is a handful of numba kernels over an int64 state array
``[B, W]`` plus a little metadata; :class:`NativeGame` turns them into a
:class:`mbrl.model.GameModel` over torch tensors (zero copy on the CPU: the
kernels run on ``tensor.numpy()`` views).

State layout: game-specific words first, then three shared words

====================  =======================================================
``W - 3`` (TO_PLAY)   index of the player to move (0 moves first)
``W - 2`` (DONE)      1 once the game is over
``W - 1`` (OUTCOME)   final return of player 0: -1, 0 or +1 (0 while playing)
====================  =======================================================

Kernel signatures (all loop over rows, no Python per row; each is a
:class:`mbrl.planners.threads.BatchKernel`, serial below a batch size and
``prange`` above it):

- ``step(states[B,W], actions[B], out[B,W], rewards[B] f32, errors[B] i8)``:
  ``errors[b] = 1`` marks an illegal action, the return value counts them;
  terminal rows are copied as is.
- ``legal(states[B,W], mask[B,A] bool)``
- ``observe(states[B,W], obs[B,C,H,W] f32)``: planes as the player to move sees them.
- ``board(states[B,W], cells[B,H,W] i8)``: -1 empty, else the owner's index.
- ``playout(states[B,W], seeds[B] u64, outcome[B] f32)``: uniformly random
  play to the end; the outcome is player 0's return.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

import numba
import numpy as np
import torch
from torch import Tensor

from mbrl.model import IllegalActionError, ModelSpec, ShapeError, Step

__all__ = ["GameKernels", "NativeGame", "Symmetry", "splitmix64"]

_INTEGER_DTYPES = frozenset(
    {
        torch.int8,
        torch.int16,
        torch.int32,
        torch.int64,
        torch.uint8,
        torch.uint16,
        torch.uint32,
        torch.uint64,
    }
)


@numba.njit(inline="always")
def splitmix64(x):
    """One step of SplitMix64 on a uint64 scalar: returns (new_state, random_uint64)."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    z = x
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return x, z


class Symmetry(Enum):
    """Which board symmetries a game has (used for data augmentation)."""

    NONE = "none"
    MIRROR = "mirror"
    """Left-right mirror (connect four)."""
    DIHEDRAL = "dihedral"
    """The 8 rotations and reflections of the square (tic-tac-toe, othello)."""


@dataclass(frozen=True)
class GameKernels:
    step: Callable
    legal: Callable
    observe: Callable
    board: Callable
    playout: Callable


def _grid_transforms(symmetry: Symmetry) -> list[Callable[[np.ndarray], np.ndarray]]:
    """Functions on arrays ``[..., H, W]`` for each element of the symmetry group."""
    ident = [lambda x: x]
    if symmetry is Symmetry.NONE:
        return ident
    if symmetry is Symmetry.MIRROR:
        return [*ident, lambda x: x[..., ::-1]]
    out = []
    for k in range(4):
        out.append(lambda x, k=k: np.rot90(x, k, axes=(-2, -1)))
        out.append(lambda x, k=k: np.rot90(x[..., ::-1], k, axes=(-2, -1)))
    return out


class NativeGame:
    """A :class:`~mbrl.model.GameModel` backed by numba kernels.

    Args:
        name: registry name.
        kernels: the compiled kernels (see module docstring).
        num_actions: A.
        board_shape: (H, W) of the board.
        num_planes: C of the observation ``[C, H, W]``.
        initial: one initial state row, int64 ``[W]``.
        max_episode_length: longest possible game in plies.
        symmetry: the board's symmetry group.
        action_grid: ``[h, w]`` int array of the actions laid out on the board
            the way the symmetry moves them (cells for tic-tac-toe and othello,
            a single row of columns for connect four); actions not in it
            (othello's pass) map to themselves.
        action_to_string / string_to_action: how people write moves.
        render_board: ``(cells[H, W] int8, to_play, done, outcome) -> str``.
    """

    def __init__(
        self,
        *,
        name: str,
        kernels: GameKernels,
        num_actions: int,
        board_shape: tuple[int, int],
        num_planes: int,
        initial: np.ndarray,
        max_episode_length: int,
        symmetry: Symmetry,
        action_grid: np.ndarray,
        action_to_string: Callable[[int], str],
        string_to_action: Callable[[str], int],
        render_board: Callable[[np.ndarray, int, bool, int], str],
    ):
        self.kernels = kernels
        self._initial = np.ascontiguousarray(initial, dtype=np.int64)
        self.num_words = int(self._initial.shape[0])
        self.spec = ModelSpec(
            name=name,
            obs_shape=(num_planes, *board_shape),
            state_shape=(self.num_words,),
            state_dtype=torch.int64,
            num_actions=num_actions,
            num_players=2,
            max_episode_length=max_episode_length,
            board_shape=board_shape,
        )
        self.symmetry = symmetry
        self._action_to_string = action_to_string
        self._string_to_action = string_to_action
        self._render_board = render_board
        # Action permutations per symmetry: new_policy = policy[perm[s]].
        perms = []
        for transform in _grid_transforms(symmetry):
            perm = np.arange(num_actions)
            moved = np.ascontiguousarray(transform(action_grid)).reshape(-1)
            perm[action_grid.reshape(-1)] = moved
            perms.append(perm)
        self._perms = torch.as_tensor(np.stack(perms), dtype=torch.int64)
        self._transforms = _grid_transforms(symmetry)

    # ----------------------------------------------------------------- checks
    @property
    def name(self) -> str:
        return self.spec.name

    def __repr__(self) -> str:
        return f"NativeGame({self.spec.name!r})"

    def _states(self, state: Tensor) -> np.ndarray:
        """The ``[B, W]`` int64 numpy view of ``state`` (a copy only off the CPU or strided)."""
        if not isinstance(state, Tensor):
            raise ShapeError(
                f"{self.name}: state must be a torch.Tensor, got {type(state).__name__}"
            )
        if state.dtype != torch.int64 or state.dim() != 2 or state.shape[1] != self.num_words:
            raise ShapeError(
                f"{self.name}: state must be int64 [B, {self.num_words}], "
                f"got {str(state.dtype).removeprefix('torch.')} {list(state.shape)}"
            )
        return np.ascontiguousarray(state.numpy() if state.is_cpu else state.cpu().numpy())

    def _actions(self, action: Tensor, batch_size: int) -> np.ndarray:
        if not isinstance(action, Tensor):
            action = torch.as_tensor(action)
        if action.dtype not in _INTEGER_DTYPES:
            raise ShapeError(f"{self.name}: actions must be integers, got {action.dtype}")
        if action.dim() != 1 or action.shape[0] != batch_size:
            raise ShapeError(
                f"{self.name}: actions must have shape [B] = [{batch_size}], "
                f"got {list(action.shape)}"
            )
        actions = action.numpy() if action.is_cpu else action.cpu().numpy()
        return np.ascontiguousarray(actions, np.int64)

    # -------------------------------------------------------------- the model
    def initial_state(self, batch_size: int) -> Tensor:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"{self.name}: batch_size must be a positive int, got {batch_size!r}")
        return torch.from_numpy(np.tile(self._initial, (batch_size, 1)))

    def step(self, state: Tensor, action: Tensor, generator: torch.Generator | None = None) -> Step:
        states = self._states(state)
        actions = self._actions(action, states.shape[0])
        out = np.empty_like(states)
        rewards = np.empty(states.shape[0], dtype=np.float32)
        errors = np.zeros(states.shape[0], dtype=np.int8)
        if self.kernels.step(states, actions, out, rewards, errors):
            row = int(np.flatnonzero(errors)[0])
            legal = [int(a) for a in np.flatnonzero(self._legal_np(states[row : row + 1])[0])]
            a = int(actions[row])
            shown = self._action_to_string(a) if 0 <= a < self.spec.num_actions else "out of range"
            raise IllegalActionError(
                f"{self.name}: illegal action {a} ({shown}) in row {row}; legal actions there: "
                f"{legal} ({', '.join(self._action_to_string(x) for x in legal)})",
                row=row,
                action=a,
                legal=legal,
            )
        done = out[:, -2].astype(bool)
        return Step(torch.from_numpy(out), torch.from_numpy(rewards), torch.from_numpy(done))

    def _legal_np(self, states: np.ndarray) -> np.ndarray:
        mask = np.empty((states.shape[0], self.spec.num_actions), dtype=np.bool_)
        self.kernels.legal(states, mask)
        return mask

    def legal_actions(self, state: Tensor) -> Tensor:
        return torch.from_numpy(self._legal_np(self._states(state)))

    def observe(self, state: Tensor) -> Tensor:
        states = self._states(state)
        obs = np.empty((states.shape[0], *self.spec.obs_shape), dtype=np.float32)
        self.kernels.observe(states, obs)
        return torch.from_numpy(obs)

    def to_play(self, state: Tensor) -> Tensor:
        return torch.from_numpy(self._states(state)[:, -3].copy())

    def is_terminal(self, state: Tensor) -> Tensor:
        return torch.from_numpy(self._states(state)[:, -2].astype(bool))

    def returns(self, state: Tensor) -> Tensor:
        outcome = self._states(state)[:, -1].astype(np.float32)
        return torch.from_numpy(np.stack([outcome, -outcome], axis=1))

    def board(self, state: Tensor) -> Tensor:
        """``[B, H, W]`` int8 cell owners (-1 empty), row 0 at the top."""
        states = self._states(state)
        cells = np.empty((states.shape[0], *self.spec.board_shape), dtype=np.int8)
        self.kernels.board(states, cells)
        return torch.from_numpy(cells)

    def random_playouts(self, state: Tensor, rng: np.random.Generator) -> Tensor:
        """Play every row to the end uniformly at random; ``[B]`` float32 return of player 0."""
        states = self._states(state)
        # The same numbers as rng.integers(0, 2**63, size=B), at a tenth of the call's cost.
        seeds = rng.bit_generator.random_raw(states.shape[0]) >> np.uint64(1)
        outcome = np.empty(states.shape[0], dtype=np.float32)
        self.kernels.playout(states, seeds, outcome)
        return torch.from_numpy(outcome)

    # ------------------------------------------------------------ for people
    def render(self, state: Tensor) -> str:
        row = state.reshape(1, -1) if state.ndim == 1 else state
        if row.shape[0] != 1:
            raise ShapeError(f"{self.name}: render takes one state, got a batch of {row.shape[0]}")
        words = self._states(row)[0]
        cells = self.board(row)[0].numpy()
        return self._render_board(cells, int(words[-3]), bool(words[-2]), int(words[-1]))

    def action_to_string(self, action: int) -> str:
        if not 0 <= int(action) < self.spec.num_actions:
            raise ValueError(
                f"{self.name}: action {action} out of range [0, {self.spec.num_actions})"
            )
        return self._action_to_string(int(action))

    def string_to_action(self, text: str) -> int:
        return self._string_to_action(text.strip().lower())

    # ----------------------------------------------------------- augmentation
    @property
    def num_symmetries(self) -> int:
        return len(self._transforms)

    def symmetries(self, obs: Tensor, policy: Tensor) -> tuple[Tensor, Tensor]:
        """All symmetric copies of a batch of training examples.

        Args:
            obs: ``[B, C, H, W]`` observations.
            policy: ``[B, A]`` action distributions (or any per-action values).

        Returns:
            ``([S, B, C, H, W], [S, B, A])`` with S = ``num_symmetries``; index 0 is the identity.
        """
        if obs.ndim != 4 or tuple(obs.shape[1:]) != self.spec.obs_shape:
            raise ShapeError(
                f"{self.name}: obs must be [B, *{self.spec.obs_shape}], got {list(obs.shape)}"
            )
        if policy.shape != (obs.shape[0], self.spec.num_actions):
            raise ShapeError(
                f"{self.name}: policy must be [B, {self.spec.num_actions}], "
                f"got {list(policy.shape)}"
            )
        obs_out = []
        for s in range(self.num_symmetries):
            k, flip = divmod(s, 2) if self.symmetry is Symmetry.DIHEDRAL else (0, s)
            x = obs.flip(-1) if flip else obs
            obs_out.append(torch.rot90(x, k, dims=(-2, -1)) if k else x)
        policy_out = policy[:, self._perms].permute(1, 0, 2)
        return torch.stack(obs_out), policy_out
