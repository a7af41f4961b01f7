"""The ``mbrl`` command line (generated from config dataclasses with tyro).

mbrl games                                   list the games
mbrl play connect_four --x human --o solver  play in the terminal
mbrl demo                                    the main job at this stage
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Annotated, Literal

import torch
import tyro
from rich.console import Console
from rich.table import Table

from mbrl import games
from mbrl.evaluation.arena import play_games
from mbrl.evaluation.bench import BenchConfig
from mbrl.evaluation.report import ReportConfig
from mbrl.games.players import QuitGame, make_player, player_specs
from mbrl.model import SymmetricGame, UnknownNameError
from mbrl.training.config import at_least
from mbrl.training.convert import ConvertCommand
from mbrl.training.run import RunInterrupted

console = Console(highlight=False, soft_wrap=True)  # paths in messages stay whole


@dataclass(frozen=True, kw_only=True)
class GamesCommand:
    """List the games `mbrl play` and the planners accept."""


@dataclass(frozen=True, kw_only=True)
class PlayCommand:
    """Play a board game in the terminal: any two of human, random, mcts:N, solver."""

    game: Annotated[str, tyro.conf.Positional]
    """Game name, see `mbrl games` (e.g. connect_four, tic_tac_toe, othello, openspiel:hex)."""
    x: str = "human"
    """The first player: human | random | mcts:N (OpenSpiel MCTS, N simulations) | solver."""
    o: str = "solver"
    """The second player, same choices as --x."""
    num_games: int = 1
    """Games to play in a row."""
    seed: int = 0
    """Seed of the computer players."""

    flag_names = True  # errors name the flags (--num-games)

    def __post_init__(self):
        at_least(self, 1, "num_games")


@dataclass(frozen=True, kw_only=True)
class EvalCommand:
    """Round robin between players: win/draw/loss for each pair, both colours, and Elo."""

    game: Annotated[str, tyro.conf.Positional]
    """Game name (see `mbrl games`)."""
    players: tuple[str, ...] = ("random", "mcts:100")
    """Player specs: random | mcts:N | solver | minimax | agent:<run dir or checkpoint>[@N]."""
    num_games: int = 20
    """Games per pair (half in each colour)."""
    seed: int = 0
    """Seed of the computer players."""
    mistakes: int = 0
    """Connect four only: also measure each player's mistake rate against the solver
    (bitbully) on this many seeded positions; with one player, only this is done."""
    benchmark: Literal["pons"] | None = None
    """Connect four only: instead of games, each player's mistake rate on Pascal Pons'
    six public sets (``pons``; every move's exact score is vendored, no solver needed)."""
    per_set: int = 1000
    """Positions of each Pons set (the first ones of its file; all: 1000)."""

    flag_names = True

    def __post_init__(self):
        if len(self.players) < (1 if self.mistakes or self.benchmark else 2):
            raise ValueError(
                "--players needs at least two players (one with --mistakes or --benchmark)"
            )
        at_least(self, 1, "num_games")
        at_least(self, 0, "mistakes")
        at_least(self, 1, "per_set")
        if self.benchmark and self.game.removeprefix("openspiel:") != "connect_four":
            raise ValueError(f"--benchmark pons is for connect_four, not {self.game}")
        if self.mistakes and self.game.removeprefix("openspiel:") != "connect_four":
            raise ValueError(f"--mistakes is for connect_four, not {self.game}")


@dataclass(frozen=True, kw_only=True)
class DemoCommand:
    """The main job: train an AlphaZero agent from scratch, evaluate it, and show it play."""

    game: str = "tic_tac_toe"
    """Game to learn (tic_tac_toe trains in minutes on a laptop CPU)."""
    minutes: float = 3.0
    """Training budget in minutes."""
    eval_games: int = 100
    """Games against each reference player (half in each colour)."""
    seed: int = 0
    """Seed of the run."""
    run_dir: str = "runs"
    """Folder for the run folder."""


def run_games() -> None:
    table = Table(title="games (any sequential perfect-information OpenSpiel game also works)")
    for column in ("name", "actions", "observation", "max plies", "symmetries"):
        table.add_column(column)
    for name in games.available():
        if name.startswith(games.OPENSPIEL_PREFIX):
            table.add_row(name, "", "", "", "")
            continue
        game = games.make(name)
        spec = game.spec
        table.add_row(
            name,
            str(spec.num_actions),
            "x".join(map(str, spec.obs_shape)),
            str(spec.max_episode_length),
            str(game.num_symmetries if isinstance(game, SymmetricGame) else 1),
        )
    console.print(table)


def build_player(spec: str, game, seed: int = 0, **human_io):
    """A player from its spec; ``agent:<run, checkpoint or shipped name>[@simulations]
    [,proof=P]`` is a trained AlphaZero agent (searching with that many simulations, after
    a root proof search of P plies; default: the agent's ``eval_proof_plies``, 0: off)."""
    if spec.startswith("agent:"):
        from mbrl.algorithms.alphazero import AlphaZero

        rest, _, proof = spec.removeprefix("agent:").partition(",proof=")
        path, _, sims = rest.partition("@")
        if sims and not (sims.isdigit() and int(sims) >= 1):
            raise ValueError(f"player {spec!r}: write agent:<run>@N with N simulations >= 1")
        if ",proof=" in spec and not proof.isdigit():
            raise ValueError(f"player {spec!r}: write agent:<run>,proof=P with P plies >= 0")
        agent = AlphaZero.load(path)
        return agent.player(game, int(sims) if sims else None, seed, int(proof) if proof else None)
    return make_player(spec, game, seed, **human_io)


def _play(game_name: str, x: str, o: str, num_games: int, seed: int) -> None:
    game = games.make(game_name)
    io = {"read": console.input, "write": lambda text: console.print(f"[red]{text}[/red]")}
    specs = [x, o]
    score = {x: 0.0, o: 0.0} if x != o else {}
    for g in range(num_games):
        first, second = specs if g % 2 == 0 else specs[::-1]
        players = [
            build_player(s, game, seed + 2 * g + i, **io) for i, s in enumerate((first, second))
        ]
        console.rule(f"game {g + 1}: x = {first}, o = {second}")
        console.print(game.render(game.initial_state(1)))

        def show(state, rows, actions, p, players=players):
            mover = players[p]
            move = game.action_to_string(int(actions[0]))
            console.print(f"\n{mover.name} plays [bold]{move}[/bold]")
            console.print(game.render(state[rows[:1]]))

        records = play_games(game, players[0], players[1], 1, on_move=show)
        result = records.returns[0, 0]
        if score:
            score[first] += (result + 1) / 2
            score[second] += (1 - result) / 2
    if score and num_games > 1:
        console.print(" | ".join(f"{name}: {points:g} points" for name, points in score.items()))


def run_play(cmd: PlayCommand) -> None:
    _play(cmd.game, cmd.x, cmd.o, cmd.num_games, cmd.seed)


def run_demo(cmd: DemoCommand) -> None:
    from mbrl.algorithms.alphazero import AlphaZero, AlphaZeroConfig
    from mbrl.evaluation.arena import round_robin

    console.print(
        f"[bold]mbrl demo[/bold]: AlphaZero (Gumbel root, batched MCTS) learns {cmd.game} "
        f"from scratch for {cmd.minutes:g} minutes, then plays the reference players"
    )
    config = AlphaZeroConfig(
        game=cmd.game,
        seed=cmd.seed,
        num_iterations=10_000,
        max_minutes=cmd.minutes,
        eval_every=10,
        eval_games=20,
        run_dir=cmd.run_dir,
    )
    trainer = AlphaZero(cmd.game, config, console=console)
    trainer.learn()
    game = games.make(cmd.game)
    agent = AlphaZero.load(trainer.run_dir).player(game)
    reference = "solver" if cmd.game in {"tic_tac_toe", "connect_four"} else "mcts:200"
    players = [agent, make_player(reference, game, cmd.seed), make_player("random", game, cmd.seed)]
    console.rule("evaluation")
    console.print(round_robin(game, players, cmd.eval_games, console=console).render())
    console.rule(f"one game: {agent.name} (x) against {players[1].name} (o)")
    records = play_games(game, agent, players[1], 1)
    state = game.initial_state(1)
    for action in records.histories[0]:
        state = game.step(state, torch.tensor([action])).state
    console.print(game.render(state))
    console.print(
        f"play it yourself: .venv/bin/mbrl play {cmd.game} --x human --o agent:{trainer.run_dir}"
    )


def run_eval(cmd: EvalCommand) -> None:
    from mbrl.evaluation.arena import round_robin

    game = games.make(cmd.game)
    players = [build_player(spec, game, cmd.seed + i) for i, spec in enumerate(cmd.players)]
    if cmd.benchmark:
        from mbrl.evaluation.pons import pons_benchmark, pons_table

        def progress(name, player, report):
            console.print(f"{name}: {player} {100 * report.rate:.1f}% ({report.num_mistakes})")

        results = pons_benchmark(players, game, cmd.per_set, progress=progress)
        console.print(pons_table(cmd.players, results))
        return
    if len(players) > 1:
        table = round_robin(game, players, cmd.num_games, console=console)
        console.print(table.render())
    if cmd.mistakes:
        from mbrl.evaluation.mistakes import mistake_rate, mistakes_table, solver_positions

        positions = solver_positions(cmd.mistakes, seed=cmd.seed)
        reports = [mistake_rate(player, positions, game) for player in players]
        console.print(mistakes_table(cmd.players, reports))


def set_threads(num_threads: int) -> None:
    """Bound every compute thread of this process: torch's and the numba kernels'."""
    from mbrl.planners.threads import set_num_threads

    torch.set_num_threads(num_threads)
    set_num_threads(num_threads)


def _pop_threads(rest: list[str]) -> list[str]:
    """Apply and remove ``--threads N`` (torch and numba threads; default: every core)."""
    if "--threads" not in rest:
        return rest
    i = rest.index("--threads")
    value = rest[i + 1] if i + 1 < len(rest) else ""
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"--threads needs a whole number >= 1, got {value!r}")
    set_threads(int(value))
    return rest[:i] + rest[i + 2 :]


def _pop_resume(rest: list[str]) -> tuple[str | None, list[str]]:
    """``(run folder, the other flags)`` of ``--resume RUN``."""
    if "--resume" not in rest:
        return None, rest
    i = rest.index("--resume")
    if i + 1 >= len(rest) or rest[i + 1].startswith("--"):
        raise ValueError("--resume needs a run folder")
    return rest[i + 1], rest[:i] + rest[i + 2 :]


TRAIN_FLAGS = """run flags (besides the config flags below):
  --threads N     torch and numba threads (default: all cores; the small MLP agents
                  run about as fast on 1 and leave the other cores free)
  --resume RUN    continue the run folder RUN from its last checkpoint; only the
                  budget flags ({budget}) may be given with it, to extend the run

Ctrl-C (SIGINT) or SIGTERM finishes the current iteration, writes a checkpoint,
says where, and exits with 130 (143)."""


def _resumed(cls: type, run: str, flags: list[str], prog: str):
    """The agent of ``run`` with its budget flags applied; any other flag is refused."""
    import dataclasses

    fields = {f.name for f in dataclasses.fields(cls.Config)}
    for flag in flags:
        if not flag.startswith("--"):
            continue
        name = flag[2:].split("=")[0].replace("-", "_")
        if name not in fields:
            raise ValueError(f"unknown flag {flag.split('=')[0]} for mbrl train {cls.algo}")
        if name not in cls.budget_fields:
            budget = ", ".join("--" + f.replace("_", "-") for f in cls.budget_fields)
            raise ValueError(
                f"{flag.split('=')[0]} would change the experiment of {run}; a resumed run "
                f"keeps its config and takes only its budget ({budget}); start a new run instead"
            )
    agent = cls.resume(run, console=console)
    if flags:  # the budget, parsed and checked like any config
        agent.config = tyro.cli(cls.Config, args=flags, default=agent.config, prog=prog)
    return agent


def run_train(args: list[str]) -> None:
    """``mbrl train <algorithm> [--threads N] [--resume RUN] [config flags]``."""
    from mbrl.registry import agent_class, available_agents

    algorithms = available_agents()
    if not args or args[0] in {"-h", "--help"}:
        console.print(
            f"usage: mbrl train {{{','.join(algorithms)}}} [--threads N] [--resume RUN] [flags]\n"
            "  mbrl train <algorithm> --help lists the algorithm's flags\n"
            + TRAIN_FLAGS.format(budget="--total-steps; alphazero: --num-iterations, --max-minutes")
        )
        return
    cls = agent_class(args[0])
    prog = f"mbrl train {cls.algo}"
    run, rest = _pop_resume(_pop_threads(args[1:]))
    if "-h" in rest or "--help" in rest:
        budget = ", ".join("--" + f.replace("_", "-") for f in cls.budget_fields)
        tyro.cli(
            cls.Config, args=["--help"], prog=prog, description=TRAIN_FLAGS.format(budget=budget)
        )
    if run is not None:
        agent = _resumed(cls, run, rest, prog)
    else:
        config = tyro.cli(cls.Config, args=rest, prog=prog)
        agent = cls(cls.world_of(config), config, console=console)
    agent.learn(getattr(agent.config, "total_steps", None))  # the run prints its summary


def run_bench(cmd: BenchConfig) -> None:
    from mbrl.evaluation.bench import run_sweep

    run_sweep(cmd, console=console)


def run_convert(cmd) -> None:
    from mbrl.training.convert import run_convert as convert_files

    convert_files(cmd, console)


def run_report(cmd: ReportConfig) -> None:
    from mbrl.evaluation.report import write_report

    console.print(f"report: {write_report(cmd)}")


COMMANDS = {
    "games": (GamesCommand, lambda cmd: run_games()),
    "play": (PlayCommand, run_play),
    "eval": (EvalCommand, run_eval),
    "demo": (DemoCommand, run_demo),
    "bench": (BenchConfig, run_bench),
    "report": (ReportConfig, run_report),
    "convert": (ConvertCommand, run_convert),
}


def _usage() -> None:
    """``mbrl --help``: every command, ``train`` included."""
    console.print(
        "usage: mbrl {train,games,play,eval,demo,bench,report,convert} [--help] [flags]\n"
    )
    rows = [("train", "Train an agent: mbrl train <algorithm> [--resume RUN] [--threads N] ...")]
    rows += [
        (name, (cls.__doc__ or "").strip().splitlines()[0]) for name, (cls, _) in COMMANDS.items()
    ]
    for name, text in rows:
        console.print(f"  {name:<8} {text}")
    console.print("\n`mbrl <command> --help` lists the flags of a command.")


def main(argv: list[str] | None = None) -> None:
    set_threads(len(os.sched_getaffinity(0)))
    args = sys.argv[1:] if argv is None else argv
    try:
        if not args or args[0] in {"-h", "--help"}:
            _usage()
            return
        if args[0] == "train":
            run_train(args[1:])
            return
        cmd = tyro.extras.subcommand_cli_from_dict(
            {name: cls for name, (cls, _) in COMMANDS.items()}, args=args, prog="mbrl"
        )
        for cls, run in COMMANDS.values():
            if isinstance(cmd, cls):
                run(cmd)
    except (UnknownNameError, ValueError, ImportError, FileNotFoundError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise SystemExit(2) from None
    except RunInterrupted as stop:
        raise SystemExit(stop.exit_code) from None
    except KeyboardInterrupt:  # a second Ctrl-C during training, or one outside it
        console.print("bye")
        raise SystemExit(130) from None
    except QuitGame:
        console.print("bye")


__all__ = ["main", "player_specs"]
