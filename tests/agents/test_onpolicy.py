"""VPG, A2C, PPO and TRPO: maths against oracles, behaviour on tiny envs, run folders."""

from __future__ import annotations

import csv
import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import torch

from mbrl.algorithms.a2c import A2C
from mbrl.algorithms.ppo import PPO
from mbrl.algorithms.trpo import TRPO, conjugate_gradient
from mbrl.algorithms.vpg import VPG
from mbrl.model import UnknownNameError
from mbrl.training.rollout import ActorCritic

AGENTS = [VPG, A2C, PPO, TRPO]


# ------------------------------------------------------------------ tiny envs
class OneHotBandit(gym.Env):
    """Observation: one-hot of a random target among K; reward 1 for choosing it; one step."""

    def __init__(self, num_arms: int = 4):
        self.num_arms = num_arms
        self.observation_space = gym.spaces.Box(0.0, 1.0, (num_arms,), np.float32)
        self.action_space = gym.spaces.Discrete(num_arms)

    def _obs(self):
        obs = np.zeros(self.num_arms, np.float32)
        obs[self.target] = 1.0
        return obs

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.target = int(self.np_random.integers(self.num_arms))
        return self._obs(), {}

    def step(self, action):
        reward = float(int(action) == self.target)
        self.target = int(self.np_random.integers(self.num_arms))
        return self._obs(), reward, True, False, {}


class ConstantReward(gym.Env):
    """Reward 1 forever, constant observation; only a time limit (truncation) ends episodes."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.ones(1, np.float32), {}

    def step(self, action):
        return np.ones(1, np.float32), 1.0, False, False, {}


gym.register("OneHotBandit-v0", entry_point=OneHotBandit)
gym.register("ConstantReward-v0", entry_point=ConstantReward, max_episode_steps=20)


pytestmark = pytest.mark.usefixtures("one_thread")


QUIET = {"eval_episodes": 0, "eval_every": 10**9, "checkpoint_every": 10**9}


def small_config(cls, env: str, tmp_path, **overrides):
    """A config that trains in a second or two on a tiny env."""
    per_agent = {
        VPG: {"num_envs": 4, "num_steps": 64, "policy_lr": 1e-2, "value_iters": 10},
        A2C: {"num_envs": 8, "num_steps": 5, "learning_rate": 3e-3},
        PPO: {"num_envs": 4, "num_steps": 64, "batch_size": 64, "num_epochs": 4},
        TRPO: {"num_envs": 4, "num_steps": 64, "value_epochs": 5, "value_batch_size": 64},
    }[cls]
    kwargs = {"env": env, "seed": 0, "run_dir": str(tmp_path), **QUIET, **per_agent}
    kwargs.update(overrides)
    return cls.Config(**kwargs)


# ------------------------------------------------------------------ maths
def test_conjugate_gradient_solves_an_spd_system():
    generator = torch.Generator().manual_seed(0)
    D = 20
    m = torch.randn(D, D, generator=generator, dtype=torch.float64)
    matrix = m @ m.T + 0.5 * torch.eye(D, dtype=torch.float64)
    b = torch.randn(D, generator=generator, dtype=torch.float64)
    x = conjugate_gradient(lambda v: matrix @ v, b, num_iters=4 * D, tol=1e-20)
    expected = torch.linalg.solve(matrix, b)
    torch.testing.assert_close(x, expected, rtol=1e-7, atol=1e-9)
    # A few iterations only approximate it, but reduce the residual.
    x3 = conjugate_gradient(lambda v: matrix @ v, b, num_iters=3)
    assert (matrix @ x3 - b).norm() < b.norm()


@pytest.mark.parametrize("space", [gym.spaces.Discrete(5), gym.spaces.Box(-1, 1, (3,))])
def test_distribution_maths_match_torch_distributions(space):
    torch.manual_seed(0)
    policy = ActorCritic(4, space, (16,))
    if policy.log_std is not None:
        policy.log_std.data = torch.randn(3)
    obs, other_obs = torch.randn(7, 4), torch.randn(7, 4)
    params, other = policy.dist_params(obs), policy.dist_params(other_obs)

    def dist(p):
        if policy.discrete:
            return torch.distributions.Categorical(logits=p)
        mean, log_std = p.chunk(2, -1)
        return torch.distributions.Independent(torch.distributions.Normal(mean, log_std.exp()), 1)

    action = policy.sample(params, torch.Generator().manual_seed(1))
    assert action.shape == ((7,) if policy.discrete else (7, 3))
    torch.testing.assert_close(policy.log_prob(params, action), dist(params).log_prob(action))
    torch.testing.assert_close(policy.entropy(params), dist(params).entropy())
    expected_kl = torch.distributions.kl_divergence(dist(params), dist(other))
    torch.testing.assert_close(policy.kl(params, other), expected_kl)


def test_log_std_init_sets_the_spread_of_the_first_actions(tmp_path):
    config = PPO.Config(env="Pendulum-v1", log_std_init=-1.5, num_steps=64, run_dir=str(tmp_path))
    agent = PPO("Pendulum-v1", config)
    torch.testing.assert_close(agent.policy.log_std.detach(), torch.tensor([-1.5]))
    with torch.no_grad():
        params = agent.policy.dist_params(torch.zeros(4000, 3))
        actions = agent.policy.sample(params, torch.Generator().manual_seed(0))
    assert abs(float(actions.std()) - np.exp(-1.5)) < 0.02


@pytest.mark.parametrize(
    ("max_kl", "damping", "backtracks"), [(0.01, 0.1, False), (1e-4, 0.1, False), (2.0, 0.0, True)]
)
def test_trpo_update_respects_the_kl_bound(tmp_path, max_kl, damping, backtracks):
    """Without damping a large trust region's full step overshoots (KL about 7 here): the line
    search must shrink it until KL(old || new) <= max_kl."""
    config = small_config(TRPO, "CartPole-v1", tmp_path, max_kl=max_kl, cg_damping=damping)
    agent = TRPO(config.env, config)
    agent.loop.collect()
    obs = agent.loop.buffer.flat()["obs"]
    with torch.no_grad():
        before = agent.policy.dist_params(obs)
    metrics = agent.policy_step(agent.loop.buffer)
    with torch.no_grad():
        kl = agent.policy.kl(before, agent.policy.dist_params(obs)).mean().item()
    assert metrics["losses/line_search_accepted"] == 1.0
    assert 0.0 < kl <= max_kl * (1 + 1e-6)
    assert kl == pytest.approx(metrics["losses/kl"], rel=1e-5)
    assert metrics["losses/surrogate_improvement"] > 0
    # A trust-region step, not a tiny one: it uses a good part of the bound.
    assert kl > 0.1 * max_kl
    assert (metrics["losses/step_fraction"] < 1.0) == backtracks


# ------------------------------------------------------------------ behaviour
@pytest.mark.parametrize("cls", AGENTS, ids=lambda c: c.algo)
def test_value_reaches_one_over_one_minus_gamma_with_time_limits(cls, tmp_path):
    """Endless reward 1 cut by a 20-step time limit: V = 1 / (1 - gamma) = 10 only if the
    truncation is bootstrapped (treating it as terminal gives about 6)."""
    extra = {
        VPG: {"value_lr": 3e-3, "value_iters": 40},
        A2C: {"learning_rate": 3e-3, "num_steps": 20},
        PPO: {"learning_rate": 3e-3},
        TRPO: {"value_lr": 3e-3},
    }[cls]
    config = small_config(cls, "ConstantReward-v0", tmp_path, gamma=0.9, **extra)
    agent = cls(config.env, config)
    agent.learn(6_000 if cls is not A2C else 12_000)
    value = agent.policy.value(torch.ones(1, 1)).item()
    assert value == pytest.approx(10.0, abs=0.5)


@pytest.mark.parametrize("cls", AGENTS, ids=lambda c: c.algo)
def test_learns_the_one_hot_bandit(cls, tmp_path):
    extra = {
        VPG: {},
        A2C: {"ent_coef": 0.0},
        PPO: {"learning_rate": 3e-3},
        TRPO: {"max_kl": 0.05},
    }[cls]
    config = small_config(
        cls, "OneHotBandit-v0", tmp_path, eval_episodes=100, eval_every=10**9, **extra
    )
    result = cls(config.env, config).learn(4_000)
    assert result["eval/mean_return"] >= 0.9
    assert result["charts/episodic_return"] > 0.5  # training (stochastic) returns, logged apart


@pytest.mark.parametrize("cls", AGENTS, ids=lambda c: c.algo)
@pytest.mark.parametrize("env", ["CartPole-v1", "Pendulum-v1"])
def test_save_load_round_trip_gives_the_same_actions(cls, env, tmp_path):
    config = small_config(cls, env, tmp_path, normalize_obs=True)
    agent = cls(env, config)
    agent.learn(512)
    path = agent.save(tmp_path / "agent.pt")
    loaded = cls.load(path)
    obs = np.random.default_rng(0).normal(
        size=(32, *agent.loop.envs.single_observation_space.shape)
    )
    actions = agent.predict(obs.astype(np.float32))
    np.testing.assert_array_equal(actions, loaded.predict(obs.astype(np.float32)))
    np.testing.assert_array_equal(loaded.loop.obs_rms.mean, agent.loop.obs_rms.mean)
    assert actions.shape == ((32,) if env == "CartPole-v1" else (32, 1))
    if env == "Pendulum-v1":
        assert np.all(np.abs(actions) <= 2.0)
    # A run folder loads as well (its latest checkpoint).
    np.testing.assert_array_equal(actions, cls.load(agent.run_dir).predict(obs.astype(np.float32)))


def test_reward_scaling_matches_a_plain_loop(tmp_path):
    """r / std(all discounted returns so far), each env's return restarting after its episode."""
    config = small_config(PPO, "CartPole-v1", tmp_path, normalize_reward=True, gamma=0.9)
    loop = PPO(config.env, config).loop
    rng = np.random.default_rng(0)
    running, seen = np.zeros(config.num_envs), []
    for _ in range(200):
        reward = rng.normal(3.0, 2.0, size=config.num_envs)
        done = rng.random(config.num_envs) < 0.1
        got = loop._scale_rewards(reward, done)
        running = 0.9 * running + reward
        seen.extend(running)
        np.testing.assert_allclose(got, np.clip(reward / np.std(seen), -10, 10), rtol=1e-3)
        running[done] = 0.0
    off = small_config(PPO, "CartPole-v1", tmp_path)
    assert PPO(off.env, off).loop._scale_rewards(reward, done) is reward


class Killed(Exception):
    pass


@pytest.mark.parametrize("cls", AGENTS, ids=lambda c: c.algo)
def test_resume_after_a_kill_continues_the_same_run(cls, tmp_path):
    """Killed after its second checkpoint, resumed, it ends where an uninterrupted run ends."""
    extra = {"anneal_lr": True} if cls in (PPO, A2C) else {}
    config = small_config(
        cls, "CartPole-v1", tmp_path, normalize_obs=True, normalize_reward=True, **extra
    )
    steps_per_update = config.num_envs * config.num_steps
    config = dataclasses.replace(config, checkpoint_every=2 * steps_per_update, log_every=1)
    total = 8 * steps_per_update
    reference = cls(config.env, config)
    reference.learn(total)

    victim = cls(config.env, config)
    calls = 0
    update = victim.update

    def dies_in_the_fifth_update(buffer, progress):
        nonlocal calls
        calls += 1
        if calls == 5:
            raise Killed
        return update(buffer, progress)

    victim.update = dies_in_the_fifth_update
    with pytest.raises(Killed):
        victim.learn(total)
    resumed = cls.resume(victim.run_dir)
    assert resumed.counters["steps"] == 4 * steps_per_update
    assert resumed.counters["updates"] == 4
    resumed.learn(total)
    for key in ("steps", "updates", "episodes"):
        assert resumed.counters[key] == reference.counters[key]
    for a, b in zip(resumed.policy.state_dict().values(), reference.policy.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    np.testing.assert_array_equal(resumed.loop.obs_rms.mean, reference.loop.obs_rms.mean)
    with (resumed.run_dir / "progress.csv").open() as f:
        steps = [int(float(row["global_step"])) for row in csv.DictReader(f)]
    assert steps == [steps_per_update * (i + 1) for i in range(8)]


def test_same_seed_same_run(tmp_path):
    runs = []
    for _ in range(2):
        agent = PPO("CartPole-v1", small_config(PPO, "CartPole-v1", tmp_path, seed=3))
        agent.learn(512)
        runs.append(torch.cat([p.flatten() for p in agent.policy.parameters()]))
    torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=0)


def test_run_folder_holds_config_progress_and_checkpoint(tmp_path):
    config = small_config(PPO, "CartPole-v1", tmp_path, eval_episodes=2, eval_every=256)
    agent = PPO("CartPole-v1", config)
    result = agent.learn(512)
    run = agent.run_dir
    assert run.parent == tmp_path and run.name.startswith("ppo-CartPole-v1-")
    assert (run / "config.json").exists() and (run / "checkpoints" / "latest.safetensors").exists()
    assert list(run.glob("events.out.tfevents.*"))
    with (run / "progress.csv").open() as f:
        header = next(csv.reader(f))
    for name in (
        "charts/episodic_return",
        "charts/episodic_length",
        "charts/SPS",
        "losses/policy_loss",
        "losses/value_loss",
        "losses/entropy",
        "eval/mean_return",
    ):
        assert name in header
        assert name in result


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("cls", AGENTS, ids=lambda c: c.algo)
def test_unknown_env_id_is_named(cls):
    with pytest.raises(UnknownNameError, match="CartPool-v1"):
        cls("CartPool-v1")


@pytest.mark.parametrize(
    ("cls", "field", "value"),
    [
        (PPO, "num_envs", 0),
        (PPO, "gamma", 1.5),
        (PPO, "clip_range", 0.0),
        (PPO, "batch_size", 10**6),
        (PPO, "hidden_sizes", (64, 0)),
        (A2C, "rms_prop_alpha", 1.0),
        (A2C, "learning_rate", -1.0),
        (VPG, "value_iters", 0),
        (VPG, "gae_lambda", -0.1),
        (TRPO, "max_kl", 0.0),
        (TRPO, "line_search_shrink", 1.0),
        (TRPO, "total_steps", 0),
    ],
)
def test_bad_config_names_the_field(cls, field, value):
    with pytest.raises(ValueError, match=field):
        cls.Config(**{field: value})


def test_unsupported_action_space_is_rejected():
    with pytest.raises(ValueError, match="Discrete or Box"):
        ActorCritic(3, gym.spaces.MultiBinary(2))


def test_cli_trains_and_resumes_ppo(tmp_path):
    from mbrl import cli

    flags = ["--env", "CartPole-v1", "--total-steps", "256", "--num-steps", "128"]
    flags += ["--batch-size", "64", "--eval-episodes", "1", "--run-dir", str(tmp_path)]
    threads = torch.get_num_threads()
    try:
        cli.main(["train", "ppo", "--threads", "1", *flags])
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    (run,) = tmp_path.iterdir()
    assert (run / "checkpoints" / "latest.safetensors").exists()
    cli.main(["train", "ppo", "--resume", str(run)])
    assert PPO.resume(run).counters["steps"] == 256


# ------------------------------------------------------------------ learning (slow)
@pytest.mark.slow
@pytest.mark.parametrize("cls", [PPO, A2C], ids=lambda c: c.algo)
def test_learns_cartpole(cls, tmp_path):
    torch.set_num_threads(1)
    if cls is PPO:
        overrides = dict(num_envs=8, num_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98)
        overrides.update(num_epochs=20, learning_rate=1e-3, anneal_lr=True)
    else:
        overrides = dict(num_envs=8, learning_rate=7e-4)
    config = cls.Config(env="CartPole-v1", run_dir=str(tmp_path), eval_every=10**9, **overrides)
    result = cls(config.env, config).learn(100_000 if cls is PPO else 200_000)
    assert result["eval/mean_return"] >= 400
