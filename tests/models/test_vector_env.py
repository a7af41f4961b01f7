"""The VectorEnv view of a model: over the exact MuJoCo model it steps like the real envs;
over a learned model it has the shapes, autoreset and truncation agents expect."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from mbrl.algorithms.ppo import PPO
from mbrl.games.mujoco import MujocoConfig, MujocoModel, state_of
from mbrl.model import ShapeError
from mbrl.models import (
    Ensemble,
    EnsembleConfig,
    LearnedModel,
    ModelVectorEnv,
    VectorEnvConfig,
    observation_starts,
)

pytestmark = pytest.mark.usefixtures("one_thread")

OBS_DIM = 3


def _learned_view(num_envs=6, horizon=4, discrete=False, terminate_at=None) -> ModelVectorEnv:
    config = EnsembleConfig(
        obs_dim=OBS_DIM,
        action_dim=2,
        discrete_actions=discrete,
        num_members=3,
        num_elites=2,
        hidden_sizes=(8,),
        learn_reward=False,
        learn_termination=False,
    )
    ensemble = Ensemble(config, generator=torch.Generator().manual_seed(0))
    fns = {"reward_fn": lambda obs, action, next_obs: -(next_obs**2).sum(1)}
    if terminate_at is not None:
        fns["termination_fn"] = lambda obs, action, next_obs: next_obs[:, 0].abs() > terminate_at
    bounds = {} if discrete else {"action_low": (-1.0, -1.0), "action_high": (1.0, 1.0)}
    model = LearnedModel(ensemble, **fns, **bounds)
    starts = torch.randn(20, OBS_DIM, generator=torch.Generator().manual_seed(1))
    return ModelVectorEnv(
        model,
        starts,
        start_state=observation_starts(model),
        config=VectorEnvConfig(num_envs=num_envs, horizon=horizon),
    )


def _sample(space: gym.Space, seed: int) -> np.ndarray:
    space.seed(seed)
    return space.sample()


def test_over_the_mujoco_model_it_steps_like_the_real_envs():
    env_id, k = "Hopper-v5", 5
    model = MujocoModel(MujocoConfig(env_id=env_id))
    real = [gym.make(env_id) for _ in range(k)]
    for seed, env in enumerate(real):
        env.reset(seed=seed)
    view = ModelVectorEnv(model, state_of(model, real), config=VectorEnvConfig(num_envs=4))
    obs, _ = view.reset(seed=0)
    twins = [gym.make(env_id) for _ in range(4)]  # each view env's start, as a real env
    first = np.stack([twin.reset(seed=int(i))[0] for twin, i in zip(twins, view.start_index)])
    np.testing.assert_allclose(obs, first, rtol=1e-6, atol=1e-6)
    rng, ended = np.random.default_rng(0), 0
    for _ in range(30):
        action = rng.uniform(-1, 1, (4, 3)).astype(np.float32)
        obs, reward, terminated, truncated, info = view.step(action)
        for i, twin in enumerate(twins):
            twin_obs, twin_reward, twin_terminated, _, _ = twin.step(action[i])
            assert terminated[i] == twin_terminated
            seen = info["final_obs"][i] if terminated[i] or truncated[i] else obs[i]
            np.testing.assert_allclose(seen, twin_obs, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(reward[i], twin_reward, rtol=1e-5, atol=1e-6)
            if terminated[i] or truncated[i]:
                twin.reset(seed=int(view.start_index[i]))
                ended += 1
    assert ended >= 8  # every sub-environment was truncated at its horizon at least twice


def test_shapes_dtypes_and_spaces():
    view = _learned_view()
    assert view.single_observation_space == gym.spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float32)
    assert view.single_action_space == gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    assert view.observation_space.shape == (6, OBS_DIM) and view.action_space.shape == (6, 2)
    assert view.metadata["autoreset_mode"] is gym.vector.AutoresetMode.SAME_STEP
    obs, info = view.reset(seed=0)
    assert obs.shape == (6, OBS_DIM) and obs.dtype == np.float32 and info == {}
    assert obs in view.observation_space
    np.testing.assert_array_equal(obs, view.starts[view.start_index].numpy())
    obs, reward, terminated, truncated, info = view.step(_sample(view.action_space, 0))
    assert obs.shape == (6, OBS_DIM) and obs.dtype == np.float32
    assert reward.shape == (6,) and reward.dtype == np.float64
    assert terminated.dtype == bool and truncated.dtype == bool and not truncated.any()
    discrete = _learned_view(discrete=True)
    assert discrete.single_action_space == gym.spaces.Discrete(2)
    discrete.reset(seed=0)
    discrete.step(_sample(discrete.action_space, 1))


def test_truncation_at_the_horizon_and_same_step_autoreset():
    view = _learned_view(num_envs=5, horizon=3)
    view.reset(seed=1)
    for t in range(1, 7):
        obs, _, terminated, truncated, info = view.step(_sample(view.action_space, t))
        assert not terminated.any()
        assert truncated.all() == (t % 3 == 0) and (truncated.any() == (t % 3 == 0))
        if t % 3 == 0:
            assert info["_final_obs"].all() and len(info["final_obs"]) == 5
            np.testing.assert_array_equal(obs, view.starts[view.start_index].numpy())
            assert not np.array_equal(np.stack(info["final_obs"]), obs)
            assert (view.lengths == 0).all()
        else:
            assert "final_obs" not in info


def test_terminated_rows_reset_alone():
    view = _learned_view(num_envs=32, horizon=50, terminate_at=0.6)
    view.reset(seed=2)
    seen = False
    for t in range(10):
        obs, _, terminated, truncated, info = view.step(_sample(view.action_space, t))
        assert not truncated.any()
        if terminated.any():
            seen = True
            rows = np.flatnonzero(terminated)
            assert (info["_final_obs"] == terminated).all()
            assert all(info["final_obs"][i] is None for i in np.flatnonzero(~terminated))
            final = np.stack(info["final_obs"][rows])
            assert (np.abs(final[:, 0]) > 0.6).all()
            np.testing.assert_array_equal(obs[rows], view.starts[view.start_index[rows]].numpy())
            assert (view.lengths[rows] == 0).all() and (view.lengths[~terminated] == t + 1).all()
            break
    assert seen


def test_same_seed_same_rollout_and_new_starts():
    def roll(view):
        out = [view.reset(seed=5)[0]]
        for t in range(6):
            out.append(view.step(_sample(view.action_space, t))[0])
        return np.stack(out)

    view = _learned_view()
    np.testing.assert_array_equal(roll(view), roll(view))
    other = torch.full((2, OBS_DIM), 7.0)
    obs, _ = view.reset(seed=0, options={"starts": other})
    assert (obs == 7.0).all()


def test_refusals():
    with pytest.raises(ValueError, match=r"VectorEnvConfig\.horizon"):
        VectorEnvConfig(horizon=0)
    with pytest.raises(ValueError, match=r"VectorEnvConfig\.num_envs"):
        VectorEnvConfig(num_envs=-1)
    view = _learned_view()
    with pytest.raises(RuntimeError, match="before reset"):
        view.step(np.zeros((6, 2), np.float32))
    view.reset(seed=0)
    with pytest.raises(ShapeError, match=r"\[6, 2\]"):
        view.step(np.zeros((5, 2), np.float32))
    bad = ModelVectorEnv(view.model, view.starts, start_state=lambda rows, g: rows)
    with pytest.raises(ShapeError, match="start_state"):
        bad.reset(seed=0)


def test_record_episode_statistics_on_top():
    view = gym.wrappers.vector.RecordEpisodeStatistics(_learned_view(num_envs=4, horizon=3))
    view.reset(seed=0)
    for t in range(3):
        _, _, _, _, info = view.step(_sample(view.action_space, t))
    assert info["_episode"].all() and (info["episode"]["l"] == 3).all()


def test_the_project_ppo_collects_a_rollout_inside(tmp_path):
    """The on-policy loop's collection line, unchanged, on the view of the exact model."""
    model = MujocoModel(MujocoConfig(env_id="InvertedPendulum-v5"))
    starts = model.initial_state(16, np.random.default_rng(0))
    view = ModelVectorEnv(model, starts, config=VectorEnvConfig(num_envs=4, horizon=5))
    quiet = {"eval_episodes": 0, "eval_every": 10**9, "checkpoint_every": 10**9}
    config = PPO.Config(
        env="InvertedPendulum-v5", num_envs=4, num_steps=12, batch_size=16, num_epochs=1,
        run_dir=str(tmp_path), **quiet,
    )  # fmt: skip
    loop = PPO(config.env, config).loop
    real = loop.envs
    assert view.single_observation_space.shape == real.single_observation_space.shape
    np.testing.assert_array_equal(view.single_action_space.low, real.single_action_space.low)
    loop.envs = gym.wrappers.vector.RecordEpisodeStatistics(view)
    loop.next_obs = loop._prepare(loop.envs.reset(seed=0)[0], update=True)
    loop.collect()
    buffer = loop.buffer
    assert torch.isfinite(buffer.advantages).all() and torch.isfinite(buffer.returns).all()
    assert buffer.dones.sum() >= 4 * 2  # every sub-environment ended at least twice
    lengths = [length for _, length in loop._episodes]
    assert lengths and max(lengths) <= 5


def test_reset_seeding_as_gymnasium_checks_it():
    """As gymnasium's env checker asks of ``reset``: the same seed gives the same
    observations, another seed others, and an unseeded reset continues the generator."""
    view = _learned_view(num_envs=8)
    first, _ = view.reset(seed=3)
    again, _ = view.reset(seed=3)
    np.testing.assert_array_equal(first, again)
    other, _ = view.reset(seed=4)
    assert not np.array_equal(first, other)
    view.reset(seed=3)
    follow, _ = view.reset()
    view.reset(seed=3)
    np.testing.assert_array_equal(follow, view.reset()[0])
    assert view.np_random_seed == 3
