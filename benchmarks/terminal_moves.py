"""What the search's exact steps cost it: sims/s with and without.

``MCTSConfig.find_terminal_moves`` steps every legal move of each new node once (one
batched model call per simulation); ``MCTSConfig.proof_plies`` searches the first
plies at the root full width before the simulations (``--proof-plies P``: that,
beside the search without it; both find the terminal moves). This times connect-four
searches of the shipped agent's network at B positions with the option on and off,
alternating the two in windows and keeping each side's best window, and prints the
ratio.

    python benchmarks/terminal_moves.py --batches 1 256 --simulations 200 --windows 4
    python benchmarks/terminal_moves.py --batches 1 256 --simulations 200 --proof-plies 4
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from mbrl import games
from mbrl.algorithms.alphazero import AlphaZero
from mbrl.evaluation.mistakes import replay
from mbrl.evaluation.pons import pons_set
from mbrl.planners.mcts import MCTSConfig, RootPolicy, search
from mbrl.training.selfplay import NetworkEvaluator


def sims_per_second(game, evaluator, states, config, seconds) -> float:
    rng, done, start = np.random.default_rng(0), 0, time.perf_counter()
    while True:
        search(game, evaluator, states, config, rng)
        done += states.shape[0] * config.num_simulations
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 256])
    parser.add_argument("--simulations", type=int, default=200)
    parser.add_argument("--windows", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--proof-plies", type=int, default=0, help="0: time the terminal moves")
    args = parser.parse_args()
    torch.set_num_threads(1)
    game = games.make("connect_four")
    evaluator = NetworkEvaluator(game, AlphaZero.load("connect_four").net)
    positions = [list(p.history) for p in pons_set("middle-medium")]
    for batch in args.batches:
        states = replay(game, positions[:batch])
        best = {True: 0.0, False: 0.0}
        for _ in range(args.windows):
            for on in (True, False):
                config = MCTSConfig(
                    num_simulations=args.simulations,
                    root_policy=RootPolicy.GUMBEL,
                    gumbel_scale=0.0,
                    find_terminal_moves=on or args.proof_plies > 0,
                    proof_plies=args.proof_plies if on else 0,
                )
                rate = sims_per_second(game, evaluator, states, config, args.seconds)
                best[on] = max(best[on], rate)
        option = f"a {args.proof_plies}-ply proof" if args.proof_plies else "terminal moves"
        print(f"B={batch}, {args.simulations} simulations, {option}: "
              f"with {best[True]:,.0f} sims/s, without {best[False]:,.0f} sims/s, with / without "
              f"{best[True] / best[False]:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
