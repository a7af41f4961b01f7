"""DDPG, TD3, SAC and their shared parts (mbrl.training): oracles, a bandit, checkpoints, errors."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from mbrl.algorithms.ddpg import DDPG
from mbrl.algorithms.sac import SAC
from mbrl.algorithms.td3 import TD3
from mbrl.model import UnknownNameError
from mbrl.training.nets import (
    EnsembleQ,
    SquashedGaussianActor,
    frozen,
    soft_update,
)
from mbrl.training.replay import (
    Batch,
    CriticTargets,
    ModelHook,
    ReplayBuffer,
)

AGENTS = [DDPG, TD3, SAC]


# ------------------------------------------------------------------ test worlds
class TargetBandit(gym.Env):
    """One-step episodes: observe a target in [-1, 1], reward -(action - target)^2."""

    def __init__(self):
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.target = self.np_random.uniform(-1, 1, size=1).astype(np.float32)
        return self.target.copy(), {}

    def step(self, action):
        reward = -float((np.clip(action, -1, 1)[0] - self.target[0]) ** 2)
        return self.target.copy(), reward, True, False, {}


class Counter(gym.Env):
    """obs = [t]; terminates at t == 3 when ``terminate``, else only a time limit ends it."""

    def __init__(self, terminate: bool = False):
        self.terminate = terminate
        self.observation_space = gym.spaces.Box(0.0, 100.0, (1,), np.float32)
        self.action_space = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.t += 1
        return np.array([self.t], np.float32), 1.0, self.terminate and self.t == 3, False, {}


for _id, _entry, _kwargs, _limit in [
    ("MbrlTest/TargetBandit-v0", TargetBandit, {}, None),
    ("MbrlTest/CounterTimeLimit-v0", Counter, {"terminate": False}, 3),
    ("MbrlTest/CounterTerminates-v0", Counter, {"terminate": True}, 10),
]:
    if _id not in gym.registry:
        gym.register(id=_id, entry_point=_entry, kwargs=_kwargs, max_episode_steps=_limit)


pytestmark = pytest.mark.usefixtures("one_thread")


def small(cls, env="MbrlTest/TargetBandit-v0", **overrides):
    """A fast config: small nets and buffer, frequent checkpoints, short evaluation."""
    fields = {
        "env": env,
        "seed": 1,  # the seed these tests were tuned on (the agents' default is now 0)
        "total_steps": 400,
        "learning_starts": 100,
        "buffer_size": 5_000,
        "batch_size": 32,
        "hidden_sizes": (32, 32),
        "eval_every": 10_000,
        "eval_episodes": 2,
        "checkpoint_every": 10_000,
        "log_every": 100,
    }
    return cls.Config(**(fields | overrides))


def actor_params(agent) -> list[torch.Tensor]:
    return [p.detach().clone() for p in agent.actor.parameters()]


# ------------------------------------------------------------ the shared parts
def test_ensemble_q_equals_separate_mlps():
    torch.manual_seed(0)
    obs_dim, action_dim, E, B = 5, 2, 3, 7
    critic = EnsembleQ(obs_dim, action_dim, (16, 8), num_members=E)
    obs, action = torch.randn(B, obs_dim), torch.randn(B, action_dim)
    batched = critic(obs, action)
    assert batched.shape == (E, B)
    # The reference: one plain nn.Sequential per member, copied weights, a Python loop.
    x = torch.cat([obs, action], 1)
    for e in range(E):
        layers = []
        for i, (w, b) in enumerate(zip(critic.weights, critic.biases)):
            linear = nn.Linear(w.shape[1], w.shape[2])
            linear.weight.data.copy_(w[e].T)
            linear.bias.data.copy_(b[e, 0])
            layers += [linear] + ([nn.ReLU()] if i < len(critic.weights) - 1 else [])
        expected = nn.Sequential(*layers)(x).squeeze(-1)
        torch.testing.assert_close(batched[e], expected)
    torch.testing.assert_close(critic(obs, action, members=slice(1, 2))[0], batched[1])
    # Members are initialised independently.
    assert not torch.allclose(batched[0], batched[1])


def test_ensemble_q_gradients_stay_per_member():
    torch.manual_seed(0)
    critic = EnsembleQ(3, 1, (8,), num_members=2)
    critic(torch.randn(4, 3), torch.randn(4, 1))[0].sum().backward()
    for weight in critic.weights:
        assert weight.grad[0].abs().sum() > 0
        assert weight.grad[1].abs().sum() == 0


def test_soft_update_arithmetic():
    torch.manual_seed(0)
    source, target = nn.Linear(3, 2), nn.Linear(3, 2)
    before = [p.detach().clone() for p in target.parameters()]
    soft_update(target, source, tau=0.25)
    for new, old, src in zip(target.parameters(), before, source.parameters()):
        torch.testing.assert_close(new, 0.75 * old + 0.25 * src)
    soft_update(target, source, tau=1.0)
    for new, src in zip(target.parameters(), source.parameters()):
        torch.testing.assert_close(new, src)


def transition(i: int) -> tuple:
    return (np.full((1, 2), i), np.full((1, 1), -i), [float(i)], np.full((1, 2), i + 1), [i % 2])


def test_replay_wraps_around_and_round_trips():
    replay = ReplayBuffer(5, (2,), 1)
    for i in range(3):
        replay.add(*transition(i))
    assert (replay.size, replay.pos) == (3, 3)
    # A batch of four crosses the end: 3, 4 at the tail, 5, 6 overwrite the oldest (0, 1).
    rows = [transition(i) for i in range(3, 7)]
    replay.add(*(np.concatenate([np.asarray(r[k]) for r in rows]) for k in range(5)))
    assert (replay.size, replay.pos) == (5, 2)
    np.testing.assert_array_equal(replay.reward, [5, 6, 2, 3, 4])
    np.testing.assert_array_equal(replay.obs[:, 0], [5, 6, 2, 3, 4])
    np.testing.assert_array_equal(replay.next_obs[:, 0], [6, 7, 3, 4, 5])
    np.testing.assert_array_equal(replay.action[:, 0], [-5, -6, -2, -3, -4])
    np.testing.assert_array_equal(replay.terminated, [1, 0, 0, 1, 0])
    # More than the capacity at once leaves the same buffer as one at a time.
    one_by_one, at_once = ReplayBuffer(5, (2,), 1), ReplayBuffer(5, (2,), 1)
    for buffer in (one_by_one, at_once):
        buffer.add(*transition(0))
    rows = [transition(i) for i in range(1, 13)]
    for row in rows:
        one_by_one.add(*row)
    at_once.add(*(np.concatenate([np.asarray(r[k]) for r in rows]) for k in range(5)))
    assert (at_once.pos, at_once.size) == (one_by_one.pos, one_by_one.size) == (3, 5)
    np.testing.assert_array_equal(at_once.obs, one_by_one.obs)
    np.testing.assert_array_equal(at_once.terminated, one_by_one.terminated)
    batch = replay.sample(200, np.random.default_rng(0))
    assert set(batch.reward.tolist()) == {2.0, 3.0, 4.0, 5.0, 6.0}
    torch.testing.assert_close(batch.next_obs[:, 0], batch.reward + 1)  # rows stay together
    copy = ReplayBuffer(5, (2,), 1)
    copy.load_state_dict(replay.state_dict())
    assert (copy.size, copy.pos) == (5, 2)
    np.testing.assert_array_equal(copy.obs, replay.obs)
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(6, (2,), 1).load_state_dict(replay.state_dict())
    with pytest.raises(ValueError, match="empty"):
        ReplayBuffer(3, (2,), 1).sample(1, np.random.default_rng(0))


def test_squashed_gaussian_log_prob_matches_change_of_variables():
    torch.manual_seed(0)
    actor = SquashedGaussianActor(3, np.array([-2.0, 0.0]), np.array([2.0, 1.0]), (16,))
    obs = torch.randn(64, 3) * 0.3
    action, log_prob = actor(obs, torch.Generator().manual_seed(1))
    latent = actor.trunk(obs)
    mean, log_std = actor.mean(latent), actor.log_std(latent).clamp(-20, 2)
    unit = (action - actor.scale.action_bias) / actor.scale.action_scale  # tanh(u) in [-1, 1]
    u = torch.atanh(unit.clamp(-1 + 1e-6, 1 - 1e-6))
    gaussian = torch.distributions.Normal(mean, log_std.exp()).log_prob(u).sum(-1)
    expected = gaussian - torch.log(1 - unit.pow(2)).sum(-1)
    torch.testing.assert_close(log_prob, expected, rtol=1e-3, atol=1e-3)
    assert ((action >= torch.tensor([-2.0, 0.0])) & (action <= torch.tensor([2.0, 1.0]))).all()


@pytest.mark.parametrize("num_members, hidden", [(2, (16, 8)), (3, (8,)), (1, (8, 8, 4))])
def test_min_q_equals_autograd_through_the_frozen_critics(num_members, hidden):
    critic = EnsembleQ(3, 2, hidden, num_members=num_members)
    obs = torch.randn(64, 3)
    action = torch.randn(64, 2, requires_grad=True)
    with frozen(critic):
        reference = critic(obs, action).min(0).values
    (expected,) = torch.autograd.grad((reference * torch.arange(64.0)).sum(), action)
    fast_action = action.detach().requires_grad_(True)
    fast = critic.min_q(obs, fast_action)
    torch.testing.assert_close(fast, reference.detach())
    (fast * torch.arange(64.0)).sum().backward()
    torch.testing.assert_close(fast_action.grad, expected)
    assert all(p.grad is None for p in critic.parameters())


# ------------------------------------------------------------------- SAC's alpha
@pytest.mark.parametrize("log_prob, direction", [(-3.0, -1), (3.0, +1), (1.0, 0)])
def test_sac_temperature_moves_toward_the_entropy_target(tmp_path, log_prob, direction):
    """Entropy -log pi above the target -1 (log pi = -3): alpha decreases; below: increases."""
    agent = SAC("Pendulum-v1", small(SAC, "Pendulum-v1", run_dir=str(tmp_path)))
    assert agent.target_entropy == -1.0
    start = float(agent.alpha)
    for _ in range(5):
        agent.update_temperature(torch.full((256,), log_prob))
    assert np.sign(round(float(agent.alpha) - start, 6)) == direction


def test_sac_without_autotune_keeps_alpha(tmp_path):
    config = small(SAC, autotune=False, initial_alpha=0.2, run_dir=str(tmp_path))
    agent = SAC(config.env, config)
    agent.learn(300)
    assert float(agent.alpha) == pytest.approx(0.2)


# ------------------------------------------------------------- transitions stored
@pytest.mark.parametrize(
    "env_id, terminal",
    [
        ("MbrlTest/CounterTimeLimit-v0", 0.0),
        ("MbrlTest/CounterTerminates-v0", 1.0),
    ],
)
def test_time_limits_bootstrap_and_final_observation_is_kept(tmp_path, env_id, terminal):
    config = small(TD3, env_id, learning_starts=1_000, total_steps=2_000, run_dir=str(tmp_path))
    agent = TD3(env_id, config)
    agent.learn(7)
    replay = agent.replay
    np.testing.assert_array_equal(replay.obs[:7, 0], [0, 1, 2, 0, 1, 2, 0])
    np.testing.assert_array_equal(replay.next_obs[:7, 0], [1, 2, 3, 1, 2, 3, 1])
    np.testing.assert_array_equal(replay.terminated[:7], [0, 0, terminal, 0, 0, terminal, 0])
    assert agent.counters["episodes"] == 2


# --------------------------------------------------------------------- learning
@pytest.mark.parametrize("cls", AGENTS)
def test_agent_learns_a_continuous_bandit(tmp_path, cls):
    """The best action is the observed target; after 1.5k steps the policy nearly hits it."""
    # SAC starts with a small temperature: the rewards here are within [-4, 0].
    extra = {"initial_alpha": 0.1} if cls is SAC else {}
    config = small(
        cls, total_steps=1_500, learning_starts=200, batch_size=64, run_dir=str(tmp_path), **extra
    )
    agent = cls(config.env, config)
    before = agent.predict(np.linspace(-1, 1, 21, dtype=np.float32)[:, None])
    metrics = agent.learn()
    targets = np.linspace(-0.9, 0.9, 19, dtype=np.float32)[:, None]
    mean_reward = -np.mean((agent.predict(targets) - targets) ** 2)
    assert mean_reward > -0.01, (mean_reward, before.ravel())
    assert metrics["eval/mean_return"] > -0.05
    for name in ["charts/episodic_return", "charts/SPS", "losses/qf_loss", "losses/actor_loss"]:
        assert name in metrics
    if cls is SAC:
        assert "losses/alpha" in metrics


# --------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("cls", AGENTS)
def test_same_seed_same_run_and_save_load_round_trip(tmp_path, cls):
    config = small(cls, total_steps=300, run_dir=str(tmp_path))
    first, second = cls(config.env, config), cls(config.env, config)
    first.learn()
    second.learn()
    for a, b in zip(actor_params(first), actor_params(second)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    obs = np.linspace(-1, 1, 9, dtype=np.float32)[:, None]
    path = first.save(tmp_path / "agent.pt")
    loaded = cls.load(path)
    np.testing.assert_array_equal(loaded.predict(obs), first.predict(obs))
    assert loaded.counters == first.counters and loaded.replay.size == 0
    untrained = cls(config.env, config)
    assert not np.allclose(untrained.predict(obs), first.predict(obs))
    with pytest.raises(ValueError, match="predict expects"):
        first.predict(np.zeros((2, 3), np.float32))


class Killed(Exception):
    pass


class RecordingHook:
    """Counts the three calls; can kill the run at a given env step, or override targets."""

    def __init__(self, kill_at: int | None = None, target: float | None = None):
        self.kill_at, self.target = kill_at, target
        self.transitions = self.samples = self.targets = 0

    def on_transitions(self, batch: Batch) -> None:
        assert len(batch) == 1 and batch.obs.shape == (1, 1)
        self.transitions += 1
        if self.transitions == self.kill_at:
            raise Killed

    def sample(self, replay, batch_size, rng) -> Batch:
        self.samples += 1
        return replay.sample(batch_size, rng)

    def critic_targets(self, batch, context):
        self.targets += 1
        assert context.next_value(batch.next_obs).shape == (len(batch),)
        assert context.policy(batch.obs).shape == batch.action.shape
        if self.target is None:
            return None
        return CriticTargets(batch.obs, batch.action, torch.full_like(batch.reward, self.target))


@pytest.mark.parametrize("cls", AGENTS)
def test_resume_after_a_kill_restores_counters_and_buffer(tmp_path, cls):
    config = small(cls, total_steps=500, checkpoint_every=200, run_dir=str(tmp_path))
    agent = cls(config.env, config, model_hook=RecordingHook(kill_at=350))
    with pytest.raises(Killed):
        agent.learn()
    resumed = cls.resume(agent.run_dir)
    assert resumed.counters["steps"] == 200
    assert resumed.counters["updates"] == 100
    assert resumed.replay.size == 200
    for name in ["obs", "action", "reward", "next_obs", "terminated"]:
        np.testing.assert_array_equal(
            getattr(resumed.replay, name)[:200], getattr(agent.replay, name)[:200]
        )
    assert resumed.rng.bit_generator.state != np.random.default_rng(config.seed).bit_generator.state
    metrics = resumed.learn()
    assert resumed.counters["steps"] == 500 and resumed.replay.size == 500
    assert "eval/mean_return" in metrics
    steps = [
        float(line.split(",")[0])
        for line in (agent.run_dir / "progress.csv").read_text().splitlines()[1:]
    ]
    assert steps == sorted(steps) and max(steps) == 500
    assert (agent.run_dir / "config.json").exists()


# ------------------------------------------------------------------- model hook
@pytest.mark.parametrize("cls", AGENTS)
def test_model_hook_is_called_and_its_target_drives_the_critic(tmp_path, cls):
    assert isinstance(RecordingHook(), ModelHook)
    config = small(cls, total_steps=250, run_dir=str(tmp_path))
    hook = RecordingHook()
    agent = cls(config.env, config, model_hook=hook)
    agent.learn()
    updates = 250 - config.learning_starts
    assert (hook.transitions, hook.samples, hook.targets) == (250, updates, updates)
    # Same agent, same minibatch: one with a constant target of 5, one with its own.
    batch = agent.replay.sample(64, np.random.default_rng(0))
    q_before = agent.critic(batch.obs, batch.action).mean().item()
    results = {}
    for target in [None, 5.0]:
        twin = cls.load(agent.save(tmp_path / "twin.pt"), model_hook=RecordingHook(target=target))
        for _ in range(100):
            twin.update(batch)
        results[target] = twin.critic(batch.obs, batch.action).mean().item()
    # The bandit's own targets are within [-4, 0]; only the override pulls Q up towards 5.
    assert results[5.0] > q_before + 1.0, (q_before, results)
    assert results[None] < q_before + 0.5, (q_before, results)


# ----------------------------------------------------------------------- errors
@pytest.mark.parametrize("cls", AGENTS)
def test_bad_env_ids_discrete_envs_and_bad_configs_are_rejected(tmp_path, cls):
    with pytest.raises(UnknownNameError, match="Pendulum-v1"):
        cls("Pendulum-v0")
    with pytest.raises(ValueError, match="continuous"):
        cls("CartPole-v1")
    base = small(cls, run_dir=str(tmp_path))
    for field, value in [
        ("batch_size", 0),
        ("gamma", 1.5),
        ("tau", 0.0),
        ("learning_starts", -1),
        ("hidden_sizes", ()),
        ("policy_lr", 0.0),
        ("eval_every", 0),
    ]:
        with pytest.raises(ValueError, match=f"{cls.Config.__name__}.{field}"):
            dataclasses.replace(base, **{field: value})
    with pytest.raises(ValueError, match="batch_size"):
        dataclasses.replace(base, batch_size=100, buffer_size=10)
    with pytest.raises(ValueError, match="no update would happen"):
        dataclasses.replace(base, learning_starts=25_000, total_steps=20_000)
    with pytest.raises(UnknownNameError):
        dataclasses.replace(base, env="NoSuchEnv-v9")
    with pytest.raises(FileNotFoundError):
        cls.resume(tmp_path / "missing")
    (tmp_path / "other.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="corrupt"):
        cls.load(tmp_path / "other.pt")
