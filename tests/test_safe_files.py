"""Opening a file runs none of its code: agent files, checkpoints and sweep cells hold data
only, crafted pickles are refused unread by every way in, and the shipped agent plays
as it did before its conversion."""

from __future__ import annotations

import dataclasses
import io
import json
import pickle
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.envs.classic_control import CartPoleEnv
from rich.console import Console

from mbrl import games
from mbrl.algorithms.alphazero import AlphaZero
from mbrl.cli import main
from mbrl.evaluation.bench import BenchConfig, run_sweep
from mbrl.evaluation.report import ReportConfig, write_report
from mbrl.pretrained import resolve_agent_path
from mbrl.registry import agent_class, available_agents
from mbrl.training.convert import convert
from mbrl.training.datafile import OldFormatError, read_data, write_data

pytestmark = pytest.mark.usefixtures("one_thread")

DATA = Path(__file__).parent / "data"


class Payload:
    """Unpickling this creates ``marker``: the proof that a file's code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def crafted_files(folder: Path, algo: str) -> tuple[Path, list[Path]]:
    """A marker path and crafted files of each form: a ``torch.save`` zip claiming the
    agent's format, a bare pickle, and the zip under the new file's name."""
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / "ran"
    payload = {"format": f"mbrl.{algo}/1", "config": {}, "state": Payload(marker)}
    files = [folder / "evil.pt", folder / "evil.pkl", folder / "evil.safetensors"]
    torch.save(payload, files[0])
    files[1].write_bytes(pickle.dumps(payload, protocol=2))
    shutil.copy(files[0], files[2])
    assert not marker.exists()
    return marker, files


def crafted_run(folder: Path, algo: str, name: str) -> tuple[Path, Path]:
    """A run folder whose checkpoint is a crafted pickle (old name or new name)."""
    marker, files = crafted_files(folder, algo)
    run = folder / "run"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(files[0], run / "checkpoints" / name)
    (run / "config.json").write_text("{}")
    return marker, run


@pytest.mark.parametrize("algo", available_agents())
def test_every_agent_load_and_resume_refuse_a_crafted_file(tmp_path, algo):
    cls = agent_class(algo)
    marker, files = crafted_files(tmp_path, algo)
    for file in files:
        with pytest.raises(ValueError, match="not opened because unpickling can run code"):
            cls.load(file)
    for name in ("latest.pt", "latest.safetensors"):
        run_marker, run = crafted_run(tmp_path / name, algo, name)
        with pytest.raises(ValueError, match="mbrl convert"):
            cls.resume(run)
        with pytest.raises(ValueError, match="mbrl convert"):
            cls.load(run)
        assert not run_marker.exists()
    assert not marker.exists()


def test_the_command_line_refuses_crafted_files(tmp_path, capsys):
    marker, files = crafted_files(tmp_path, "alphazero")
    _, run = crafted_run(tmp_path / "ppo", "ppo", "latest.pt")
    commands = [
        ["play", "connect_four", "--x", "random", "--o", f"agent:{files[0]}"],
        ["eval", "connect_four", "--players", "random", f"agent:{files[2]}", "--num-games", "2"],
        ["train", "ppo", "--resume", str(run)],
    ]
    for argv in commands:
        with pytest.raises(SystemExit) as stop:
            main(argv)
        assert stop.value.code == 2, argv
        assert "mbrl convert" in capsys.readouterr().out, argv
    assert not marker.exists() and not (tmp_path / "ppo" / "ran").exists()


def test_a_sweep_with_a_crafted_cell_is_refused_and_reported_without_running_it(tmp_path):
    sweep = Path(shutil.copytree(DATA / "v1" / "sweep", tmp_path / "sweep"))
    cell = sweep / "ppo-CartPole-v1-seed0"
    marker, files = crafted_files(tmp_path, "ppo")
    shutil.copy(files[0], cell / "checkpoints" / "latest.pt")
    report = write_report(ReportConfig(sweep=str(sweep)))  # reads progress.csv and JSON only
    assert report.exists()
    (cell / "done").unlink()  # unfinished: the sweep would resume it from the checkpoint
    out = io.StringIO()
    run_sweep(
        BenchConfig(resume=str(sweep), num_workers=0), console=Console(file=out, soft_wrap=True)
    )
    assert "failed" in out.getvalue() and "mbrl convert" in out.getvalue()
    assert not (cell / "done").exists() and not marker.exists()


def test_files_hold_plain_data_and_refuse_objects(tmp_path):
    payload = {
        "format": "mbrl.test/1",
        "weights": torch.randn(3, 2),
        "replay": np.arange(6, dtype=np.float32).reshape(2, 3),
        "rng": np.random.default_rng(0).bit_generator.state,
        "optimizer": {"state": {0: {"step": torch.tensor(3.0)}}, "betas": (0.9, 0.999)},
        "counters": {"steps": 10, "lr": np.float32(0.5)},
    }
    path = write_data(payload, tmp_path / "file.safetensors")
    back = read_data(path)
    torch.testing.assert_close(back["weights"], payload["weights"], rtol=0, atol=0)
    np.testing.assert_array_equal(back["replay"], payload["replay"])
    assert back["rng"] == payload["rng"] and back["optimizer"]["betas"] == (0.9, 0.999)
    assert back["optimizer"]["state"][0]["step"] == 3.0
    assert type(back["counters"]["lr"]) is np.float32
    for bad in (b"pickled bytes", object(), np.array([object()])):
        with pytest.raises(TypeError, match=r"payload\.x"):
            write_data({"x": bad}, tmp_path / "bad.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json")
    with pytest.raises(ValueError, match="not an mbrl file or is corrupt"):
        read_data(tmp_path / "junk.safetensors")


def test_the_shipped_agent_plays_as_recorded():
    """``connect_four_moves.json``: the network outputs (logits, values) and raw-policy
    moves of the shipped agent, recorded when it was shipped, on 32 positions of seeded
    random plies (the file is read, weights and all, as every user reads it)."""
    from mbrl.training.selfplay import NetworkEvaluator, PolicyPlayer

    recorded = json.loads((DATA / "connect_four_moves.json").read_text())
    game = games.make("connect_four")
    rng = np.random.default_rng(2026)
    state, histories = game.initial_state(32), []
    for row in range(32):
        s, moves = game.initial_state(1), []
        for _ in range(int(rng.integers(0, 20))):
            action = int(rng.choice(np.flatnonzero(game.legal_actions(s)[0].numpy())))
            after = game.step(s, torch.tensor([action]))
            if bool(after.terminal[0]):
                break
            s = after.state
            moves.append(action)
        state[row], histories = s[0], [*histories, moves]
    assert histories == recorded["positions"]
    net = AlphaZero.load("connect_four").net
    evaluation = NetworkEvaluator(game, net).evaluate(state)
    # Bit for bit on the machine that recorded them; another CPU's convolution kernels
    # round differently in the last float bits, so the check allows that much.
    np.testing.assert_allclose(evaluation.logits.numpy(), recorded["logits"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(evaluation.value.numpy(), recorded["values"], rtol=0, atol=1e-5)
    assert PolicyPlayer(game, net).act(state, histories).tolist() == recorded["policy_moves"]


def test_convert_writes_data_only_files_that_load(tmp_path):
    run = Path(shutil.copytree(DATA / "v1" / "dqn-CartPole-v1", tmp_path / "dqn"))
    with pytest.raises(OldFormatError, match=f"mbrl convert {run}"):
        agent_class("dqn").load(run)
    written = convert(run)
    assert [p.name for p in written] == ["latest.safetensors"]
    payload = read_data(written[0])
    assert payload["format"].startswith("mbrl.dqn/")
    agent = agent_class("dqn").resume(run)
    assert agent.counters["steps"] == 300 and agent.replay.size == 300
    with pytest.raises(ValueError, match="nothing to convert"):
        convert(written[0])


class _Handle:
    """Something an env keeps that is not data (a simulator handle, a socket)."""


class HandleCartPole(CartPoleEnv):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.handle = _Handle()


HANDLE_ID = "mbrl-tests/HandleCartPole-v0"
if HANDLE_ID not in gym.registry:
    gym.register(HANDLE_ID, entry_point=HandleCartPole, max_episode_steps=50)


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_envs_that_keep_objects_resume_with_fresh_episodes(tmp_path, algo):
    cls = agent_class(algo)
    small = {"ppo": {"num_steps": 32, "batch_size": 32, "num_epochs": 1},
             "dqn": {"learning_starts": 20, "buffer_size": 200, "batch_size": 8}}[algo]  # fmt: skip
    config = cls.Config(
        env=HANDLE_ID, total_steps=64, eval_every=10**6, run_dir=str(tmp_path), **small
    )
    agent = cls(HANDLE_ID, config)
    agent.learn()
    payload = read_data(agent.checkpoint_path)  # written, without the env
    loop = payload["state"]["loop" if algo == "ppo" else "collector"]
    assert loop["envs" if algo == "ppo" else "env"] is None
    resumed = cls.resume(agent.run_dir)
    assert resumed.counters["steps"] == 64
    resumed.learn(128)
    assert resumed.counters["steps"] == 128


def test_a_file_says_what_it_holds_before_it_is_loaded(tmp_path):
    about = read_data(resolve_agent_path("connect_four"))["about"]
    assert about == {"algorithm": "alphazero", "game": "connect_four",
                     "observation": {"shape": [3, 6, 7]},
                     "action": {"type": "Discrete", "n": 7}}  # fmt: skip
    ppo = agent_class("ppo")
    agent = ppo("Pendulum-v1", ppo.Config(env="Pendulum-v1", run_dir=str(tmp_path)))
    about = read_data(agent.save(tmp_path / "ppo.safetensors"))["about"]
    assert about["algorithm"] == "ppo" and about["env"] == "Pendulum-v1"
    assert about["observation"]["shape"] == [3] and about["action"]["type"] == "Box"
    assert about["action"]["low"] == [-2.0] and about["action"]["high"] == [2.0]


SMALL = {"population_size": 16, "num_elites": 4, "num_particles": 2, "horizon": 3,
         "ensemble_size": 2, "model_elites": 2, "model_hidden_sizes": (8,),
         "num_blocks": 1, "channels": 4,
         "eval_simulations": 4, "num_simulations": 4}  # fmt: skip


def _parameters(agent) -> list[torch.Tensor]:
    parts = agent.parts(training=False).values()
    return [w for part in parts if isinstance(part, torch.nn.Module) for w in part.parameters()]


def _weights(agent) -> torch.Tensor:
    return torch.cat([w.detach().flatten() for w in _parameters(agent)])


@pytest.mark.parametrize("algo", available_agents())
def test_every_agent_acts_the_same_after_a_save_and_load(tmp_path, algo):
    cls = agent_class(algo)
    names = {field.name for field in dataclasses.fields(cls.Config)}
    if cls.world_field == "game":
        world, config = "tic_tac_toe", {"game": "tic_tac_toe"}
    else:
        world = "Pendulum-v1" if "continuous" in cls.action_spaces else "CartPole-v1"
        config = {"env": world}
    config |= {k: v for k, v in SMALL.items() if k in names} | {"run_dir": str(tmp_path)}
    agent = cls(world, cls.Config(**config))
    fresh = _weights(cls(world, cls.Config(**config)))
    with torch.no_grad():  # weights a fresh agent of the same seed does not have
        for weight in _parameters(agent):
            weight.add_(0.3 * torch.randn_like(weight))
    loaded = cls.load(agent.save(tmp_path / "agent.safetensors"))
    torch.testing.assert_close(_weights(loaded), _weights(agent), rtol=0, atol=0)
    assert not torch.equal(_weights(loaded), fresh)
    if cls.world_field == "game":
        game = games.make(world)
        state = game.initial_state(4)
        act = [a.player(game, seed=0).act(state, [[]] * 4) for a in (agent, loaded)]
    else:
        obs = np.random.default_rng(0).normal(size=(4, 3 if world == "Pendulum-v1" else 4))
        obs = obs.astype(np.float32)
        for a in (agent, loaded):
            if hasattr(a, "generator"):
                a.generator.manual_seed(5)  # MPC samples its candidates
        act = [a.predict(obs) for a in (agent, loaded)]
    np.testing.assert_array_equal(np.asarray(act[0]), np.asarray(act[1]))
