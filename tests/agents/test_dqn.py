"""DQN: double-Q targets by hand, the epsilon schedule, Q of an endless constant reward,
a bandit learned in seconds, save/load, resume after a kill, and errors."""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from mbrl.algorithms.dqn import DQN, DQNConfig, Loss, ReplayBuffer, linear_schedule, td_target
from mbrl.model import UnknownNameError


class ConstantRewardEnv(gym.Env):
    """One observation, two actions, reward 1 forever (truncated by the time limit only)."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.ones(1, np.float32), {}

    def step(self, action):
        return np.ones(1, np.float32), 1.0, False, False, {}


class BanditEnv(gym.Env):
    """A one-step identity task: the observation is one-hot of k, action k pays 1."""

    observation_space = gym.spaces.Box(0.0, 1.0, (3,), np.float32)
    action_space = gym.spaces.Discrete(3)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.k = int(self.np_random.integers(3))
        return np.eye(3, dtype=np.float32)[self.k], {}

    def step(self, action):
        reward = float(action == self.k)
        return np.zeros(3, np.float32), reward, True, False, {}


pytestmark = pytest.mark.usefixtures("one_thread")


gym.register("mbrl-test/ConstantReward-v0", entry_point=ConstantRewardEnv, max_episode_steps=30)
gym.register("mbrl-test/Bandit-v0", entry_point=BanditEnv)


def small(tmp_path, **overrides) -> DQNConfig:
    settings = dict(
        env="CartPole-v1",
        total_steps=500,
        run_dir=str(tmp_path),
        hidden_sizes=(32,),
        learning_starts=100,
        train_frequency=4,
        gradient_steps=1,
        batch_size=16,
        buffer_size=1000,
        eval_every=250,
        eval_episodes=2,
        checkpoint_every=200,
        log_every=100,
    )
    return DQNConfig(**{**settings, **overrides})


def linear(weight) -> nn.Linear:
    layer = nn.Linear(len(weight[0]), len(weight), bias=False)
    layer.weight.data = torch.tensor(weight, dtype=torch.float32)
    return layer


def test_double_dqn_target_by_hand():
    # Two next observations, two actions. Online Q(s') = W_on s', target Q(s') = W_t s'.
    q_net = linear([[1.0, 0.0], [0.0, 1.0]])  # online: Q = (x0, x1)
    target_net = linear([[10.0, 0.0], [0.0, 20.0]])  # target: Q = (10 x0, 20 x1)
    next_obs = torch.tensor([[2.0, 1.0], [1.0, 3.0]])
    reward = torch.tensor([1.0, -1.0])
    terminated = torch.tensor([0.0, 1.0])
    # Row 0: online picks a*=0 (2 > 1); target evaluates 10*2 = 20 -> y = 1 + 0.5*20 = 11.
    # Row 1: terminated -> y = -1.
    y = td_target(q_net, target_net, reward, next_obs, terminated, gamma=0.5, double_q=True)
    assert torch.allclose(y, torch.tensor([11.0, -1.0]))
    # A row where double and plain DQN differ: online prefers a=0, target prefers a=1.
    next_obs = torch.tensor([[3.0, 2.0]])  # online (3, 2) -> a*=0; target (30, 40)
    one, zero = torch.tensor([1.0]), torch.tensor([0.0])
    double = td_target(q_net, target_net, one, next_obs, zero, gamma=0.5, double_q=True)
    plain = td_target(q_net, target_net, one, next_obs, zero, gamma=0.5, double_q=False)
    assert double.item() == pytest.approx(1 + 0.5 * 30)
    assert plain.item() == pytest.approx(1 + 0.5 * 40)


def test_epsilon_schedule(tmp_path):
    assert linear_schedule(1.0, 0.1, 100, 0) == 1.0
    assert linear_schedule(1.0, 0.1, 100, 50) == pytest.approx(0.55)
    assert linear_schedule(1.0, 0.1, 100, 100) == pytest.approx(0.1)
    assert linear_schedule(1.0, 0.1, 100, 10_000) == pytest.approx(0.1)
    agent = DQN("CartPole-v1", small(tmp_path, total_steps=1000, exploration_fraction=0.5))
    expected = {0: 1.0, 250: 0.52, 500: 0.04, 900: 0.04}
    for step, epsilon in expected.items():
        agent.counters["steps"] = step
        assert agent.epsilon == pytest.approx(epsilon)


def test_q_value_of_endless_constant_reward(tmp_path):
    gamma = 0.9
    config = small(
        tmp_path,
        env="mbrl-test/ConstantReward-v0",
        total_steps=1500,
        gamma=gamma,
        learning_rate=3e-3,
        train_frequency=1,
        target_network_frequency=20,
        end_epsilon=1.0,  # both actions keep being tried
        eval_every=0,
    )
    agent = DQN(config.env, config)
    agent.learn()
    q = agent.q_values(np.ones((1, 1), np.float32))[0]
    # Truncation is not termination: the value is the endless sum 1 / (1 - gamma) = 10.
    assert q == pytest.approx([1 / (1 - gamma)] * 2, rel=0.02)


def test_learns_a_bandit_in_seconds(tmp_path):
    config = small(
        tmp_path,
        env="mbrl-test/Bandit-v0",
        total_steps=800,
        learning_rate=3e-3,
        train_frequency=2,
        exploration_fraction=0.3,
        eval_every=0,
        eval_episodes=50,
    )
    result = DQN(config.env, config).learn()
    assert result["eval/mean_return"] >= 0.9


def test_learn_writes_the_run_folder(tmp_path):
    agent = DQN("CartPole-v1", small(tmp_path))
    result = agent.learn()
    assert set(result) == {"eval/mean_return", "eval/std_return"}
    files = {p.name for p in agent.run_dir.iterdir()}
    assert {"config.json", "progress.csv", "checkpoints"} <= files
    assert any(name.startswith("events.out.tfevents") for name in files)
    header = (agent.run_dir / "progress.csv").read_text().splitlines()[0].split(",")
    for name in (
        "global_step",
        "charts/episodic_return",
        "charts/episodic_length",
        "charts/SPS",
        "charts/epsilon",
        "losses/td_loss",
        "losses/q_values",
        "eval/mean_return",
    ):
        assert name in header
    assert agent.counters["steps"] == 500
    assert (agent.run_dir / "checkpoints" / "latest.safetensors").exists()


def test_save_load_gives_the_same_actions(tmp_path):
    agent = DQN("CartPole-v1", small(tmp_path, total_steps=300))
    agent.learn()
    path = agent.save(tmp_path / "agent.pt")
    loaded = DQN.load(path)
    obs = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    np.testing.assert_array_equal(agent.predict(obs), loaded.predict(obs))
    np.testing.assert_array_equal(
        agent.predict(obs, deterministic=False), loaded.predict(obs, deterministic=False)
    )
    assert loaded.predict(obs).shape == (64,)
    with pytest.raises(ValueError, match="observations"):
        agent.predict(obs[:, :3])


class Killed(Exception):
    pass


def test_resume_after_a_kill(tmp_path, monkeypatch):
    agent = DQN("CartPole-v1", small(tmp_path, total_steps=600, checkpoint_every=200))
    snapshots = []
    save = agent.checkpoint

    def save_and_remember(path=None):
        snapshots.append(
            (dict(agent.counters), copy.deepcopy(agent.replay), agent.rng.bit_generator.state)
        )
        return save(path)

    monkeypatch.setattr(agent, "checkpoint", save_and_remember)
    env_step = agent.collector.step

    def dies_at_step_450(action):
        if agent.counters["steps"] == 450:
            raise Killed
        return env_step(action)

    monkeypatch.setattr(agent.collector, "step", dies_at_step_450)
    with pytest.raises(Killed):
        agent.learn()
    counters, replay, rng_state = snapshots[-1]
    assert counters["steps"] == 400

    resumed = DQN.resume(agent.run_dir)
    assert resumed.counters == counters
    assert resumed.rng.bit_generator.state == rng_state
    assert len(resumed.replay) == len(replay) == 400
    assert resumed.replay.pos == replay.pos
    for name in ("obs", "action", "reward", "next_obs", "terminated"):
        np.testing.assert_array_equal(getattr(resumed.replay, name), getattr(replay, name))
    # The resumed run ends exactly where an uninterrupted one does.
    resumed.learn()
    uninterrupted = DQN("CartPole-v1", small(tmp_path / "other", total_steps=600))
    uninterrupted.learn()
    for name in ("steps", "episodes", "updates"):
        assert resumed.counters[name] == uninterrupted.counters[name]
    np.testing.assert_array_equal(resumed.replay.obs, uninterrupted.replay.obs)
    for a, b in zip(resumed.q_net.parameters(), uninterrupted.q_net.parameters()):
        assert torch.equal(a, b)
    # progress.csv has no row twice after the replay from step 400.
    steps = [
        int(float(line.split(",")[0]))
        for line in (agent.run_dir / "progress.csv").read_text().splitlines()[1:]
    ]
    assert steps == sorted(set(steps)) and steps[-1] == 600


def test_replay_buffer_wraps_around():
    buffer = ReplayBuffer(3, (2,))
    for i in range(5):
        buffer.add(np.full(2, i), i % 2, float(i), np.full(2, i + 1), i == 4)
    assert len(buffer) == 3 and buffer.pos == 2
    assert sorted(buffer.reward.tolist()) == [2.0, 3.0, 4.0]
    batch = buffer.sample(8, np.random.default_rng(0))
    assert batch["obs"].shape == (8, 2) and batch["action"].dtype == np.int64
    restored = ReplayBuffer(3, (2,))
    restored.load_state_dict(buffer.state_dict())
    np.testing.assert_array_equal(restored.obs, buffer.obs)
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(4, (2,)).load_state_dict(buffer.state_dict())


def test_errors(tmp_path):
    with pytest.raises(UnknownNameError, match="CartPole-v1"):
        DQN("CartPol-v1", small(tmp_path))
    with pytest.raises(ValueError, match="Discrete"):
        DQN("Pendulum-v1", small(tmp_path))
    bad = {
        "gamma": 1.0,
        "tau": 0.0,
        "total_steps": 0,
        "end_epsilon": 1.5,
        "exploration_fraction": 0.0,
        "learning_rate": -1.0,
        "hidden_sizes": (),
    }
    for field, value in bad.items():
        with pytest.raises(ValueError, match=field):
            small(tmp_path, **{field: value})
    with pytest.raises(ValueError, match="batch_size"):
        small(tmp_path, batch_size=2000)
    with pytest.raises(ValueError, match="no update would happen"):
        small(tmp_path, learning_starts=5_000, total_steps=5_000)
    with pytest.raises(FileNotFoundError):
        DQN.resume(tmp_path / "nothing")
    assert small(tmp_path, loss="mse").loss is Loss.MSE


def test_cli_trains_and_resumes(tmp_path):
    from mbrl import cli

    flags = ["--env", "CartPole-v1", "--total-steps", "300", "--run-dir", str(tmp_path)]
    flags += ["--eval-every", "0", "--eval-episodes", "1", "--hidden-sizes", "16"]
    flags += ["--learning-starts", "100"]
    cli.main(["train", "dqn", *flags])
    (run,) = tmp_path.iterdir()
    assert run.name.startswith("dqn-CartPole-v1-")
    cli.main(["train", "dqn", "--resume", str(run)])
    assert DQN.resume(run).counters["steps"] == 300


@pytest.mark.slow
def test_cartpole_reaches_475(tmp_path):
    agent = DQN("CartPole-v1", DQNConfig(run_dir=str(tmp_path), eval_episodes=20))
    assert agent.learn()["eval/mean_return"] >= 475
