"""Connect-four mistake rate of a player against the perfect solver (``bitbully``).

A fixed, seeded set of positions is reached by uniformly random play
(:func:`solver_positions`); the player chooses a move in each
(:func:`mistake_rate`), and the solver says whether that move was a mistake.

Definitions:

* The *outcome class* of a move is the sign of its solver score: win (+1),
  draw (0) or loss (-1) for the player making it, under perfect play after it.
* A move is a *mistake* when its outcome class is worse than that of the
  position's best move: it throws away a win (to a draw or a loss) or a draw
  (to a loss). Playing a slower win instead of a faster one, or a slower loss
  instead of a longer one, is **not** a mistake: only the class counts.
* A position is *critical* when some legal move is a mistake, i.e. not every
  move has the same outcome class. Elsewhere no move can be a mistake.

Two rates are reported: ``rate`` over all positions and ``critical_rate``
over the critical positions. The headline is ``critical_rate`` (the fraction
of positions where it mattered in which the player went wrong): it does not
depend on how many positions of the sample happen to be already decided, so
it separates strong players more clearly.

``bitbully`` is AGPL and optional; it is only imported (through
:class:`mbrl.games.players.ConnectFourSolver`) when scores are needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from rich.table import Table
from torch import Tensor

from mbrl import games
from mbrl.games.players import Player
from mbrl.model import GameModel

__all__ = [
    "MistakeReport",
    "is_critical",
    "is_mistake",
    "mistake_rate",
    "mistakes_table",
    "outcome_class",
    "replay",
    "solver_positions",
    "solver_scores",
]

GAME = "connect_four"


@lru_cache(maxsize=1)
def _solver():
    from mbrl.games.players import ConnectFourSolver

    return ConnectFourSolver()


@lru_cache(maxsize=100_000)
def _cached_scores(history: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    return tuple(sorted(_solver().move_scores(history).items()))


def solver_scores(history: Sequence[int]) -> dict[int, int]:
    """The solver's score of every legal column after ``history`` (cached in memory).

    Positive = the mover wins (larger = sooner), 0 = draw, negative = the mover loses.
    """
    return dict(_cached_scores(tuple(int(a) for a in history)))


def outcome_class(score: int) -> int:
    """+1 win, 0 draw, -1 loss: the sign of a solver score."""
    return (score > 0) - (score < 0)


def is_mistake(scores: dict[int, int], move: int) -> bool:
    """Whether ``move``'s outcome class is worse than the best move's."""
    if move not in scores:
        raise ValueError(f"column {move} is not a legal move here (legal: {sorted(scores)})")
    best = max(outcome_class(s) for s in scores.values())
    return outcome_class(scores[move]) < best


def is_critical(scores: dict[int, int]) -> bool:
    """Whether some legal move is a mistake (the moves' outcome classes differ)."""
    classes = {outcome_class(s) for s in scores.values()}
    return len(classes) > 1


def replay(game: GameModel, histories: Sequence[Sequence[int]]) -> Tensor:
    """The states ``[B, W]`` after the moves of each history (all rows stepped together)."""
    state = game.initial_state(len(histories))
    longest = max((len(h) for h in histories), default=0)
    for ply in range(longest):
        rows = [i for i, h in enumerate(histories) if len(h) > ply]
        actions = torch.tensor([int(histories[i][ply]) for i in rows], dtype=torch.int64)
        index = torch.tensor(rows, dtype=torch.int64)
        state = state.clone()
        state[index] = game.step(state[index], actions).state
    return state


def solver_positions(num_positions: int, max_plies: int = 14, seed: int = 0) -> list[list[int]]:
    """A fixed, seeded set of connect-four positions, as move histories (0-based columns).

    Each position is reached by uniformly random play of a uniformly drawn
    number of plies in ``0 .. max_plies - 1``; finished games are skipped and
    duplicates (the same board, whatever the move order) kept once. Every
    position is scored by the solver here, so that :func:`mistake_rate` on
    the same positions only reads the in-memory cache.

    Raises ValueError if fewer than ``num_positions`` distinct positions turn up.
    """
    if num_positions < 0:
        raise ValueError(f"num_positions must be >= 0, got {num_positions}")
    if max_plies < 1:
        raise ValueError(f"max_plies must be >= 1, got {max_plies}")
    game = games.make(GAME)
    rng = np.random.default_rng(seed)
    positions: list[list[int]] = []
    seen: set[tuple[int, ...]] = set()
    attempts = 0
    while len(positions) < num_positions:
        attempts += 1
        if attempts > 100 * num_positions + 1000:
            raise ValueError(
                f"found only {len(positions)} distinct positions of under {max_plies} plies "
                f"in {attempts - 1} tries; ask for fewer or allow more plies"
            )
        plies = int(rng.integers(0, max_plies))
        state, history = game.initial_state(1), []
        for _ in range(plies):
            if game.is_terminal(state)[0]:
                break
            legal = torch.nonzero(game.legal_actions(state)[0]).flatten().tolist()
            action = int(rng.choice(legal))
            state = game.step(state, torch.tensor([action])).state
            history.append(action)
        if game.is_terminal(state)[0]:
            continue
        key = tuple(state[0].tolist())
        if key in seen:
            continue
        seen.add(key)
        positions.append(history)
    for history in positions:
        solver_scores(history)
    return positions


@dataclass(frozen=True)
class MistakeReport:
    """How often a player's move was a mistake; ``critical_rate`` is the headline."""

    num_positions: int
    num_mistakes: int
    rate: float
    """Mistakes per position, over all positions."""
    critical_positions: int
    critical_rate: float
    """Mistakes per critical position (where some move is a mistake): the headline."""


def mistake_rate(
    player: Player,
    positions: Sequence[Sequence[int]],
    game: GameModel | None = None,
    batch_size: int = 64,
    scores: Sequence[dict[int, int]] | None = None,
) -> MistakeReport:
    """The player's mistakes on ``positions`` (histories, e.g. from :func:`solver_positions`).

    The player moves in ``batch_size`` positions per ``act`` call. ``scores`` are the
    positions' move scores where known (None: ask the solver). Raises ValueError for a
    finished position or an illegal move.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if scores is not None and len(scores) != len(positions):
        raise ValueError(f"{len(scores)} score tables for {len(positions)} positions")
    game = game or games.make(GAME)
    histories = [[int(a) for a in h] for h in positions]
    states = replay(game, histories)
    if game.is_terminal(states).any():
        raise ValueError("mistake_rate got a finished game among the positions")
    mistakes = critical = 0
    for start in range(0, len(histories), batch_size):
        batch = histories[start : start + batch_size]
        moves = torch.as_tensor(player.act(states[start : start + len(batch)], batch))
        for i, move in enumerate(moves.tolist()):
            known = None if scores is None else scores[start + i]
            move_scores = known if known is not None else solver_scores(batch[i])
            mistakes += is_mistake(move_scores, int(move))
            critical += is_critical(move_scores)
    n = len(histories)
    return MistakeReport(
        num_positions=n,
        num_mistakes=mistakes,
        rate=mistakes / n if n else 0.0,
        critical_positions=critical,
        critical_rate=mistakes / critical if critical else 0.0,
    )


def mistakes_table(names: Sequence[str], reports: Sequence[MistakeReport]) -> Table:
    """A rich table of mistake rates, one row per player."""
    n = reports[0].num_positions if reports else 0
    critical = reports[0].critical_positions if reports else 0
    table = Table(
        title=f"mistakes against the solver ({n} positions, {critical} critical)",
        caption="mistake: a move whose outcome (win/draw/loss) is worse than the best move's",
    )
    for column in ("player", "critical rate", "rate (all)", "mistakes"):
        table.add_column(column)
    for name, report in zip(names, reports, strict=True):
        table.add_row(
            name,
            f"{report.critical_rate:.3f}",
            f"{report.rate:.3f}",
            str(report.num_mistakes),
        )
    return table
