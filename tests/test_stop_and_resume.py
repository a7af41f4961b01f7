"""Runs stop and resume as a user expects: signals leave a checkpoint and a non-zero exit,
a killed run resumes, resume extends the budget and refuses other flags, and bad
settings are refused at start (before any training)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numba
import pytest
import torch
from rich.console import Console

from mbrl import cli
from mbrl.algorithms.ppo import PPO
from mbrl.training.checkpoint import read_agent_file

pytestmark = pytest.mark.usefixtures("one_thread")

SAC_FLAGS = ["--env", "Pendulum-v1", "--total-steps", "1000000", "--learning-starts", "100"]
SAC_FLAGS += ["--batch-size", "32", "--hidden-sizes", "16", "16", "--eval-every", "1000000"]
AZ_FLAGS = ["--game", "tic_tac_toe", "--num-iterations", "100000", "--num-parallel-games", "8"]
AZ_FLAGS += ["--moves-per-iteration", "3", "--num-simulations", "4", "--batch-size", "8"]
AZ_FLAGS += ["--train-steps-per-iteration", "1", "--num-blocks", "1", "--channels", "4"]
AZ_FLAGS += ["--eval-every", "100000", "--eval-games", "2", "--eval-opponents", "random"]
PPO_FLAGS = ["--env", "CartPole-v1", "--num-steps", "128", "--batch-size", "64"]
PPO_FLAGS += ["--num-epochs", "1", "--eval-episodes", "1"]


@pytest.fixture
def output(monkeypatch):
    buffer = io.StringIO()
    monkeypatch.setattr(cli, "console", Console(file=buffer, width=200, highlight=False))
    return buffer


def start_training(tmp_path: Path, algorithm: str, flags: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "mbrl", "train", algorithm, "--threads", "1"]
    command += [*flags, "--run-dir", str(tmp_path)]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )


def wait_for_checkpoint(tmp_path: Path, process: subprocess.Popen, timeout=120.0) -> Path:
    """The run folder once its first checkpoint is written."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = list(tmp_path.glob("*/checkpoints/latest.safetensors"))
        if found:
            return found[0].parent.parent
        if process.poll() is not None:
            raise AssertionError(f"training ended early:\n{process.stdout.read()}")
        time.sleep(0.2)
    process.kill()
    raise AssertionError("no checkpoint within the timeout")


@pytest.mark.parametrize(
    ("algorithm", "flags", "signum"),
    [("sac", SAC_FLAGS, signal.SIGINT), ("alphazero", AZ_FLAGS, signal.SIGTERM)],
)
def test_a_signal_leaves_a_checkpoint_and_a_non_zero_exit(tmp_path, algorithm, flags, signum):
    process = start_training(tmp_path, algorithm, flags)
    run = wait_for_checkpoint(tmp_path, process)
    first = read_agent_file(_cls(algorithm), _latest(run))
    time.sleep(1.0)  # some training past the first checkpoint
    process.send_signal(signum)
    text, _ = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, text
    assert "run folder" in text.splitlines()[0]  # a first plain line at start
    assert f"checkpoint {run / 'checkpoints' / 'latest.safetensors'}" in text
    assert f"--resume {run}" in text
    last = read_agent_file(_cls(algorithm), _latest(run))
    assert last["training"] and last["counters"]["steps"] > first["counters"]["steps"]
    resumed = _cls(algorithm).resume(run)
    assert resumed.counters == last["counters"]


def _cls(algorithm: str) -> type:
    from mbrl.registry import agent_class

    return agent_class(algorithm)


def _latest(run: Path) -> Path:
    return run / "checkpoints" / "latest.safetensors"


def test_a_run_killed_without_warning_resumes_from_its_checkpoint(tmp_path):
    process = start_training(tmp_path, "ppo", [*PPO_FLAGS, "--total-steps", "100000000"])
    run = wait_for_checkpoint(tmp_path, process)
    process.kill()  # SIGKILL: nothing runs after it
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    agent = PPO.resume(run)
    done = agent.counters["steps"]
    assert done > 0
    agent.learn(done + 256)
    assert agent.counters["steps"] >= done + 256
    steps = [float(line.split(",")[0]) for line in (run / "progress.csv").read_text().split()[1:]]
    assert steps == sorted(steps)


def test_resume_extends_a_finished_run_and_refuses_other_flags(tmp_path, output, capsys):
    cli.main(["train", "ppo", *PPO_FLAGS, "--total-steps", "256", "--run-dir", str(tmp_path)])
    (run,) = list(tmp_path.iterdir())
    assert PPO.resume(run).counters["steps"] == 256
    cli.main(["train", "ppo", "--resume", str(run), "--total-steps", "512"])
    resumed = PPO.resume(run)
    assert resumed.counters["steps"] == 512 and resumed.config.total_steps == 512
    for flags, message in [
        (["--bogus", "3"], "unknown flag --bogus"),
        (["--learning-rate", "0.1"], "would change the experiment"),
        (["--total-steps", "0"], "total_steps"),
    ]:
        with pytest.raises(SystemExit) as info:
            cli.main(["train", "ppo", "--resume", str(run), *flags])
        assert info.value.code == 2
        assert message in output.getvalue() + capsys.readouterr().err
    assert PPO.resume(run).counters["steps"] == 512  # nothing ran


def bad_settings():
    cases = [
        (["train", "sac", "--env", "Pendulum-v1", "--device", "foo"], "device"),
        (["train", "alphazero", "--device", "foo"], "device"),
        (["train", "alphazero", "--eval-opponents", "mcts:abc"], "mcts:N"),
        (["train", "alphazero", "--eval-opponents", "solver", "--game", "othello"], "no solver"),
        (["train", "alphazero", "--eval-opponents", "grandmaster"], "unknown player"),
        (["play", "connect_four", "--x", "agent:connect_four@abc"], "agent:<run>@N"),
        (["eval", "connect_four", "--players", "agent:connect_four@0", "random"], "@N"),
        (["train", "ppo", "--resume"], "--resume needs a run folder"),
    ]
    if not torch.cuda.is_available():
        cases.append((["train", "dqn", "--device", "cuda"], "device"))
    return cases


@pytest.mark.parametrize(("argv", "message"), bad_settings())
def test_bad_settings_are_refused_at_start(output, capsys, tmp_path, argv, message):
    with pytest.raises(SystemExit) as info:
        cli.main([*argv, *(["--run-dir", str(tmp_path)] if argv[0] == "train" else [])])
    assert info.value.code == 2
    assert message in output.getvalue() + capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # no run folder: nothing started


def test_help_lists_train_and_the_run_flags(output, capsys):
    cli.main(["--help"])
    assert "train" in output.getvalue() and "bench" in output.getvalue()
    with pytest.raises(SystemExit):
        cli.main(["train", "sac", "--help"])
    text = capsys.readouterr().out + output.getvalue()
    assert "--resume" in text and "--threads" in text and "--total-steps" in text


def test_threads_bound_torch_and_numba():
    before = (torch.get_num_threads(), numba.get_num_threads())
    try:
        assert cli._pop_threads(["--threads", "1", "--seed", "3"]) == ["--seed", "3"]
        assert (torch.get_num_threads(), numba.get_num_threads()) == (1, 1)
    finally:
        torch.set_num_threads(before[0])
        numba.set_num_threads(before[1])


def test_play_an_agent_whose_run_has_only_latest(output, tmp_path):
    flags = [*AZ_FLAGS[:2], "--num-iterations", "1", *AZ_FLAGS[4:], "--run-dir", str(tmp_path)]
    cli.main(["train", "alphazero", *flags])
    (run,) = list(tmp_path.iterdir())
    (run / "checkpoints" / "agent.safetensors").unlink()
    cli.main(["play", "tic_tac_toe", "--x", f"agent:{run}", "--o", "random"])
    assert "agent@" in output.getvalue()
