"""Write the exact score of every move of the Pons positions beside each set.

    python scripts/pons_scores.py                       # all six sets, all 1,000 positions
    python scripts/pons_scores.py --sets middle-medium --limit 200

Needs ``bitbully`` (the solver extra: ``pip install 'mbrl[solver]'``). Each set's
``mbrl/evaluation/pons/<file>.scores`` gets one line per position (seven columns'
scores, ``.`` where the column is full). The file is extended where it stops, a line at
a time, so a killed run loses at most the position it was solving. Each position's best
score is checked against the score in Pons' file before its line is written.
"""

from __future__ import annotations

import argparse
import time

from mbrl.evaluation.pons import DATA, SETS, format_scores, pons_set, vendored_scores
from mbrl.games.players import ConnectFourSolver


def sign(x: int) -> int:
    return (x > 0) - (x < 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--limit", type=int, default=1000, help="positions of each set")
    args = parser.parse_args()
    solver = ConnectFourSolver()
    for name in args.sets:
        done = len(vendored_scores(name))
        positions = pons_set(name, args.limit)[done:]
        started = time.perf_counter()
        with open(DATA / f"{SETS[name]}.scores", "a") as out:
            for i, position in enumerate(positions, done + 1):
                scores = solver.move_scores(position.history)
                if sign(max(scores.values())) != sign(position.score):
                    raise SystemExit(f"{name} position {i}: the solver disagrees with Pons' file")
                out.write(format_scores(scores) + "\n")
                out.flush()
        seconds = time.perf_counter() - started
        print(f"{name}: {done + len(positions)} positions ({len(positions)} new, {seconds:.0f} s)")


if __name__ == "__main__":
    main()
