"""Any sequential, deterministic, perfect-information OpenSpiel game as a :class:`GameModel`.

>>> from mbrl.games import make
>>> game = make("openspiel:hex(board_size=5)")
>>> state = game.initial_state(batch_size=4)          # [B, L + 1] int64

States are values, as for the native games. A state row is the game's action
history: with ``L = game.max_game_length()``,

==============  ===========================================================
word ``0``      n, the number of moves played so far
words ``1..n``  the actions played, in order
words ``n+1..`` -1 (padding)
==============  ===========================================================

A deterministic game is a function of its history, so a row says everything
about its position, can be copied, stored in a search tree and compared. To
avoid replaying histories on every call, the adapter keeps an LRU cache from
histories to ``pyspiel.State`` objects; on a miss it replays from the longest
cached prefix (or the initial state). Cached states are never mutated: a step
clones its parent before ``apply_action``.

Semantics follow :mod:`mbrl.model`: ``reward`` is for the player who acted
(``returns()`` of the mover on the terminal transition for terminal-reward
games, ``rewards()`` of the mover after every move for games with intermediate
rewards); terminal rows are absorbing (same state, reward 0, terminal True,
no legal action); ``to_play`` is 0 in terminal states; the observation is
``observation_tensor(player to move)``, player 0's in terminal states.
"""

from __future__ import annotations

import difflib
from collections import OrderedDict

import numpy as np
import pyspiel
import torch
from torch import Tensor

from mbrl.model import IllegalActionError, ModelSpec, ShapeError, Step, UnknownNameError

__all__ = ["DEFAULT_CACHE_SIZE", "OpenSpielGame", "make_openspiel"]

DEFAULT_CACHE_SIZE = 200_000
"""Default number of ``pyspiel.State`` objects kept by one adapter (LRU)."""

_GameType = pyspiel.GameType


def _check_supported(game: pyspiel.Game, name: str) -> None:
    """Raise ValueError naming the failing property if the adapter cannot model ``game``."""
    t = game.get_type()
    problems = []
    if t.dynamics != _GameType.Dynamics.SEQUENTIAL:
        problems.append(f"dynamics is {t.dynamics.name} (need SEQUENTIAL: one mover at a time)")
    if t.chance_mode != _GameType.ChanceMode.DETERMINISTIC:
        problems.append(f"chance_mode is {t.chance_mode.name} (need DETERMINISTIC: no chance)")
    if t.information != _GameType.Information.PERFECT_INFORMATION:
        problems.append(f"information is {t.information.name} (need PERFECT_INFORMATION)")
    n = game.num_players()
    if n not in (1, 2):
        problems.append(f"num_players is {n} (need 1, or 2 for zero-sum games)")
    elif n == 2 and t.utility != _GameType.Utility.ZERO_SUM:
        problems.append(f"utility is {t.utility.name} (two-player games must be ZERO_SUM)")
    if not t.provides_observation_tensor:
        problems.append("provides_observation_tensor is False (need an observation tensor)")
    if problems:
        raise ValueError(
            f"OpenSpiel game {name!r} cannot be used as a GameModel: " + "; ".join(problems)
        )


def _load(name: str) -> pyspiel.Game:
    """``pyspiel.load_game(name)`` with our error classes (and no OpenSpiel stderr on typos)."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"OpenSpiel game name must be a non-empty str, got {name!r}")
    name = name.strip()
    base = name.split("(", 1)[0].strip()
    known = sorted(pyspiel.registered_names())
    if base not in known:
        close = difflib.get_close_matches(base, known, n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UnknownNameError(
            f"unknown OpenSpiel game {base!r}{hint} ({len(known)} games are registered, "
            f"see pyspiel.registered_names())",
            name=name,
            known=close or known,
        )
    try:
        return pyspiel.load_game(name)
    except pyspiel.SpielError as e:  # bad parameters: "Unknown parameter 'board_sz'. ..."
        raise ValueError(f"cannot load OpenSpiel game {name!r}: {e}") from None


class OpenSpielGame:
    """A :class:`~mbrl.model.GameModel` over an OpenSpiel game (see module docstring).

    Args:
        game: an OpenSpiel game name, parameters allowed (``"hex(board_size=5)"``),
            or a loaded ``pyspiel.Game``.
        cache_size: how many ``pyspiel.State`` objects to keep (least recently used
            ones are dropped; a dropped state is rebuilt by replaying its history).
        name: registry name for the spec (default ``"openspiel:" + game name``).

    Raises:
        UnknownNameError: no OpenSpiel game has that name.
        ValueError: the game is not sequential, deterministic, perfect-information,
            one-player or two-player zero-sum, or has no observation tensor.
    """

    def __init__(
        self,
        game: str | pyspiel.Game,
        *,
        cache_size: int = DEFAULT_CACHE_SIZE,
        name: str | None = None,
    ):
        if isinstance(game, str):
            game_name = game.strip()
            game = _load(game_name)
        else:
            game_name = str(game)
        _check_supported(game, game_name)
        if not isinstance(cache_size, int) or cache_size < 1:
            raise ValueError(f"cache_size must be a positive int, got {cache_size!r}")
        self.game = game
        self.game_name = game_name
        self.cache_size = cache_size
        t = game.get_type()
        self._terminal_rewards = t.reward_model == _GameType.RewardModel.TERMINAL
        self.max_length = int(game.max_game_length())
        self.num_words = self.max_length + 1
        self.spec = ModelSpec(
            name=name or f"openspiel:{game_name}",
            obs_shape=tuple(int(d) for d in game.observation_tensor_shape()),
            state_shape=(self.num_words,),
            state_dtype=torch.int64,
            num_actions=int(game.num_distinct_actions()),
            num_players=int(game.num_players()),
            max_episode_length=self.max_length,
            board_shape=None,
        )
        self._root = game.new_initial_state()
        self._initial_row = np.full(self.num_words, -1, dtype=np.int64)
        self._initial_row[0] = 0
        self._cache: OrderedDict[bytes, pyspiel.State] = OrderedDict()
        self.cache_hits = 0
        self.cache_misses = 0
        self.replayed_plies = 0
        """Statistics: lookups found in / missing from the cache, moves replayed on misses."""

    @property
    def name(self) -> str:
        return self.spec.name

    def __repr__(self) -> str:
        return f"OpenSpielGame({self.game_name!r})"

    # ------------------------------------------------------------- checking
    def _rows(self, state: Tensor) -> np.ndarray:
        """``state`` as a read-only numpy view ``[B, L + 1]`` (shape, dtype and n checked)."""
        if not isinstance(state, Tensor):
            got = type(state).__name__
            raise ShapeError(f"{self.name}: state must be a torch.Tensor, got {got}")
        if state.dtype != torch.int64 or state.ndim != 2 or state.shape[1] != self.num_words:
            raise ShapeError(
                f"{self.name}: state must be int64 [B, {self.num_words}] (move count + history of "
                f"up to {self.max_length} actions), got {str(state.dtype).removeprefix('torch.')} "
                f"{list(state.shape)}"
            )
        rows = state.detach().cpu().numpy()
        counts = rows[:, 0]
        bad = (counts < 0) | (counts > self.max_length)
        if bad.any():
            b = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{self.name}: row {b} is not a state: move count {int(counts[b])} "
                f"outside [0, {self.max_length}]"
            )
        return rows

    def _actions(self, action: Tensor, batch_size: int) -> np.ndarray:
        action = torch.as_tensor(action)
        if action.dtype.is_floating_point or action.dtype == torch.bool or action.is_complex():
            raise ShapeError(f"{self.name}: actions must be integers, got {action.dtype}")
        if action.shape != (batch_size,):
            raise ShapeError(
                f"{self.name}: actions must have shape [B] = [{batch_size}], "
                f"got {list(action.shape)}"
            )
        return action.detach().cpu().numpy().astype(np.int64, copy=False)

    def _one_row(self, state: Tensor | np.ndarray, what: str) -> np.ndarray:
        """One state given as ``[L + 1]`` or ``[1, L + 1]``."""
        state = torch.as_tensor(state)
        rows = self._rows(state.reshape(1, -1) if state.ndim == 1 else state)
        if rows.shape[0] != 1:
            raise ShapeError(f"{self.name}: {what} takes one state, got a batch of {rows.shape[0]}")
        return rows[0]

    # ---------------------------------------------------------------- cache
    def _remember(self, key: bytes, st: pyspiel.State) -> None:
        self._cache[key] = st
        self._cache.move_to_end(key)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def _state(self, row: np.ndarray, b: int = 0) -> pyspiel.State:
        """The (shared, never to be mutated) pyspiel state of one row."""
        n = int(row[0])
        if n == 0:
            return self._root
        key = row[: n + 1].tobytes()
        st = self._cache.get(key)
        if st is not None:
            self._cache.move_to_end(key)
            self.cache_hits += 1
            return st
        self.cache_misses += 1
        history = row[1 : n + 1]
        hist_bytes = history.tobytes()
        start, st = 0, self._root
        for k in range(n - 1, 0, -1):  # longest cached prefix
            prefix = np.int64(k).tobytes() + hist_bytes[: 8 * k]
            cached = self._cache.get(prefix)
            if cached is not None:
                start, st = k, cached
                break
        for i in range(start, n):
            a = int(history[i])
            if st.is_terminal() or a not in st.legal_actions():
                raise ValueError(
                    f"{self.name}: row {b} is not a reachable state: action {a} at ply {i} is "
                    f"not legal after history {history[:i].tolist()}"
                )
            st = st.clone()
            st.apply_action(a)
            self.replayed_plies += 1
        self._remember(key, st)
        return st

    def clear_cache(self) -> None:
        """Forget every cached pyspiel state."""
        self._cache.clear()

    def _player(self, st: pyspiel.State) -> int:
        return 0 if st.is_terminal() else int(st.current_player())

    # ------------------------------------------------------------ the model
    def initial_state(self, batch_size: int) -> Tensor:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"{self.name}: batch_size must be a positive int, got {batch_size!r}")
        return torch.from_numpy(np.tile(self._initial_row, (batch_size, 1)))

    def step(self, state: Tensor, action: Tensor, generator: torch.Generator | None = None) -> Step:
        """Play ``action[b]`` in row ``b``; ``generator`` is ignored (the games are deterministic).

        Raises:
            IllegalActionError: an action is not legal in its (non-terminal) row.
        """
        rows = self._rows(state)
        actions = self._actions(action, rows.shape[0])
        out = rows.copy()
        rewards = np.zeros(rows.shape[0], dtype=np.float32)
        terminal = np.zeros(rows.shape[0], dtype=np.bool_)
        for b in range(rows.shape[0]):
            st = self._state(rows[b], b)
            if st.is_terminal():
                terminal[b] = True
                continue
            a = int(actions[b])
            legal = st.legal_actions()
            if a not in legal:
                self._raise_illegal(st, b, a, legal)
            n = int(rows[b, 0])
            if n >= self.max_length:  # OpenSpiel promised max_game_length
                raise RuntimeError(
                    f"{self.name}: row {b} is not terminal after "
                    f"max_game_length={self.max_length} moves"
                )
            mover = int(st.current_player())
            child = st.clone()
            child.apply_action(a)
            out[b, 0] = n + 1
            out[b, n + 1] = a
            self._remember(out[b, : n + 2].tobytes(), child)
            terminal[b] = child.is_terminal()
            if self._terminal_rewards:
                rewards[b] = child.returns()[mover] if terminal[b] else 0.0
            else:
                rewards[b] = child.rewards()[mover]
        return Step(torch.from_numpy(out), torch.from_numpy(rewards), torch.from_numpy(terminal))

    def _raise_illegal(self, st: pyspiel.State, b: int, a: int, legal: list[int]) -> None:
        player = int(st.current_player())
        shown = f"out of range [0, {self.spec.num_actions})"
        if 0 <= a < self.spec.num_actions:
            try:  # some games cannot name an action that is illegal in the state
                shown = st.action_to_string(player, a)
            except pyspiel.SpielError:
                shown = "not nameable here"
        names = ", ".join(st.action_to_string(player, x) for x in legal[:40])
        more = f", ... ({len(legal)} in all)" if len(legal) > 40 else ""
        raise IllegalActionError(
            f"{self.name}: illegal action {a} ({shown}) in row {b}; legal actions there: "
            f"{legal} ({names}{more})",
            row=b,
            action=a,
            legal=list(legal),
        )

    def legal_actions(self, state: Tensor) -> Tensor:
        rows = self._rows(state)
        mask = np.zeros((rows.shape[0], self.spec.num_actions), dtype=np.bool_)
        for b in range(rows.shape[0]):
            mask[b, self._state(rows[b], b).legal_actions()] = True  # [] when terminal
        return torch.from_numpy(mask)

    def observe(self, state: Tensor) -> Tensor:
        rows = self._rows(state)
        obs = np.empty((rows.shape[0], *self.spec.obs_shape), dtype=np.float32)
        flat = obs.reshape(rows.shape[0], -1)
        for b in range(rows.shape[0]):
            st = self._state(rows[b], b)
            flat[b] = st.observation_tensor(self._player(st))
        return torch.from_numpy(obs)

    def to_play(self, state: Tensor) -> Tensor:
        rows = self._rows(state)
        players = [self._player(self._state(rows[b], b)) for b in range(rows.shape[0])]
        return torch.tensor(players, dtype=torch.int64)

    def is_terminal(self, state: Tensor) -> Tensor:
        rows = self._rows(state)
        done = [self._state(rows[b], b).is_terminal() for b in range(rows.shape[0])]
        return torch.tensor(done, dtype=torch.bool)

    def returns(self, state: Tensor) -> Tensor:
        rows = self._rows(state)
        out = np.zeros((rows.shape[0], self.spec.num_players), dtype=np.float32)
        for b in range(rows.shape[0]):
            st = self._state(rows[b], b)
            if st.is_terminal():
                out[b] = st.returns()
        return torch.from_numpy(out)

    def random_playouts(self, state: Tensor, rng: np.random.Generator) -> Tensor:
        """Play every row to the end uniformly at random; ``[B]`` float32 return of player 0.

        For terminal-reward games this is player 0's final ``returns()``; for games with
        intermediate rewards it is the sum of player 0's rewards during the playout (the
        rewards still to come from ``state``).
        """
        rows = self._rows(state)
        out = np.zeros(rows.shape[0], dtype=np.float32)
        for b in range(rows.shape[0]):
            st = self._state(rows[b], b)
            if st.is_terminal():
                out[b] = st.returns()[0] if self._terminal_rewards else 0.0
                continue
            st = st.clone()
            total = 0.0
            while not st.is_terminal():
                legal = st.legal_actions()
                st.apply_action(legal[int(rng.integers(len(legal)))])
                if not self._terminal_rewards:
                    total += st.rewards()[0]
            out[b] = st.returns()[0] if self._terminal_rewards else total
        return torch.from_numpy(out)

    # ---------------------------------------------------- pyspiel interplay
    def to_pyspiel(self, state: Tensor | np.ndarray) -> pyspiel.State:
        """A fresh ``pyspiel.State`` (a clone, safe to mutate) of one state ``[(1,) L + 1]``.

        The state is the model's own game (``self.game``), so its history is the row's actions.
        """
        return self._state(self._one_row(state, "to_pyspiel")).clone()

    def from_history(self, actions: list[int]) -> Tensor:
        """The state ``[1, L + 1]`` reached by playing ``actions`` from the start.

        Raises:
            IllegalActionError: an action is not legal where it is played (``row`` is its ply).
        """
        actions = [int(a) for a in actions]
        if len(actions) > self.max_length:
            raise ValueError(
                f"{self.name}: history of {len(actions)} actions is longer than "
                f"max_game_length={self.max_length}"
            )
        row = self._initial_row.copy()
        st = self._root
        for i, a in enumerate(actions):
            legal = st.legal_actions()
            if a not in legal:
                if st.is_terminal():
                    raise IllegalActionError(
                        f"{self.name}: action {a} at ply {i} is played after the game ended",
                        row=i,
                        action=a,
                        legal=[],
                    )
                self._raise_illegal(st, i, a, legal)
            st = st.clone()
            st.apply_action(a)
            row[i + 1] = a
        row[0] = len(actions)
        if actions:
            self._remember(row[: len(actions) + 1].tobytes(), st)
        return torch.from_numpy(row).reshape(1, -1)

    def history(self, state: Tensor | np.ndarray) -> list[int]:
        """The actions played to reach one state."""
        row = self._one_row(state, "history")
        return row[1 : int(row[0]) + 1].tolist()

    # ------------------------------------------------------------ for people
    def render(self, state: Tensor) -> str:
        """OpenSpiel's picture of one state plus who is to play or how it ended."""
        st = self._state(self._one_row(state, "render"))
        text = str(st).rstrip("\n")
        if not st.is_terminal():
            return f"{text}\nplayer {st.current_player()} to play"
        r = st.returns()
        if self.spec.num_players == 1:
            return f"{text}\ngame over, return {r[0]:g}"
        result = "draw" if r[0] == r[1] else f"player {0 if r[0] > r[1] else 1} wins"
        return f"{text}\ngame over: {result} (returns {r[0]:g}, {r[1]:g})"

    def action_to_string(self, action: int, state: Tensor | None = None) -> str:
        """OpenSpiel's name of ``action`` as the player to move in ``state`` would play it.

        Without ``state`` the initial state (and its first player) is used, so for games
        whose action names depend on the position (e.g. chess) or the player (tic-tac-toe's
        ``x(1,1)`` / ``o(1,1)``) pass the state the action is played in.
        """
        a = int(action)
        if not 0 <= a < self.spec.num_actions:
            raise ValueError(f"{self.name}: action {a} out of range [0, {self.spec.num_actions})")
        st = self._root if state is None else self._state(self._one_row(state, "action_to_string"))
        return st.action_to_string(self._player(st), a)

    def string_to_action(self, text: str, state: Tensor | None = None) -> int:
        """Parse OpenSpiel's name of a move that is legal in ``state`` (default: the initial state).

        Exact names are tried first, then case-insensitively, then a bare action index.
        Without ``state`` the names any player would use in the initial state are accepted.

        Raises:
            ValueError: no legal action has that name; the message lists the legal names.
        """
        st = self._root if state is None else self._state(self._one_row(state, "string_to_action"))
        legal = st.legal_actions()
        if st.is_terminal():
            players = []
        elif state is None:
            players = list(range(self.spec.num_players))
        else:
            players = [int(st.current_player())]
        names = {(p, a): st.action_to_string(p, a) for p in players for a in legal}
        want = text.strip()
        for (_, a), s in names.items():
            if s == want:
                return a
        for (_, a), s in names.items():
            if s.lower() == want.lower():
                return a
        if want.isdigit() and int(want) in legal:
            return int(want)
        shown = sorted({s for s in names.values()})
        more = f", ... ({len(shown)} in all)" if len(shown) > 40 else ""
        examples = ", ".join(shown[:40]) + more
        where = "the initial state" if state is None else "this state"
        raise ValueError(
            f"{self.name}: {text!r} is not a legal move in {where}; "
            f"legal moves: {examples or 'none'}"
        )


def make_openspiel(name: str, *, cache_size: int = DEFAULT_CACHE_SIZE) -> OpenSpielGame:
    """The OpenSpiel game ``name`` (``"hex(board_size=5)"`` style parameters allowed) as a model."""
    return OpenSpielGame(name, cache_size=cache_size)
