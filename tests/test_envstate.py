"""An episode in progress saved as plain data and restored onto a fresh env steps on
exactly as the original does; unsupported envs and mismatched states are refused."""

import collections
import json

import gymnasium as gym
import numpy as np
import pytest

from mbrl.training.envstate import EnvStateError, env_state, restore_env_state

pytestmark = pytest.mark.usefixtures("one_thread")


def _plain(env_id, **kwargs):
    return gym.wrappers.RecordEpisodeStatistics(gym.make(env_id, **kwargs))


def _normalised(env_id, **kwargs):
    env = gym.wrappers.ClipAction(gym.make(env_id, **kwargs))
    env = gym.wrappers.NormalizeReward(gym.wrappers.NormalizeObservation(env))
    return gym.wrappers.RecordEpisodeStatistics(env)


def _transformed(env_id, **kwargs):
    env = gym.make(env_id, **kwargs)
    ones = np.ones(env.action_space.shape, np.float32)
    env = gym.wrappers.RescaleAction(env, -ones, ones)
    env = gym.wrappers.TransformObservation(env, lambda o: 2 * o, env.observation_space)
    env = gym.wrappers.TransformReward(gym.wrappers.FlattenObservation(env), lambda r: r + 1)
    return gym.wrappers.RecordEpisodeStatistics(env)


# (id, how it is wrapped); short time limits put an episode end inside the 50 steps
CASES = [
    ("CartPole-v1", _plain),
    ("Pendulum-v1", _plain),
    ("Pendulum-v1", _transformed),
    ("InvertedPendulum-v5", _plain),
    ("HalfCheetah-v5", _plain),
    ("HalfCheetah-v5", _normalised),
    ("Ant-v5", _plain),  # reads derived quantities (xpos) before it steps
]


def _check_plain(value, where="state"):
    """Only dict (str keys), list, str, int, float, bool, None and numpy arrays."""
    if isinstance(value, dict):
        assert type(value) is dict, where
        for key, item in value.items():
            assert type(key) is str, f"{where}: key {key!r}"
            _check_plain(item, f"{where}[{key!r}]")
    elif isinstance(value, list):
        assert type(value) is list, where
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
    elif isinstance(value, np.ndarray):
        assert type(value) is np.ndarray and not value.dtype.hasobject, where
    else:
        assert value is None or type(value) in (str, int, float, bool), f"{where}: {type(value)}"


def _advance(env, steps):
    env.reset(seed=0)
    env.action_space.seed(1)
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()


def _assert_same_info(a, b):
    assert a.keys() == b.keys()
    for key in a:
        if key == "episode":  # "t" is wall-clock time
            for stat in ("r", "l"):
                np.testing.assert_array_equal(a[key][stat], b[key][stat])
        else:
            np.testing.assert_array_equal(a[key], b[key])


@pytest.mark.parametrize(("env_id", "make"), CASES, ids=[f"{i}-{m.__name__}" for i, m in CASES])
def test_restored_env_steps_exactly_like_the_original(env_id, make):
    original = make(env_id, max_episode_steps=40)
    _advance(original, 30)
    state = env_state(original)
    _check_plain(state)
    json.dumps(state, default=lambda a: a.tolist())

    restored = make(env_id, max_episode_steps=40)
    restored.reset(seed=123)  # a different episode, overwritten by the restore
    restored.action_space.seed(99)
    restore_env_state(restored, state)

    ends = 0
    for _ in range(50):
        action = original.action_space.sample()
        np.testing.assert_array_equal(action, restored.action_space.sample())
        a, b = original.step(action), restored.step(action)
        for x, y in zip(a[:4], b[:4]):
            np.testing.assert_array_equal(x, y)
        _assert_same_info(a[4], b[4])
        if a[2] or a[3]:
            ends += 1
            (obs_a, info_a), (obs_b, info_b) = original.reset(), restored.reset()
            np.testing.assert_array_equal(obs_a, obs_b)
            _assert_same_info(info_a, info_b)
    assert ends >= 1
    original.close()
    restored.close()


def test_mismatched_wrapper_chain_is_refused():
    state = env_state(_plain("CartPole-v1"))
    with pytest.raises(ValueError, match=r"RecordEpisodeStatistics.*found.*TimeLimit"):
        restore_env_state(gym.make("CartPole-v1"), state)


@pytest.mark.filterwarnings("ignore:.*CartPole-v0 is out of date")
def test_state_of_another_env_id_is_refused():
    state = env_state(_plain("CartPole-v0"))  # the same classes as v1
    with pytest.raises(ValueError, match=r"CartPole-v0.*CartPole-v1"):
        restore_env_state(_plain("CartPole-v1"), state)
    with pytest.raises(ValueError, match=r"CartPoleEnv.*found.*PendulumEnv"):
        restore_env_state(_plain("Pendulum-v1"), {**state, "env_id": None})


def _corrupt_state(state):
    state["layers"][-1]["attrs"]["state"] = {"type": "code", "source": "print()"}


def _corrupt_generator(state):
    state["layers"][-1]["attrs"]["_np_random"]["state"] = "not a state"


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (_corrupt_state, r"CartPoleEnv\.state: cannot restore a value tagged 'code'"),
        (_corrupt_generator, r"CartPoleEnv\._np_random: generator state"),
    ],
)
def test_refused_state_changes_nothing(corrupt, message):
    original = _plain("CartPole-v1")
    _advance(original, 5)
    state = env_state(original)
    corrupt(state)
    fresh = _plain("CartPole-v1")
    fresh.reset(seed=3)
    before = json.dumps(env_state(fresh), default=lambda a: a.tolist())
    with pytest.raises(ValueError, match=message):
        restore_env_state(fresh, state)
    assert json.dumps(env_state(fresh), default=lambda a: a.tolist()) == before


class _Holder(gym.Env):
    """An env keeping assorted plain containers, generators and composite spaces."""

    def __init__(self, thing=None):
        self.observation_space = gym.spaces.Dict(
            {
                "a": gym.spaces.Discrete(3),
                "b": gym.spaces.Tuple((gym.spaces.Box(-1, 1), gym.spaces.MultiBinary(2))),
            }
        )
        self.action_space = gym.spaces.Discrete(2)
        self.table = {1: (2, 3.0), (4, "x"): [np.float32(1.5), None, True]}
        self.queue = collections.deque([np.int64(1), 2.5], maxlen=3)
        self.rng = np.random.Generator(np.random.MT19937(5))
        self.stats = [gym.wrappers.utils.RunningMeanStd(shape=(2,))]
        if thing is not None:
            self.thing = thing


def test_containers_generators_and_spaces_round_trip():
    env = _Holder()
    env.observation_space.seed(4)
    env.rng.random(3)
    env.stats[0].update(np.ones((4, 2)))
    state = env_state(env)
    _check_plain(state)

    fresh = _Holder()
    restore_env_state(fresh, state)
    assert fresh.table == env.table
    assert type(fresh.table[(4, "x")][0]) is np.float32
    assert fresh.queue == env.queue and fresh.queue.maxlen == 3
    assert type(fresh.queue[0]) is np.int64
    assert type(fresh.rng.bit_generator) is np.random.MT19937
    np.testing.assert_array_equal(fresh.rng.random(5), env.rng.random(5))
    np.testing.assert_array_equal(fresh.stats[0].mean, env.stats[0].mean)
    assert fresh.stats[0].count == env.stats[0].count
    for _ in range(3):
        a, b = env.observation_space.sample(), fresh.observation_space.sample()
        assert a["a"] == b["a"]
        np.testing.assert_array_equal(a["b"][0], b["b"][0])
        np.testing.assert_array_equal(a["b"][1], b["b"][1])
    assert fresh.action_space._np_random is None  # never seeded, stays lazy


def test_arbitrary_object_is_refused_by_name():
    with pytest.raises(EnvStateError, match=r"_Holder\.thing: .*builtins\.object"):
        env_state(_Holder(thing=object()))
    with pytest.raises(EnvStateError, match=r"_Holder\.thing\[0\]"):
        env_state(_Holder(thing=[object()]))
