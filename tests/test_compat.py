"""Run folders, sweeps and agents written before the layout by role still load and resume,
once converted from their pickled form (``mbrl convert``; opening them unconverted is
refused with that command).

``tests/data/v1`` holds tiny runs written by the version before it (PPO, DQN, SAC,
AlphaZero; one finished sweep cell naming ``mbrl.ppo:PPO``), made with::

    mbrl train ppo --env CartPole-v1 --total-steps 256 --num-steps 128 --batch-size 64 \\
        --num-epochs 1 --eval-episodes 1
    mbrl train dqn --env CartPole-v1 --total-steps 300 --learning-starts 100 \\
        --buffer-size 1000 --batch-size 16 --train-frequency 50 --gradient-steps 2 \\
        --hidden-sizes 16 16 --eval-episodes 1
    mbrl train sac --env Pendulum-v1 --total-steps 300 --learning-starts 100 \\
        --buffer-size 1000 --batch-size 16 --hidden-sizes 16 16 --eval-episodes 1
    mbrl train alphazero --game tic_tac_toe --num-iterations 2 --num-parallel-games 4 \\
        --moves-per-iteration 3 --num-simulations 4 --batch-size 8 \\
        --train-steps-per-iteration 1 --num-blocks 1 --channels 4 --eval-every 1 \\
        --eval-games 2 --eval-opponents random --replay-size 100
    mbrl bench --agents ppo --envs CartPole-v1 --seeds 0 --total-steps 256 \\
        --overrides ppo.num_steps=128 ppo.batch_size=64 ppo.num_epochs=1 ppo.eval_episodes=1
"""

from __future__ import annotations

import dataclasses
import importlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from mbrl import games
from mbrl.algorithms.alphazero import AlphaZero
from mbrl.algorithms.dqn import DQN
from mbrl.algorithms.ppo import PPO
from mbrl.algorithms.sac import SAC
from mbrl.evaluation.bench import BenchConfig, run_sweep
from mbrl.training.convert import convert
from mbrl.training.datafile import OldFormatError

V1 = Path(__file__).parent / "data" / "v1"

pytestmark = pytest.mark.usefixtures("one_thread")


def copy(name: str, tmp_path: Path) -> Path:
    """A writable copy (resuming writes to the run folder), converted to data-only files."""
    run = Path(shutil.copytree(V1 / name, tmp_path / name))
    for cell in [run, *sorted(run.glob("*-seed*"))]:
        if (cell / "checkpoints").is_dir():
            convert(cell)
    return run


@pytest.mark.parametrize("name", ["ppo-CartPole-v1", "alphazero-tic_tac_toe"])
def test_an_unconverted_run_is_refused_with_the_command(name):
    with pytest.raises(OldFormatError, match="mbrl convert"):
        (AlphaZero if name.startswith("alphazero") else PPO).load(V1 / name)


def test_old_module_names_are_the_new_modules():
    for old, new in [
        ("mbrl.sac", "mbrl.algorithms.sac"),
        ("mbrl.replay", "mbrl.training.replay"),
        ("mbrl.bench", "mbrl.evaluation.bench"),
        ("mbrl.evaluators", "mbrl.planners.evaluators"),
    ]:
        assert importlib.import_module(old) is importlib.import_module(new)
    from mbrl.ppo import PPO as OldPPO  # the target an old sweep's cell.json names

    assert OldPPO is PPO


@pytest.mark.parametrize(
    ("cls", "name", "steps", "obs"),
    [
        (PPO, "ppo-CartPole-v1", 256, np.zeros((3, 4), np.float32)),
        (DQN, "dqn-CartPole-v1", 300, np.zeros((3, 4), np.float32)),
        (SAC, "sac-Pendulum-v1", 300, np.zeros((3, 3), np.float32)),
    ],
)
def test_old_gymnasium_runs_load_and_resume(tmp_path, cls, name, steps, obs):
    run = copy(name, tmp_path)
    agent = cls.load(run)
    assert agent.counters["steps"] == steps  # the old counter names map to `steps`
    assert agent.predict(obs).shape[0] == 3
    resumed = cls.resume(run)
    assert resumed.counters["steps"] == steps
    if cls is not PPO:
        assert resumed.replay.size == steps  # the replay came back with the run
    resumed.learn(steps + 128)
    assert resumed.counters["steps"] >= steps + 128
    # the weights moved on from the old checkpoint's
    old = cls.load(copy(name, tmp_path / "again"))
    net = "policy" if cls is PPO else "q_net" if cls is DQN else "actor"
    before = torch.nn.utils.parameters_to_vector(getattr(old, net).parameters())
    after = torch.nn.utils.parameters_to_vector(getattr(resumed, net).parameters())
    assert not torch.equal(before, after)


def test_an_old_alphazero_run_loads_plays_and_resumes(tmp_path):
    run = copy("alphazero-tic_tac_toe", tmp_path)
    game = games.make("tic_tac_toe")
    player = AlphaZero.load(run).player(game)
    assert player.act(game.initial_state(2), [[], []]).shape == (2,)
    resumed = AlphaZero.resume(run)
    # (that version did not count the moves of an iteration in which no game ended)
    assert resumed.counters["iteration"] == 2 and resumed.counters["steps"] == 12
    resumed.config = dataclasses.replace(resumed.config, num_iterations=3)  # extend it
    resumed.learn()
    assert resumed.counters["iteration"] == 3 and resumed.counters["steps"] == 12 + 4 * 3


def test_an_old_sweep_resumes_its_unfinished_cell(tmp_path):
    sweep = copy("sweep", tmp_path)
    cell = sweep / "ppo-CartPole-v1-seed0"
    (cell / "done").unlink()  # as if the sweep had been killed before the marker
    run_sweep(BenchConfig(resume=str(sweep), num_workers=0))
    assert (cell / "done").exists()
    assert PPO.resume(cell).counters["steps"] == 256
