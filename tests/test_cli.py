"""The command line, end to end (small settings)."""

import io
from pathlib import Path

import pytest
from rich.console import Console

from mbrl import cli


@pytest.fixture
def output(monkeypatch):
    buffer = io.StringIO()
    monkeypatch.setattr(cli, "console", Console(file=buffer, width=120, highlight=False))
    return buffer


def test_games_lists_native_games(output):
    cli.main(["games"])
    text = output.getvalue()
    assert all(name in text for name in ("connect_four", "othello", "tic_tac_toe", "openspiel:"))


def test_play_two_computer_players(output):
    cli.main(["play", "tic_tac_toe", "--x", "minimax", "--o", "minimax", "--num-games", "2"])
    text = output.getvalue()
    assert text.count("draw") >= 2 and "minimax plays" in text


def test_human_gets_a_message_not_a_traceback(output, monkeypatch):
    answers = iter(["nonsense", "b2", "q"])
    monkeypatch.setattr(cli.console, "input", lambda prompt="": next(answers))
    cli.main(["play", "tic_tac_toe", "--x", "human", "--o", "minimax"])
    text = output.getvalue()
    assert "not a tic-tac-toe move" in text and "bye" in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["play", "chequers"], "unknown game"),
        (["play", "tic_tac_toe", "--x", "bogus"], "unknown player"),
        (["play", "othello", "--o", "solver"], "no solver"),
        (["train", "alphagoose"], "unknown algorithm"),
        (["train", "sac", "--threads", "0"], "--threads"),
        (["train", "ppo", "--threads"], "--threads"),
        (["train", "alphazero", "--num-simulations", "0"], "num_simulations"),
        (["play", "tic_tac_toe", "--o", "agent:/no/such/run"], "no agent"),
        (["play", "connect_four", "--o", "agent:connect_four,proof=-1"], "P plies >= 0"),
    ],
)
def test_bad_input_exits_with_a_message(output, capsys, argv, message):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    # Our own errors go to the console; tyro reports config validation on stderr.
    assert message in output.getvalue() + capsys.readouterr().err


def test_train_resume_eval_and_play_an_agent(output, tmp_path):
    flags = [
        "--game",
        "tic_tac_toe",
        "--num-iterations",
        "2",
        "--num-parallel-games",
        "8",
        "--moves-per-iteration",
        "5",
        "--num-simulations",
        "8",
        "--batch-size",
        "16",
        "--train-steps-per-iteration",
        "2",
        "--num-blocks",
        "1",
        "--channels",
        "8",
        "--eval-every",
        "1",
        "--eval-games",
        "2",
        "--eval-opponents",
        "random",
        "--run-dir",
        str(tmp_path),
    ]
    cli.main(["train", "alphazero", *flags])
    (run,) = list(Path(tmp_path).iterdir())
    assert (run / "checkpoints" / "agent.safetensors").exists()
    cli.main(["train", "alphazero", "--resume", str(run)])
    assert "resuming" in output.getvalue()
    cli.main(["eval", "tic_tac_toe", "--players", f"agent:{run}@4", "random", "--num-games", "2"])
    assert "Elo" in output.getvalue()
    cli.main(["play", "tic_tac_toe", "--x", f"agent:{run}", "--o", "random"])
    assert "agent@" in output.getvalue()
