"""Reference players behind one small interface, used by ``mbrl play`` and the arena.

A player chooses moves for a batch of games at once::

    actions = player.act(state, histories)   # state [B, W], histories: B move lists -> [B] int64

Batched players (random, networks, our MCTS) read ``state``; players that
drive another engine (OpenSpiel's MCTS, the connect-four solver) replay the
move ``histories``, which every caller keeps beside the states.

Player specs as strings (``make_player``): ``human``, ``random``,
``mcts:N`` (OpenSpiel's MCTS with random rollouts, N simulations),
``solver`` (exact minimax for tic-tac-toe, the ``bitbully`` solver for
connect four), ``minimax`` (exact on tic-tac-toe) and ``minimax:D`` (connect four:
alpha-beta to depth D plies, default 6, :mod:`mbrl.games.connect_four_minimax`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from mbrl.model import GameModel, UnknownNameError

from . import connect_four_minimax, minimax

__all__ = [
    "ConnectFourMinimaxPlayer",
    "HumanPlayer",
    "MinimaxPlayer",
    "OpenSpielMCTSPlayer",
    "Player",
    "QuitGame",
    "RandomPlayer",
    "SolverPlayer",
    "check_player_spec",
    "make_player",
    "openspiel_name",
    "player_specs",
]


@runtime_checkable
class Player(Protocol):
    name: str

    def act(self, state: Tensor, histories: Sequence[Sequence[int]]) -> Tensor:
        """Moves ``[B]`` int64 for the B games (each row's player to move)."""
        ...


def openspiel_name(game: GameModel) -> str:
    """The OpenSpiel game string of a model (native games share OpenSpiel's names)."""
    return game.spec.name.removeprefix("openspiel:")


def _check_batch(state: Tensor, histories: Sequence[Sequence[int]]) -> None:
    if state.shape[0] != len(histories):
        raise ValueError(
            f"state has {state.shape[0]} rows but {len(histories)} histories were given"
        )


class RandomPlayer:
    """Uniformly random legal moves."""

    def __init__(self, game: GameModel, seed: int = 0):
        self.game = game
        self.name = "random"
        self._generator = torch.Generator().manual_seed(seed)

    def act(self, state: Tensor, histories: Sequence[Sequence[int]]) -> Tensor:
        legal = self.game.legal_actions(state)
        if not legal.any(dim=1).all():
            raise ValueError("random player asked to move in a finished game")
        return torch.multinomial(legal.float(), 1, generator=self._generator).squeeze(1)


class OpenSpielMCTSPlayer:
    """OpenSpiel's MCTS bot with random-rollout evaluation (the classic baseline).

    Args:
        num_simulations: simulations per move (OpenSpiel's ``max_simulations``).
        uct_c: exploration constant (OpenSpiel's examples use 2).
        num_rollouts: random rollouts per leaf evaluation.
        solve: back up proven wins/losses (MCTS-Solver), as OpenSpiel's default.
    """

    def __init__(
        self,
        game: GameModel,
        num_simulations: int,
        seed: int = 0,
        uct_c: float = 2.0,
        num_rollouts: int = 1,
        solve: bool = True,
    ):
        import pyspiel
        from open_spiel.python.algorithms import mcts

        if num_simulations < 1:
            raise ValueError(f"num_simulations must be >= 1, got {num_simulations}")
        self.game = game
        self.name = f"mcts:{num_simulations}"
        self._spiel_game = pyspiel.load_game(openspiel_name(game))
        random_state = np.random.RandomState(seed)
        self._bot = mcts.MCTSBot(
            self._spiel_game,
            uct_c=uct_c,
            max_simulations=num_simulations,
            evaluator=mcts.RandomRolloutEvaluator(num_rollouts, random_state),
            solve=solve,
            random_state=random_state,
        )

    def spiel_state(self, history: Sequence[int]):
        state = self._spiel_game.new_initial_state()
        for action in history:
            state.apply_action(int(action))
        return state

    def act(self, state: Tensor, histories: Sequence[Sequence[int]]) -> Tensor:
        _check_batch(state, histories)
        return torch.tensor(
            [self._bot.step(self.spiel_state(h)) for h in histories], dtype=torch.int64
        )


class MinimaxPlayer:
    """Perfect tic-tac-toe: among the best-scoring moves (quickest win), a seeded random one."""

    def __init__(self, game: GameModel, seed: int = 0):
        if game.spec.name != "tic_tac_toe":
            raise ValueError(f"minimax player is for tic_tac_toe, not {game.spec.name}")
        self.game = game
        self.name = "minimax"
        self._rng = np.random.default_rng(seed)

    def act(self, state: Tensor, histories: Sequence[Sequence[int]]) -> Tensor:
        moves = []
        for row in state.numpy():
            scores = minimax.move_scores(row)
            best = max(scores.values())
            moves.append(self._rng.choice([a for a, s in scores.items() if s == best]))
        return torch.tensor(moves, dtype=torch.int64)


class ConnectFourMinimaxPlayer:
    """Depth-limited connect-four minimax: among the best-scoring moves, a seeded random one."""

    DEFAULT_DEPTH = 6

    def __init__(self, game: GameModel, depth: int = DEFAULT_DEPTH, seed: int = 0):
        if openspiel_name(game) != "connect_four":
            raise ValueError(f"minimax:D is for connect_four, not {game.spec.name}")
        self.game, self.depth = game, depth
        self.name = f"minimax:{depth}"
        self._rng = np.random.default_rng(seed)

    def act(self, state: Tensor, histories: Sequence[Sequence[int]]) -> Tensor:
        _check_batch(state, histories)
        moves = []
        for history in histories:
            scores = connect_four_minimax.move_scores(history, self.depth)
            best = max(scores.values())
            moves.append(self._rng.choice([a for a, s in scores.items() if s == best]))
        return torch.tensor(moves, dtype=torch.int64)


def _import_bitbully():
    try:
        import bitbully
    except ImportError as error:  # pragma: no cover - depends on the extra
        raise ImportError(
            "the connect-four solver needs the optional 'bitbully' package (AGPL-3.0): "
            "pip install 'mbrl[solver]'"
        ) from error
    return bitbully


class ConnectFourSolver:
    """Exact connect-four move scores from ``bitbully`` (imported only here).

    Scores are bitbully's: positive = the mover wins (larger = sooner),
    0 = draw, negative = the mover loses.
    """

    def __init__(self):
        self._bitbully = _import_bitbully()
        self._agent = self._bitbully.BitBully()

    def board(self, history: Sequence[int]):
        return self._bitbully.Board("".join(str(int(a)) for a in history))

    def move_scores(self, history: Sequence[int]) -> dict[int, int]:
        """Score of every legal column after the moves in ``history`` (0-based columns)."""
        return self._agent.score_all_moves(self.board(history))


class SolverPlayer:
    """Perfect connect four (bitbully): a seeded random choice among the best-scoring moves."""

    def __init__(self, game: GameModel, seed: int = 0):
        if openspiel_name(game) != "connect_four":
            raise ValueError(f"the bitbully solver plays connect_four, not {game.spec.name}")
        self.game = game
        self.name = "solver"
        self.solver = ConnectFourSolver()
        self._rng = np.random.default_rng(seed)

    def act(self, state: Tensor, histories: Sequence[Sequence[int]]) -> Tensor:
        _check_batch(state, histories)
        moves = []
        for history in histories:
            scores = self.solver.move_scores(history)
            best = max(scores.values())
            moves.append(self._rng.choice([a for a, s in scores.items() if s == best]))
        return torch.tensor(moves, dtype=torch.int64)


class QuitGame(Exception):
    """The human player asked to stop (``quit`` or end of input)."""


class HumanPlayer:
    """Asks a person for each move; bad input gets a message and a new prompt."""

    def __init__(
        self,
        game: GameModel,
        read: Callable[[str], str] = input,
        write: Callable[[str], None] = print,
    ):
        self.game = game
        self.name = "human"
        self._read = read
        self._write = write

    def act(self, state: Tensor, histories: Sequence[Sequence[int]]) -> Tensor:
        return torch.tensor([self._ask(state[i : i + 1]) for i in range(state.shape[0])])

    def _ask(self, state: Tensor) -> int:
        legal = [int(a) for a in torch.nonzero(self.game.legal_actions(state)[0]).flatten()]
        names = [self.game.action_to_string(a) for a in legal]
        while True:
            try:
                text = self._read(f"your move ({' '.join(names)}; q to quit): ").strip()
            except EOFError as error:
                raise QuitGame from error
            if text.lower() in {"q", "quit", "exit"}:
                raise QuitGame
            try:
                action = self.game.string_to_action(text)
            except ValueError as error:
                self._write(str(error))
                continue
            if action not in legal:
                self._write(f"{text} is not legal here; legal moves: {' '.join(names)}")
                continue
            return action


def player_specs() -> list[str]:
    return ["human", "random", "mcts:N", "solver", "minimax", "minimax:D"]


def check_player_spec(spec: str, game_name: str) -> None:
    """Raise the error :func:`make_player` would, without building the player (cheap, so a
    run can check its opponents at start)."""
    from mbrl import games

    kind, _, arg = spec.partition(":")
    name = game_name.removeprefix(games.OPENSPIEL_PREFIX)
    if kind == "mcts":
        if not (arg == "" or (arg.isdigit() and int(arg) >= 1)):
            raise ValueError(f"player {spec!r}: write mcts:N with N simulations, e.g. mcts:1000")
    elif kind == "minimax" and name == "connect_four":
        if not (arg == "" or (arg.isdigit() and int(arg) >= 1)):
            raise ValueError(
                f"player {spec!r}: write minimax:D with a depth D >= 1, e.g. minimax:6"
            )
    elif kind == "minimax" and (name != "tic_tac_toe" or arg):
        raise ValueError(
            f"player {spec!r}: minimax is exact on tic_tac_toe and minimax:D plays "
            f"connect_four, not {game_name}"
        )
    elif kind == "solver" and name not in ("tic_tac_toe", "connect_four"):
        raise ValueError(
            f"no solver for {game_name}; solvers exist for tic_tac_toe and connect_four"
        )
    elif kind not in ("human", "random", "mcts", "minimax", "solver") or (
        kind not in ("mcts", "minimax") and arg
    ):
        raise UnknownNameError(
            f"unknown player {spec!r}; players: {', '.join(player_specs())}",
            name=spec,
            known=player_specs(),
        )


def make_player(spec: str, game: GameModel, seed: int = 0, **human_io) -> Player:
    """A player from a spec string: ``human``, ``random``, ``mcts:N``, ``solver``,
    ``minimax`` (tic-tac-toe), ``minimax:D`` (connect four)."""
    kind, _, arg = spec.partition(":")
    if kind == "human":
        return HumanPlayer(game, **human_io)
    if kind == "random":
        return RandomPlayer(game, seed)
    if kind == "mcts":
        try:
            num_simulations = int(arg or 1000)
        except ValueError:
            raise ValueError(
                f"player {spec!r}: write mcts:N with N simulations, e.g. mcts:1000"
            ) from None
        return OpenSpielMCTSPlayer(game, num_simulations, seed)
    if kind == "minimax":
        if openspiel_name(game) == "connect_four":
            check_player_spec(spec, game.spec.name)
            depth = int(arg) if arg else ConnectFourMinimaxPlayer.DEFAULT_DEPTH
            return ConnectFourMinimaxPlayer(game, depth, seed)
        if arg:
            check_player_spec(spec, game.spec.name)
        return MinimaxPlayer(game, seed)
    if kind == "solver":
        name = openspiel_name(game)
        if name == "tic_tac_toe":
            return MinimaxPlayer(game, seed)
        if name == "connect_four":
            return SolverPlayer(game, seed)
        raise ValueError(
            f"no solver for {game.spec.name}; solvers exist for tic_tac_toe and connect_four"
        )
    raise UnknownNameError(
        f"unknown player {spec!r}; players: {', '.join(player_specs())}",
        name=spec,
        known=player_specs(),
    )
