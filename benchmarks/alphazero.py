"""Strength per CPU-minute: train an AlphaZero agent for a time budget, then evaluate it.

    # tic-tac-toe target: no losses in 200 games against perfect minimax after < 5 minutes
    python benchmarks/alphazero.py --game tic_tac_toe --minutes 4.5 --opponents minimax random

    # connect-four target: >= 95% wins against OpenSpiel MCTS with 1,000 rollouts after 60 minutes,
    # and the mistake rate on solver-scored positions from the first 14 plies
    python benchmarks/alphazero.py --game connect_four --minutes 60 --opponents mcts:1000 \
        --mistakes 200 -- --num-parallel-games 256 --moves-per-iteration 8 --num-simulations 32 \
        --train-steps-per-iteration 16 --replay-size 200000

    # evaluate an existing run instead of training
    python benchmarks/alphazero.py --game connect_four --run runs/<run> --opponents mcts:1000

Training flags after ``--`` go to ``mbrl train alphazero`` unchanged. The
evaluation plays ``--num-games`` games per opponent, half in each colour, with
the agent searching ``--agent-simulations`` simulations per move (no noise).
"""

from __future__ import annotations

import dataclasses
import os
import platform
import sys
import time
from dataclasses import dataclass

import torch
import tyro
from rich.console import Console

from mbrl import games
from mbrl.algorithms.alphazero import AlphaZero, AlphaZeroConfig, PolicyPlayer
from mbrl.evaluation.arena import play_match
from mbrl.games.players import make_player


@dataclass(frozen=True, kw_only=True)
class Config:
    game: str = "tic_tac_toe"
    """Game to train on."""
    minutes: float = 4.5
    """Training budget in minutes (ignored with --run)."""
    run: str | None = None
    """Evaluate this run folder instead of training a new one."""
    opponents: tuple[str, ...] = ("minimax", "random")
    """Opponents (player specs, see `mbrl play --help`)."""
    num_games: int = 200
    """Games per opponent, half in each colour."""
    agent_simulations: int | None = None
    """Simulations per move of the agent in evaluation (None: the run's setting)."""
    mistakes: int = 0
    """Connect four: also measure the mistake rate on this many solver-scored positions."""
    seed: int = 0
    """Seed of training and of the opponents."""


def main(config: Config, train_args: list[str]) -> None:
    console = Console()
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    console.print(
        f"machine: {platform.machine()}, {os.cpu_count()} cpus, torch {torch.__version__}, "
        f"python {platform.python_version()}"
    )
    game = games.make(config.game)
    if config.run is None:
        train_config = tyro.cli(AlphaZeroConfig, args=train_args, prog="train")
        train_config = dataclasses.replace(
            train_config,
            game=config.game,
            seed=config.seed,
            max_minutes=config.minutes,
            num_iterations=max(train_config.num_iterations, 1_000_000),
        )
        trainer = AlphaZero(train_config.game, train_config, console=console)
        started = time.perf_counter()
        trainer.learn()
        console.print(
            f"trained {(time.perf_counter() - started) / 60:.1f} min: {trainer.counters['games']} "
            f"self-play games, {trainer.counters['iteration']} iterations, run {trainer.run_dir}"
        )
        run = trainer.run_dir
    else:
        run = config.run
    agent = AlphaZero.load(run).player(game, config.agent_simulations)
    console.print(f"agent: {agent.name}")
    rows = []
    for i, spec in enumerate(config.opponents):
        opponent = make_player(spec, game, seed=config.seed + 100 + i)
        started = time.perf_counter()
        result = play_match(game, agent, opponent, config.num_games)
        seconds = time.perf_counter() - started
        rows.append((spec, result))
        console.print(
            f"vs {spec}: {result.wins} wins, {result.draws} draws, {result.losses} losses "
            f"({result.wins / result.num_games:.1%} wins, {seconds:.0f} s)"
        )
    if config.mistakes:
        from mbrl.evaluation.mistakes import mistake_rate, solver_positions

        positions = solver_positions(config.mistakes, max_plies=14, seed=config.seed)
        policy = PolicyPlayer(game, agent.evaluator.net)
        for player in (agent, policy):
            report = mistake_rate(player, positions, game)
            console.print(
                f"mistake rate of {player.name}: {report.critical_rate:.1%} of critical positions "
                f"({report.num_mistakes}/{report.critical_positions}), {report.rate:.1%} of all "
                f"{report.num_positions}"
            )
    console.print()
    console.print("| opponent | games | wins | draws | losses | win rate |")
    console.print("|---|---|---|---|---|---|")
    for spec, r in rows:
        console.print(
            f"| {spec} | {r.num_games} | {r.wins} | {r.draws} | {r.losses} | "
            f"{r.wins / r.num_games:.1%} |"
        )


if __name__ == "__main__":
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    main(tyro.cli(Config, args=argv[:split]), argv[split + 1 :])
