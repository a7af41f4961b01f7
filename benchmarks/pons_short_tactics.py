"""Mistakes on a Pons set that a 4-ply search would have seen.

For each position of a set (default: end-easy, all 1,000, or the first ``--limit``),
the agent's move is a mistake when the solver's win/draw/loss class of it is worse
than the best move's; a mistake is *short* when the win or loss is within 4 plies:
the best move wins within 4 plies by exact minimax (``minimax:4`` finds it), or the
move played loses within 4 plies. Prints both counts for each number of simulations,
the agent searching after its root proof (by default 4 plies; ``--proof-plies 0``: off).

    python benchmarks/pons_short_tactics.py --simulations 200 800
    python benchmarks/pons_short_tactics.py --simulations 200 800 --proof-plies 0
"""

from __future__ import annotations

import argparse

import torch

from mbrl import games
from mbrl.algorithms.alphazero import AlphaZero
from mbrl.evaluation.mistakes import is_mistake, replay, solver_scores
from mbrl.evaluation.pons import SETS, pons_set
from mbrl.games import connect_four_minimax


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", default="end-easy", choices=list(SETS))
    parser.add_argument("--simulations", type=int, nargs="+", default=[200, 800])
    parser.add_argument("--agent", default="connect_four")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--limit", type=int, default=None, help="first N positions of the set")
    parser.add_argument("--proof-plies", type=int, default=None, help="None: the agent's")
    args = parser.parse_args()
    torch.set_num_threads(1)
    game = games.make("connect_four")
    histories = [list(p.history) for p in pons_set(args.set, args.limit)]
    states = replay(game, histories)
    for sims in args.simulations:
        agent = AlphaZero.load(args.agent)
        player = agent.player(game, num_simulations=sims, seed=0, proof_plies=args.proof_plies)
        mistakes = short = 0
        for start in range(0, len(histories), args.batch_size):
            batch = histories[start : start + args.batch_size]
            moves = player.act(states[start : start + len(batch)], batch).tolist()
            for history, move in zip(batch, moves, strict=True):
                if not is_mistake(solver_scores(history), move):
                    continue
                mistakes += 1
                near = connect_four_minimax.move_scores(history, 4)
                short += max(near.values()) > 0 or near[move] < 0
        print(f"{args.set} {player.name}: {mistakes} mistakes in {len(histories)} positions, "
              f"{short} of them with the win or loss within 4 plies")  # fmt: skip


if __name__ == "__main__":
    main()
