"""The exact MuJoCo model against gymnasium's own envs, step for step."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from mbrl.games.mujoco import MujocoConfig, MujocoModel, available, state_of
from mbrl.model import Model, ShapeError, UnknownNameError

pytestmark = pytest.mark.usefixtures("one_thread")

# physics-state tolerance of open-loop trajectories (see the module docstring: the RK4 tasks
# agree to rounding; HalfCheetah's cold-started contact solver drifts at the 1e-6 level)
TRAJECTORY_ATOL = {"HalfCheetah-v5": 1e-4}
DEFAULT_ATOL = 1e-9


@pytest.fixture(scope="module", params=available())
def model(request) -> MujocoModel:
    return MujocoModel(MujocoConfig(env_id=request.param))


def _random_actions(model: MujocoModel, b: int, rng: np.random.Generator) -> np.ndarray:
    spec = model.spec
    return rng.uniform(spec.action_low, spec.action_high, (b, model.nu)).astype(np.float32)


def test_covers_the_required_tasks():
    assert {"InvertedPendulum-v5", "HalfCheetah-v5", "Hopper-v5"} <= set(available())


def test_spec_matches_the_env(model):
    env = gym.make(model.config.env_id)
    spec = model.spec
    assert isinstance(model, Model)
    assert spec.obs_shape == env.observation_space.shape
    assert spec.action_shape == env.action_space.shape and spec.num_actions is None
    np.testing.assert_array_equal(spec.action_low, env.action_space.low)
    np.testing.assert_array_equal(spec.action_high, env.action_space.high)
    assert spec.state_dtype == torch.float64
    assert spec.max_episode_length == env.spec.max_episode_steps
    assert model.mj_model.opt.timestep * model.frame_skip == env.unwrapped.dt


def test_steps_like_gymnasium_for_a_batch_of_envs(model):
    """B envs from different resets, stepped on the same random actions for up to 50 steps
    by gymnasium one by one and by the model all at once: same states, observations,
    rewards and terminations."""
    env_id, b = model.config.env_id, 4
    envs = [gym.make(env_id) for _ in range(b)]
    first = np.stack([env.reset(seed=10 + i)[0] for i, env in enumerate(envs)])
    state = state_of(model, envs)
    np.testing.assert_allclose(model.observe(state).numpy(), first, rtol=1e-6, atol=1e-6)
    rng, done = np.random.default_rng(0), np.zeros(b, dtype=bool)
    atol = TRAJECTORY_ATOL.get(env_id, DEFAULT_ATOL)
    steps = 0
    for _ in range(50):
        action = _random_actions(model, b, rng)
        result = model.step(state, torch.from_numpy(action))
        obs = model.observe(result.state).numpy()
        for i, env in enumerate(envs):
            if done[i]:
                continue
            env_obs, reward, terminated, _, _ = env.step(action[i])
            np.testing.assert_allclose(obs[i], env_obs, rtol=1e-5, atol=10 * atol + 1e-6)
            np.testing.assert_allclose(float(result.reward[i]), reward, rtol=1e-5, atol=atol + 1e-6)
            assert bool(result.terminal[i]) == terminated
            done[i] = terminated
            steps += 1
        live = torch.from_numpy(~done)
        np.testing.assert_allclose(
            result.state[live].numpy(), state_of(model, np.array(envs)[~done]).numpy(), atol=atol
        )
        state = result.state
    assert steps > 20


def test_one_step_from_a_real_state_is_exact(model):
    """From the real env's current state (warm solver included), one model step agrees
    with the env's to the solver's tolerance."""
    env = gym.make(model.config.env_id)
    env.reset(seed=3)
    rng = np.random.default_rng(3)
    for _ in range(30):
        action = _random_actions(model, 1, rng)
        result = model.step(state_of(model, env), torch.from_numpy(action))
        _, reward, terminated, _, _ = env.step(action[0])
        real = state_of(model, env)[0].numpy()
        np.testing.assert_allclose(result.state[0].numpy(), real, atol=1e-9)
        np.testing.assert_allclose(float(result.reward[0]), reward, rtol=1e-5, atol=1e-6)
        if terminated:
            env.reset(seed=4)


def test_a_state_from_the_observation_steps_like_the_state(model):
    """The state rebuilt from an observation (unobserved positions at 0) observes the
    same, and a step from it gives the same observation, reward and termination as a
    step from the full state (the tasks do not depend on the positions left out)."""
    rng = np.random.default_rng(1)
    state = model.initial_state(8, rng)
    for _ in range(5):  # away from the reset, velocities still inside Hopper's clip
        state = model.step(state, torch.from_numpy(_random_actions(model, 8, rng))).state
    obs = model.observe(state)
    rebuilt = model.state_from_observation(obs)
    np.testing.assert_allclose(model.observe(rebuilt), obs, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(model.is_terminal(rebuilt), model.is_terminal(state))
    action = torch.from_numpy(_random_actions(model, 8, rng))
    true, from_obs = model.step(state, action), model.step(rebuilt, action)
    # Hopper and Walker2d observe velocities clipped at 10: rows beyond it differ
    _, qvel = model._split(state.numpy())
    rows = np.abs(qvel).max(1) < 10
    assert rows.sum() >= 2
    np.testing.assert_allclose(model.observe(from_obs.state)[rows],
                               model.observe(true.state)[rows], atol=1e-4)  # fmt: skip
    np.testing.assert_allclose(from_obs.reward[rows], true.reward[rows], atol=1e-4)
    np.testing.assert_array_equal(from_obs.terminal[rows], true.terminal[rows])
    with pytest.raises(ShapeError, match="state_from_observation"):
        model.state_from_observation(obs[:, 1:])


def test_initial_state_follows_the_reset_law(model):
    env = gym.make(model.config.env_id)
    real = np.stack([env.reset(seed=s)[0] for s in range(200)])
    state = model.initial_state(200, np.random.default_rng(0))
    assert state.shape == (200, *model.spec.state_shape) and not model.is_terminal(state).any()
    obs = model.observe(state).numpy()
    np.testing.assert_allclose(obs.mean(0), real.mean(0), atol=0.03)
    np.testing.assert_allclose(obs.std(0), real.std(0), rtol=0.25, atol=1e-3)
    again = model.initial_state(200, np.random.default_rng(0))
    assert torch.equal(state, again)


def test_terminal_rows_absorb():
    model = MujocoModel(MujocoConfig(env_id="Hopper-v5"))
    state = model.initial_state(8, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    for _ in range(300):
        state = model.step(state, torch.from_numpy(_random_actions(model, 8, rng))).state
        if model.is_terminal(state).all():
            break
    assert model.is_terminal(state).all() and not model.legal_actions(state).any()
    again = model.step(state, torch.from_numpy(_random_actions(model, 8, rng)))
    assert torch.equal(again.state, state) and again.terminal.all() and (again.reward == 0).all()


def test_actions_are_clipped_into_the_box():
    model = MujocoModel(MujocoConfig(env_id="HalfCheetah-v5"))
    state = model.initial_state(5, np.random.default_rng(0))
    wild = torch.from_numpy(np.random.default_rng(1).normal(0, 4, (5, model.nu)))
    low, high = torch.tensor(model.spec.action_low), torch.tensor(model.spec.action_high)
    outside, clipped = model.step(state, wild), model.step(state, wild.clamp(low, high))
    assert torch.equal(outside.state, clipped.state) and torch.equal(outside.reward, clipped.reward)


def test_threads_give_the_same_result():
    one = MujocoModel(MujocoConfig(env_id="Hopper-v5"))
    two = MujocoModel(MujocoConfig(env_id="Hopper-v5", num_threads=2))
    state = one.initial_state(33, np.random.default_rng(0))
    action = torch.from_numpy(_random_actions(one, 33, np.random.default_rng(1)))
    first, second = one.step(state, action), two.step(state, action)
    assert torch.equal(first.state, second.state) and torch.equal(first.reward, second.reward)
    two.close()


def test_bad_ids_and_shapes_are_refused():
    with pytest.raises(UnknownNameError, match="Hopper-v5") as info:
        MujocoConfig(env_id="Hopper-v1")
    assert "HalfCheetah-v5" in info.value.known
    with pytest.raises(ValueError, match="num_threads"):
        MujocoConfig(num_threads=0)
    model = MujocoModel(MujocoConfig(env_id="InvertedPendulum-v5"))
    state = model.initial_state(3, np.random.default_rng(0))
    with pytest.raises(ShapeError, match=r"\[3, 1\]"):
        model.step(state, torch.zeros(2, 1))
    with pytest.raises(ShapeError):
        model.observe(state.float())
    with pytest.raises(ValueError, match="not the model's"):
        state_of(model, gym.make("Hopper-v5"))


def test_a_reward_fn_replaces_the_tasks_reward():
    seen = []

    def reward_fn(obs, action, next_obs):
        seen.append((obs, action, next_obs))
        return next_obs[:, 0] - obs[:, 0] + action[:, 0]

    plain = MujocoModel(MujocoConfig(env_id="Hopper-v5"))
    shaped = MujocoModel(MujocoConfig(env_id="Hopper-v5"), reward_fn=reward_fn)
    state = plain.initial_state(6, np.random.default_rng(0))
    state[:2, -1] = 1.0  # two terminal rows: they absorb with reward 0
    action = torch.from_numpy(np.random.default_rng(1).normal(0, 3, (6, plain.nu)))
    a, b = plain.step(state, action), shaped.step(state, action)
    assert torch.equal(a.state, b.state) and torch.equal(a.terminal, b.terminal)
    obs, clipped, next_obs = seen[0]
    assert clipped.abs().max() <= 1.0  # the action as applied, inside the box
    torch.testing.assert_close(obs, plain.observe(state))
    torch.testing.assert_close(next_obs, plain.observe(a.state))
    expected = next_obs[:, 0] - obs[:, 0] + clipped[:, 0]
    assert b.reward.dtype == torch.float32
    torch.testing.assert_close(b.reward[2:], expected[2:].float())
    assert (b.reward[:2] == 0).all() and not torch.equal(a.reward, b.reward)
    with pytest.raises(ShapeError, match="reward_fn must return"):
        MujocoModel(MujocoConfig(env_id="Hopper-v5"), reward_fn=lambda o, a, n: o[:, :2]).step(
            state, action
        )
