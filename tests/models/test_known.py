"""The known reward and termination functions against the envs' own, on transitions
recorded from ``gymnasium.make(id)`` under seeded random actions; the registry; and a
learned model that uses them."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from mbrl.model import ShapeError, UnknownNameError
from mbrl.models import (
    Ensemble,
    EnsembleConfig,
    KnownFunctions,
    LearnedModel,
    covered_envs,
    known_functions,
    shaped_envs,
)

pytestmark = pytest.mark.usefixtures("one_thread")

NUM_STEPS = 400
SEED = 0

X_VELOCITY_COLUMN = {"HalfCheetah-v5": 8, "Hopper-v5": 5, "Walker2d-v5": 8, "Ant-v5": 13}
"""Where the observation holds the x velocity qvel[0] (the end velocity of the step)."""

MEAN_ERROR_BOUND = {"HalfCheetah-v5": 0.2, "Hopper-v5": 0.01, "Walker2d-v5": 0.03, "Ant-v5": 0.15}
"""Mean absolute reward error allowed per transition: about twice the error measured over
5000 transitions (BENCHMARKS.md: 0.089, 0.0017, 0.0075, 0.047)."""

VELOCITY_WEIGHT_BEFORE = {
    "HalfCheetah-v5": 0.4,
    "Hopper-v5": 0.5,
    "Walker2d-v5": 0.5,
    "Ant-v5": 0.5,
}
"""The estimate of the forward velocity: this weight on the start's x velocity, the rest
on the end's (semi-implicit Euler over 5 substeps; RK4's trapezoid)."""

EXACT_REWARD = sorted(set(covered_envs()) - set(X_VELOCITY_COLUMN))

TERMINATING = {"InvertedPendulum-v5", "CartPole-v1", "Hopper-v5", "Walker2d-v5", "Ant-v5"}


def kick(env_id: str, env: gym.Env, rng: np.random.Generator, obs: np.ndarray) -> np.ndarray:
    """The observation after moving a fresh start towards the terminations random actions
    rarely reach: CartPole near the edge of its track and sliding out; Hopper and
    Walker2d lowered (and Walker2d thrown up or down), Ant thrown up or down."""
    unwrapped = env.unwrapped
    if env_id == "CartPole-v1":
        side = rng.choice([-1.0, 1.0])
        unwrapped.state = np.array([2.3 * side, side, 0.0, 0.0])
        return unwrapped.state.astype(np.float32)
    if env_id not in KICKS:
        return obs
    column, drop, speed = KICKS[env_id]
    qpos, qvel = unwrapped.data.qpos.copy(), unwrapped.data.qvel.copy()
    qpos[column] -= rng.uniform(0.0, drop)
    qvel[column] += rng.uniform(-speed, speed)
    unwrapped.set_state(qpos, qvel)
    return unwrapped._get_obs()


KICKS = {"Hopper-v5": (1, 0.8, 0.0), "Walker2d-v5": (1, 0.6, 8.0), "Ant-v5": (2, 0.0, 12.0)}
"""``(height column of qpos, largest drop, largest vertical speed)`` of a kicked start."""


def record(
    env_id: str, num_steps: int = NUM_STEPS, seed: int = SEED, kicks: bool = False
) -> dict[str, np.ndarray]:
    """Transitions of random actions, reset after each episode: obs, action, reward,
    next_obs, terminated and the env's ``info["x_velocity"]`` (NaN where it has none).
    Pendulum's actions come from 1.5 times its box, to exercise its clip. With
    ``kicks``, half the starts are kicked (:func:`kick`)."""
    env = gym.make(env_id, disable_env_checker=True)
    env.action_space.seed(seed)
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    rows = {k: [] for k in ("obs", "action", "reward", "next_obs", "terminated", "x_velocity")}
    for _ in range(num_steps):
        action = env.action_space.sample()
        if env_id == "Pendulum-v1":
            action = 1.5 * action
        next_obs, reward, terminated, truncated, info = env.step(action)
        values = (obs, action, reward, next_obs, terminated, info.get("x_velocity", np.nan))
        for key, value in zip(rows, values, strict=True):
            rows[key].append(value)
        obs = next_obs
        if terminated or truncated:
            obs, _ = env.reset()
            if kicks and rng.random() < 0.5:
                obs = kick(env_id, env, rng, obs)
    env.close()
    return {key: np.asarray(value) for key, value in rows.items()}


def known_on(env_id: str, data: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``(reward [N] float64, terminated [N] bool)`` of the known functions, given the
    recorded arrays as they are (float32 observations for Pendulum and CartPole)."""
    known = known_functions(env_id)
    obs, next_obs = torch.from_numpy(data["obs"]), torch.from_numpy(data["next_obs"])
    action = torch.from_numpy(data["action"])
    reward = known.reward(obs, action, next_obs)
    terminated = known.termination(obs, action, next_obs)
    assert reward.shape == terminated.shape == (obs.shape[0],)
    assert reward.dtype == obs.dtype and terminated.dtype == torch.bool
    return reward.double().numpy(), terminated.numpy()


@pytest.fixture(scope="module", params=covered_envs())
def recorded(request):
    env_id = request.param
    return env_id, record(env_id)


def test_the_suites_envs_are_covered():
    suites = {
        "Pendulum-v1",
        "InvertedPendulum-v5",
        "CartPole-v1",
        "HalfCheetah-v5",
        "Hopper-v5",
        "Walker2d-v5",
        "Ant-v5",
        "Reacher-v5",
    }
    assert set(covered_envs()) == suites
    for env_id in suites:
        known = known_functions(env_id)
        assert isinstance(known, KnownFunctions) and known.env_id == env_id and known.note
        assert known.exact_reward == (env_id not in X_VELOCITY_COLUMN)
        assert known.exact_termination


@pytest.fixture(scope="module", params=covered_envs())
def recorded_with_kicks(request):
    env_id = request.param
    return env_id, record(env_id, kicks=True)


def test_termination_agrees_with_the_env_on_every_transition(recorded_with_kicks):
    env_id, data = recorded_with_kicks
    _, terminated = known_on(env_id, data)
    np.testing.assert_array_equal(terminated, data["terminated"])
    if env_id in TERMINATING:  # the recording holds both outcomes
        assert 0 < data["terminated"].sum() < NUM_STEPS
    else:
        assert not data["terminated"].any()


@pytest.mark.parametrize("recorded", EXACT_REWARD, indirect=True)
def test_exact_rewards_equal_the_envs(recorded):
    env_id, data = recorded
    reward, _ = known_on(env_id, data)
    np.testing.assert_allclose(reward, data["reward"], rtol=0, atol=1e-5)
    assert np.unique(data["reward"]).size > 1 or env_id == "CartPole-v1"


@pytest.mark.parametrize("recorded", sorted(X_VELOCITY_COLUMN), indirect=True)
def test_approximate_rewards_err_only_by_the_forward_velocity(recorded):
    """Every term but the forward velocity is exact, so the reward's error is the
    velocity estimate's; its mean stays under the measured bound and under the error
    of the end velocity alone."""
    env_id, data = recorded
    reward, _ = known_on(env_id, data)
    column = X_VELOCITY_COLUMN[env_id]
    start, end = data["obs"][:, column], data["next_obs"][:, column]
    weight_before = VELOCITY_WEIGHT_BEFORE[env_id]
    estimate = weight_before * start + (1 - weight_before) * end
    np.testing.assert_allclose(
        reward - data["reward"], estimate - data["x_velocity"], rtol=0, atol=1e-6
    )
    error = np.abs(reward - data["reward"])
    assert error.mean() < MEAN_ERROR_BOUND[env_id]
    assert error.mean() < np.abs(end - data["x_velocity"]).mean()


def test_functions_take_float32_batches_as_the_learned_model_gives():
    data = record("Hopper-v5", num_steps=50)
    known = known_functions("Hopper-v5")
    obs = torch.from_numpy(data["obs"]).float()
    next_obs = torch.from_numpy(data["next_obs"]).float()
    action = torch.from_numpy(data["action"])
    reward = known.reward(obs, action, next_obs)
    assert reward.dtype == torch.float32
    reward64, terminated64 = known_on("Hopper-v5", data)
    np.testing.assert_allclose(reward.numpy(), reward64, atol=1e-5)
    np.testing.assert_array_equal(known.termination(obs, action, next_obs), terminated64)


def test_a_wrong_observation_width_raises():
    known = known_functions("Ant-v5")  # default obs has the contact forces: 105 columns
    obs = torch.zeros(4, 27, dtype=torch.float64)
    with pytest.raises(ShapeError, match=r"Ant-v5.*105"):
        known.reward(obs, torch.zeros(4, 8), obs)


def test_registry_defaults_to_a_learned_reward_and_hints_at_typos():
    assert known_functions("Swimmer-v5") is None  # a registered env without functions
    assert known_functions("Hopper-v4") is None  # another version: other rewards
    assert known_functions("my-own-world") is None
    for typo, covered in [("halfcheetah-v5", "HalfCheetah-v5"), ("Hoper-v5", "Hopper-v5")]:
        with pytest.raises(UnknownNameError, match=f"did you mean '{covered}'"):
            known_functions(typo)


def test_a_learned_model_uses_the_known_functions():
    """Its step's reward and termination are the known functions of its own transition
    (observation, action clamped into the box, next observation)."""
    env_id = "Hopper-v5"
    known = known_functions(env_id)
    data = record(env_id, num_steps=64)
    config = EnsembleConfig(
        obs_dim=11,
        action_dim=3,
        num_members=3,
        num_elites=2,
        hidden_sizes=(16,),
        learn_reward=False,
    )
    ensemble = Ensemble(config, generator=torch.Generator().manual_seed(0))
    model = LearnedModel(
        ensemble,
        reward_fn=known.reward,
        termination_fn=known.termination,
        action_low=[-1.0] * 3,
        action_high=[1.0] * 3,
    )
    g = torch.Generator().manual_seed(1)
    obs = torch.from_numpy(data["next_obs"]).float()  # includes unhealthy ones
    state = model.initial_state(obs, generator=g)
    action = 2 * torch.randn(obs.shape[0], 3, generator=g)
    result = model.step(state, action, generator=g)
    next_obs = model.observe(result.state)
    clamped = action.clamp(-1.0, 1.0)
    torch.testing.assert_close(result.reward, known.reward(obs, clamped, next_obs))
    terminal = known.termination(obs, clamped, next_obs)
    torch.testing.assert_close(result.terminal, terminal)
    assert terminal.any() and not terminal.all()
    assert not torch.allclose(result.reward, known.reward(obs, action, next_obs))


HEALTH_STATES = 2000


@pytest.mark.parametrize("env_id", ["Hopper-v5", "Walker2d-v5", "Ant-v5"])
def test_termination_is_the_envs_health_check_on_states_across_its_bounds(env_id):
    """On states set in the env around every bound of its health check (height, angle,
    Hopper's state range, Ant's finiteness), the termination of the observation is
    ``not env.is_healthy``; Hopper's speeds are kept under 100 (see the next test)."""
    env = gym.make(env_id, disable_env_checker=True)
    env.reset(seed=SEED)
    unwrapped = env.unwrapped
    rng = np.random.default_rng(SEED)
    nq, nv = unwrapped.model.nq, unwrapped.model.nv
    height = {"Hopper-v5": 1, "Walker2d-v5": 1, "Ant-v5": 2}[env_id]
    observations, unhealthy = [], []
    for _ in range(HEALTH_STATES):
        qpos = unwrapped.init_qpos + rng.uniform(-0.5, 0.5, nq)
        qvel = rng.uniform(-20.0, 20.0, nv)
        qpos[height] = rng.uniform(0.0, 2.5)
        if env_id != "Ant-v5":
            qpos[2] = rng.uniform(-1.5, 1.5)  # the torso's angle
        if env_id == "Hopper-v5" and rng.random() < 0.2:
            qpos[rng.integers(2, nq)] = rng.choice([-1.0, 1.0]) * rng.uniform(90.0, 110.0)
        if env_id == "Ant-v5" and rng.random() < 0.05:
            qvel[rng.integers(nv)] = np.nan
        unwrapped.set_state(qpos, qvel)
        observations.append(unwrapped._get_obs())
        unhealthy.append(not unwrapped.is_healthy)
    env.close()
    obs, unhealthy = torch.from_numpy(np.array(observations)), np.array(unhealthy)
    assert 0.2 < unhealthy.mean() < 0.95
    terminated = known_functions(env_id).termination(obs, None, obs)
    np.testing.assert_array_equal(terminated.numpy(), unhealthy)


def test_hopper_speeds_of_100_are_not_visible_in_its_clipped_observation():
    """The documented limit of Hopper's termination: a joint speed past 100 makes the
    env unhealthy, but the observation clips it to 10."""
    env = gym.make("Hopper-v5", disable_env_checker=True)
    env.reset(seed=SEED)
    unwrapped = env.unwrapped
    qvel = unwrapped.data.qvel.copy()
    qvel[4] = 150.0
    unwrapped.set_state(unwrapped.data.qpos.copy(), qvel)
    obs = torch.from_numpy(unwrapped._get_obs())[None]
    assert not unwrapped.is_healthy
    assert not known_functions("Hopper-v5").termination(obs, None, obs).item()
    env.close()


def test_the_inverted_pendulums_planning_reward_prefers_a_centred_upright_pole():
    assert shaped_envs() == ["InvertedPendulum-v5"]
    assert all(
        known_functions(env_id).planning_reward is None
        for env_id in covered_envs()
        if env_id not in shaped_envs()
    )
    shaped = known_functions("InvertedPendulum-v5").planning_reward
    # x, theta, x velocity, theta velocity; the tip is at x + 0.6 sin(theta)
    next_obs = torch.tensor(
        [
            [0.0, 0.0, 0.0, 0.0],  # centred, upright: the best step
            [0.5, 0.0, 0.0, 0.0],  # off centre
            [0.9, 0.0, 0.0, 0.0],  # near the end of the rail
            [0.1, -0.15, 0.0, 0.0],  # leaning back over the centre: tip at x 0.0104
            [0.0, 0.21, 0.0, 0.0],  # fallen: the env terminates
        ]
    )
    obs, action = torch.zeros_like(next_obs), torch.zeros(5, 1)
    reward = shaped(obs, action, next_obs)
    tip_x = next_obs[:, 0] + 0.6 * torch.sin(next_obs[:, 1])
    tip_z = 0.6 * (torch.cos(next_obs[:, 1]) - 1)
    closed_form = 0.5 * (1 + torch.exp(-(tip_x**2 + tip_z**2) / 0.36))
    torch.testing.assert_close(reward[:4], closed_form[:4])
    assert reward[0] == 1.0 and reward[4] == 0.0
    assert reward[0] > reward[3] > reward[1] > reward[2] > 0.5  # every step up earns over half
    known = known_functions("InvertedPendulum-v5")
    assert torch.equal(reward > 0, known.reward(obs, action, next_obs) > 0)
