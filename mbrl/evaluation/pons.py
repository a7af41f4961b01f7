"""Pascal Pons' connect-four benchmark: a player's mistake rate on six public sets.

The six sets of 1,000 positions (``mbrl/evaluation/pons/``, vendored with their
attribution) are the test protocol of Pons' solver, on which AlphaZero.jl reports its
agents. The player chooses a move in each position; the move is a *mistake* when its
win/draw/loss class under perfect play is worse than the best move's (the definition
of :mod:`mbrl.evaluation.mistakes`). The rate is over all positions of a set, as
AlphaZero.jl's curves are.

Every move's exact score is vendored beside each set (``<file>.scores``, one line per
position, written by ``scripts/pons_scores.py`` with ``bitbully``, the optional solver
extra), so the benchmark needs no solver and spends its time on the player; a position
past the vendored lines is solved by ``bitbully`` when it is installed.

    mbrl eval connect_four --players agent:connect_four@200 minimax:6 --benchmark pons
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.table import Table

from mbrl.evaluation.mistakes import MistakeReport, mistake_rate, solver_scores
from mbrl.games.players import Player
from mbrl.model import GameModel

__all__ = [
    "PUBLISHED",
    "SETS",
    "PonsPosition",
    "format_scores",
    "parse_scores",
    "pons_benchmark",
    "pons_set",
    "pons_table",
    "vendored_scores",
]

DATA = Path(__file__).parent / "pons"

SETS: dict[str, str] = {
    "end-easy": "Test_L3_R1",
    "middle-easy": "Test_L2_R1",
    "beginning-easy": "Test_L1_R1",
    "beginning-medium": "Test_L1_R2",
    "middle-medium": "Test_L2_R2",
    "beginning-hard": "Test_L1_R3",
}
"""Set names (stage-difficulty) and their files, in the order of the table."""

PUBLISHED: dict[str, float] = {
    "end-easy": 0.0,
    "middle-easy": 0.001,
    "beginning-easy": 0.001,
    "beginning-medium": 0.02,
    "middle-medium": 0.025,
    "beginning-hard": 0.07,
}
"""AlphaZero.jl's mistake rates after 15 iterations, read off its published curves."""


@dataclass(frozen=True)
class PonsPosition:
    """A position of a set: the moves so far (0-based columns) and Pons' score of it."""

    history: tuple[int, ...]
    score: int
    """For the player to move: positive a win, 0 a draw, negative a loss."""
    move_scores: dict[int, int] | None = None
    """The solver's score of every legal column (vendored), or None where not vendored."""


def pons_set(name: str, limit: int | None = None) -> list[PonsPosition]:
    """The first ``limit`` (default: all 1,000) positions of a set."""
    if name not in SETS:
        raise ValueError(f"unknown Pons set {name!r}; sets: {', '.join(SETS)}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    positions = []
    scores = vendored_scores(name)
    for number, line in enumerate((DATA / SETS[name]).read_text().splitlines(), 1):
        if not line.strip():
            continue
        moves, score = line.split()
        if not moves.isdigit() or not set(moves) <= set("1234567"):
            raise ValueError(f"{SETS[name]} line {number}: bad moves {moves!r}")
        i = len(positions)
        move_scores = scores[i] if i < len(scores) else None
        positions.append(PonsPosition(tuple(int(c) - 1 for c in moves), int(score), move_scores))
        if limit is not None and len(positions) == limit:
            break
    return positions


def format_scores(scores: dict[int, int]) -> str:
    """One line of a ``.scores`` file: seven columns' scores, ``.`` where illegal."""
    return " ".join(str(scores[c]) if c in scores else "." for c in range(7))


def parse_scores(line: str) -> dict[int, int]:
    """The inverse of :func:`format_scores`."""
    cells = line.split()
    if len(cells) != 7:
        raise ValueError(f"a scores line has 7 columns, got {line!r}")
    return {c: int(v) for c, v in enumerate(cells) if v != "."}


def vendored_scores(name: str) -> list[dict[int, int]]:
    """The vendored move scores of a set's first positions (possibly none)."""
    path = DATA / f"{SETS[name]}.scores"
    if not path.exists():
        return []
    return [parse_scores(line) for line in path.read_text().splitlines() if line.strip()]


def pons_benchmark(
    players: Sequence[Player],
    game: GameModel,
    per_set: int | None = None,
    sets: Sequence[str] = tuple(SETS),
    progress: Callable[[str, str, MistakeReport], None] | None = None,
) -> dict[str, list[MistakeReport]]:
    """``{set: [report per player]}``: each player's mistakes on the first ``per_set``
    positions of each set (all 1,000 by default). ``progress(set, player, report)`` is
    called after each pair. Raises ValueError where the solver's best score (vendored or
    bitbully's) disagrees with Pons' score of a position (the two oracles must agree)."""
    out = {}
    for name in sets:
        positions = pons_set(name, per_set)
        scores = []
        for position in positions:
            scores.append(position.move_scores or solver_scores(position.history))
            best = max(scores[-1].values())
            if (best > 0) - (best < 0) != (position.score > 0) - (position.score < 0):
                raise ValueError(
                    f"Pons set {name}: the solver's best score {best} disagrees with the "
                    f"file's {position.score} after {list(position.history)}"
                )
        histories = [list(p.history) for p in positions]
        reports = []
        for player in players:
            reports.append(mistake_rate(player, histories, game, scores=scores))
            if progress is not None:
                progress(name, player.name, reports[-1])
        out[name] = reports
    return out


def pons_table(names: Sequence[str], results: dict[str, list[MistakeReport]]) -> Table:
    """The mistake rate (all positions) of each player on each set, beside AlphaZero.jl's."""
    sizes = sorted({r.num_positions for reports in results.values() for r in reports})
    table = Table(
        title=f"Pons benchmark: mistake rate over {', '.join(map(str, sizes))} positions a set",
        caption="mistake: a move whose win/draw/loss class is worse than the best move's; "
        "AlphaZero.jl: its published rates after 15 iterations",
    )
    table.add_column("set")
    for name in names:
        table.add_column(name, justify="right")
    table.add_column("AlphaZero.jl", justify="right")
    for set_name, reports in results.items():
        cells = [f"{100 * r.rate:.1f}% ({r.num_mistakes})" for r in reports]
        table.add_row(set_name, *cells, f"~{100 * PUBLISHED[set_name]:g}%")
    return table
