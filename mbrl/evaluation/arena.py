"""Games between players: batched play, both colours, win/draw/loss tallies.

All games of a call are played at once: each turn, every player moves in
the rows where it is to play, with one ``act`` call for all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from torch import Tensor

from mbrl.games.players import Player
from mbrl.model import GameModel

__all__ = [
    "GameRecords",
    "MatchResult",
    "RoundRobinTable",
    "elo_ratings",
    "play_games",
    "play_match",
    "round_robin",
]


@dataclass(frozen=True)
class GameRecords:
    """Finished games: ``returns[g, p]`` for player p (0 moved first), and the moves."""

    returns: np.ndarray
    histories: list[list[int]]
    final_state: Tensor


def play_games(
    game: GameModel,
    first: Player,
    second: Player,
    num_games: int,
    on_move: Callable[[Tensor, Tensor, Tensor, int], None] | None = None,
) -> GameRecords:
    """Play ``num_games`` games, ``first`` as player 0, ``second`` as player 1.

    Args:
        on_move: called after every turn with ``(state [B, W], rows [K], actions [K], player)``:
            the rows where ``player`` (0 or 1) just played ``actions``
            (e.g. to render the board or advance a progress bar).
    """
    if game.spec.num_players != 2:
        raise ValueError(f"{game.spec.name} is not a two-player game")
    if num_games < 1:
        raise ValueError(f"num_games must be >= 1, got {num_games}")
    players = (first, second)
    state = game.initial_state(num_games)
    histories: list[list[int]] = [[] for _ in range(num_games)]
    for _ in range((game.spec.max_episode_length or 100_000) + 1):
        active = ~game.is_terminal(state)
        if not active.any():
            break
        to_play = game.to_play(state)
        for p, player in enumerate(players):
            rows = torch.nonzero(active & (to_play == p)).flatten()
            if rows.numel() == 0:
                continue
            actions = torch.as_tensor(
                player.act(state[rows], [histories[i] for i in rows.tolist()])
            )
            state = state.clone()
            state[rows] = game.step(state[rows], actions).state
            for i, a in zip(rows.tolist(), actions.tolist(), strict=True):
                histories[i].append(int(a))
            if on_move is not None:
                on_move(state, rows, actions, p)
    else:
        raise RuntimeError(f"{game.spec.name}: games did not end within max_episode_length")
    return GameRecords(game.returns(state).numpy(), histories, state)


@dataclass(frozen=True)
class MatchResult:
    """Result of ``player`` against ``opponent`` over games in both colours."""

    wins: int
    draws: int
    losses: int

    @property
    def num_games(self) -> int:
        return self.wins + self.draws + self.losses

    @property
    def score(self) -> float:
        """Points per game: win 1, draw 1/2."""
        return (self.wins + 0.5 * self.draws) / max(self.num_games, 1)


def play_match(game: GameModel, player: Player, opponent: Player, num_games: int) -> MatchResult:
    """``num_games`` games, half with ``player`` moving first (the odd one too)."""
    as_first = (num_games + 1) // 2
    outcomes = []
    if as_first:
        outcomes.append(play_games(game, player, opponent, as_first).returns[:, 0])
    if num_games - as_first:
        outcomes.append(play_games(game, opponent, player, num_games - as_first).returns[:, 1])
    result = np.concatenate(outcomes)
    return MatchResult(int((result > 0).sum()), int((result == 0).sum()), int((result < 0).sum()))


@dataclass(frozen=True)
class RoundRobinTable:
    """Pairwise results and Elo ratings (Bradley-Terry fit, anchored at mean 0)."""

    names: list[str]
    wins: np.ndarray  # [P, P] wins[i, j] = games i won against j
    draws: np.ndarray  # [P, P]
    elo: np.ndarray  # [P]

    def render(self) -> Table:
        table = Table(title="round robin (row against column: wins-draws-losses)")
        table.add_column("player")
        for name in self.names:
            table.add_column(name)
        table.add_column("score")
        table.add_column("Elo")
        for i, name in enumerate(self.names):
            cells = []
            for j in range(len(self.names)):
                w, d, l = int(self.wins[i, j]), int(self.draws[i, j]), int(self.wins[j, i])
                cells.append("" if i == j else f"{w}-{d}-{l}")
            played = self.wins[i].sum() + self.draws[i].sum() + self.wins[:, i].sum()
            score = (self.wins[i].sum() + 0.5 * self.draws[i].sum()) / max(played, 1)
            table.add_row(name, *cells, f"{score:.2f}", f"{self.elo[i]:+.0f}")
        return table


def elo_ratings(wins: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """Elo from win and draw matrices (OpenSpiel's MM fit of Hunter 2004), mean 0."""
    from open_spiel.python.algorithms.elo import compute_ratings_from_matrices

    ratings = compute_ratings_from_matrices(wins.astype(int), draws.astype(int))
    return ratings - ratings.mean()


def round_robin(
    game: GameModel, players: list[Player], num_games: int, console: Console | None = None
) -> RoundRobinTable:
    """Every pair plays ``num_games`` games (half in each colour)."""
    names = [p.name for p in players]
    for i, name in enumerate(names):  # make names unique for the table
        if names.count(name) > 1:
            names[i] = f"{name}#{i}"
    P = len(players)
    wins, draws = np.zeros((P, P)), np.zeros((P, P))
    pairs = [(i, j) for i in range(P) for j in range(i + 1, P)]
    with Progress(console=console or Console(quiet=True), transient=True) as progress:
        task = progress.add_task("round robin", total=len(pairs))
        for i, j in pairs:
            result = play_match(game, players[i], players[j], num_games)
            wins[i, j], wins[j, i] = result.wins, result.losses
            draws[i, j] = draws[j, i] = result.draws
            progress.advance(task)
    return RoundRobinTable(names, wins, draws, elo_ratings(wins, draws))
