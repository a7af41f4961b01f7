"""MBPO: the rollout-length schedule, branched rollouts from replay states that stop at
predicted terminals, the real/imagined mix of a minibatch, learning a point mass,
exact resume, and clear errors when the model diverges or the config is bad."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import torch

from mbrl.algorithms.mbpo import MBPO, MBPOConfig
from mbrl.model import Step
from mbrl.models import ModelDivergedError
from mbrl.training.dyna import BranchedRollouts, rollout_length
from mbrl.training.envs import evaluate
from mbrl.training.replay import ReplayBuffer

from .pointmass import ENV_ID, pd_action

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = dict(
    learning_starts=100,
    gradient_steps=20,
    hidden_sizes=(64, 64),
    ensemble_size=3,
    model_elites=2,
    model_hidden_sizes=(64, 64),
    model_batch_size=32,
    rollout_batch_size=200,
    model_train_every=50,
    epoch_length=100,
    rollout_schedule=(1, 3, 1, 3),
    eval_episodes=0,
    log_every=50,
)


def small_config(tmp_path, **changes) -> MBPOConfig:
    fields = {**SMALL, "env": ENV_ID, "total_steps": 300, "run_dir": str(tmp_path)} | changes
    return MBPOConfig(**fields)


def test_rollout_length_schedule():
    # MBPO's Hopper schedule: 1 until epoch 20, linear to 15 at epoch 100, then 15
    schedule = (20, 100, 1, 15)
    got = [rollout_length(schedule, epoch) for epoch in (0, 20, 21, 40, 60, 99, 100, 500)]
    assert got == [1, 1, 1, 4, 8, 14, 15, 15]  # int(1 + 14 (e - 20) / 80)
    assert [rollout_length((5, 5, 2, 7), e) for e in (4, 5, 6)] == [2, 2, 7]


class _Ladder:
    """A scripted model: x climbs by 1 a step, reward x', terminal once x' > 2.5; the
    state is the observation plus a step counter (to check the rows' order)."""

    def initial_state(self, obs, num_particles, generator):
        return torch.cat([obs, torch.zeros(len(obs), 1)], 1)

    def observe(self, state):
        return state[:, :2].clone()

    def step(self, state, action, generator):
        next_state = state + torch.tensor([1.0, 0.0, 1.0])
        return Step(next_state, next_state[:, 0].clone(), next_state[:, 0] > 2.5)


def _hook(tmp_path, **changes) -> BranchedRollouts:
    config = small_config(tmp_path, **changes)
    space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    return BranchedRollouts(config, 2, space, torch.device("cpu"))


def test_branches_start_from_the_given_states_and_stop_at_predicted_terminals(tmp_path):
    hook = _hook(tmp_path)
    hook.model = _Ladder()
    hook.policy = lambda obs, generator: torch.full((len(obs), 1), 0.5)
    hook.length = 3
    starts = torch.tensor([[0.0, 7.0], [1.0, 8.0], [2.0, 9.0], [-5.0, 6.0]])
    added = hook.branch(starts)
    # x = 0 terminates at its 3rd step, 1 at its 2nd, 2 at its 1st; -5 never (3 steps)
    assert added == 3 + 2 + 1 + 3 == len(hook.model_replay)
    obs, action, reward, next_obs, terminated = (a[:added] for a in hook.model_replay.arrays())
    # step 1 of every row (in row order), step 2 of the rows still alive, then step 3
    np.testing.assert_array_equal(obs[:, 0], [0, 1, 2, -5, 1, 2, -4, 2, -3])
    np.testing.assert_array_equal(next_obs[:, 0], obs[:, 0] + 1)
    np.testing.assert_array_equal(obs[:4], starts.numpy())  # the starts, unchanged
    np.testing.assert_array_equal(reward, next_obs[:, 0])
    np.testing.assert_array_equal(terminated, next_obs[:, 0] > 2.5)
    np.testing.assert_array_equal(action, np.full((added, 1), 0.5))


def test_fit_and_branch_starts_from_real_replay_states(tmp_path):
    hook = _hook(tmp_path, rollout_batch_size=64)
    replay = ReplayBuffer(1000, (2,), 1)
    rng = np.random.default_rng(0)
    obs = rng.uniform(-1, 1, (300, 2)).astype(np.float32)
    action = rng.uniform(-1, 1, (300, 1)).astype(np.float32)
    next_obs = obs + 0.1 * np.concatenate([obs[:, 1:], action], 1)
    replay.add(obs, action, -(obs[:, 0] ** 2), next_obs, np.zeros(300, np.float32))
    hook.bind(replay, lambda o, g: torch.zeros(len(o), 1))
    hook.counters["steps"] = 300  # epoch 3: the schedule's full length 3
    hook.fit_and_branch()
    assert hook.length == 3 and hook.counters["fits"] == 1
    first = hook.model_replay.obs[:64]
    assert all((obs == row).all(1).any() for row in first)  # every start is a real state
    assert hook.counters["imagined_steps"] == 3 * 64 == len(hook.model_replay)
    assert hook.model_replay.capacity == hook.capacity(3) == 3 * 64 * 100 // 50


def test_minibatches_mix_real_and_imagined_rows(tmp_path):
    hook = _hook(tmp_path, real_ratio=0.25)
    real, rng = ReplayBuffer(10, (2,), 1), np.random.default_rng(0)
    real.add(np.ones((10, 2)), np.ones((10, 1)), np.ones(10), np.ones((10, 2)), np.zeros(10))
    assert (hook.sample(real, 8, rng).obs == 1).all()  # no rollout yet: all real
    hook.model_replay.add(-np.ones((5, 2)), np.ones((5, 1)), np.ones(5), np.ones((5, 2)),
                          np.zeros(5))  # fmt: skip
    batch = hook.sample(real, 8, rng)
    assert len(batch) == 8
    np.testing.assert_array_equal(batch.obs[:, 0].numpy(), [1, 1] + [-1] * 6)


def test_the_model_buffer_keeps_the_newest_rows_when_it_resizes(tmp_path):
    hook = _hook(tmp_path, rollout_batch_size=2, model_train_every=100, epoch_length=100)
    assert hook.model_replay.capacity == 2  # 2 starts x 1 fit an epoch x length 1
    rows = np.arange(5, dtype=np.float32)
    for x in rows:  # a ring of 2: holds 3 and 4
        hook.model_replay.add(np.full((1, 2), x), np.zeros((1, 1)), [x], np.zeros((1, 2)), [0])
    hook.resize(3)
    assert hook.model_replay.capacity == 6
    np.testing.assert_array_equal(hook.model_replay.reward[:2], [3, 4])
    hook.resize(1)
    hook.resize(1)
    np.testing.assert_array_equal(np.sort(hook.model_replay.reward[:2]), [3, 4])


def test_mbpo_learns_the_point_mass_near_a_pd_controller(tmp_path):
    agent = MBPO(ENV_ID, small_config(tmp_path))
    metrics = agent.learn()
    seeds, episodes = 10_000, 5  # evaluate's seeds: 10_000 + config.seed onwards
    agent.config = dataclasses.replace(agent.config, eval_episodes=episodes)
    learned = agent.evaluate()["eval/mean_return"]
    reference = evaluate(ENV_ID, pd_action, episodes, seeds).mean()
    idle = evaluate(ENV_ID, lambda obs: np.zeros((1, 1)), episodes, seeds).mean()
    # on these starts the PD controller gets about -1.4 and doing nothing about -5.2
    assert learned > reference - 1.0, (learned, reference, idle)
    assert learned > idle + 3.0, (learned, reference, idle)
    # fits at 100, 150, ..., 300; the imagined steps are logged beside the real ones
    assert agent.hook.counters["fits"] == 5
    assert metrics["model/imagined_steps"] == agent.hook.counters["imagined_steps"] > 1000
    assert metrics["model/rollout_length"] == 3


def test_resumed_run_continues_exactly(tmp_path):
    straight = MBPO(ENV_ID, small_config(tmp_path / "a", total_steps=220))
    straight.learn()
    first = MBPO(ENV_ID, small_config(tmp_path / "b", total_steps=220))
    first.learn(160)  # a fit at 100 and 150: the model buffer is full of rollouts
    resumed = MBPO.resume(first.run_dir)
    assert resumed.counters == first.counters
    assert resumed.hook.counters == first.hook.counters
    resumed.learn()
    assert resumed.hook.counters == straight.hook.counters
    for name in ("replay", "model_replay"):
        a, b = getattr(straight.hook, name), getattr(resumed.hook, name)
        assert len(a) == len(b) > 0
        for x, y in zip(a.arrays(), b.arrays(), strict=True):
            np.testing.assert_array_equal(x[: len(a)], y[: len(b)])
    for module in ("actor", "critic"):
        for (name, x), y in zip(
            getattr(straight, module).state_dict().items(),
            getattr(resumed, module).state_dict().values(),
            strict=True,
        ):
            torch.testing.assert_close(x, y, rtol=0, atol=0, msg=name)
    for (name, x), y in zip(
        straight.hook.ensemble.state_dict().items(),
        resumed.hook.ensemble.state_dict().values(),
        strict=True,
    ):
        torch.testing.assert_close(x, y, rtol=0, atol=0, msg=name)


def test_saved_agent_acts_as_before(tmp_path):
    agent = MBPO(ENV_ID, small_config(tmp_path, total_steps=160))
    agent.learn()
    loaded = MBPO.load(agent.save(tmp_path / "agent.safetensors"))
    obs = np.array([[0.5, 0.0], [-0.3, 0.2]], dtype=np.float32)
    np.testing.assert_array_equal(agent.predict(obs), loaded.predict(obs))
    for x, y in zip(agent.hook.ensemble.parameters(), loaded.hook.ensemble.parameters()):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def _explode_learning_rate(agent):
    for group in agent.hook.model_trainer.optimizer.param_groups:
        group["lr"] = 1e9


def _poison_a_weight(agent):
    ensemble = agent.hook.ensemble
    with torch.no_grad():
        ensemble.weights[0][ensemble.elites[0]] = float("nan")


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (_explode_learning_rate, r"member \d+ diverged in epoch \d+"),
        (_poison_a_weight, r"member \d+ (diverged|predicted a non-finite value)"),
    ],
)
def test_a_diverging_model_stops_the_run_and_leaves_the_checkpoint(tmp_path, corrupt, message):
    agent = MBPO(ENV_ID, small_config(tmp_path))
    agent.learn(120)
    checkpoint = agent.checkpoint_path.read_bytes()
    corrupt(agent)
    with pytest.raises(ModelDivergedError, match=message):
        agent.learn(300)
    assert agent.checkpoint_path.read_bytes() == checkpoint
    assert MBPO.resume(agent.run_dir).counters["steps"] == 120


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"rollout_schedule": (5, 2, 1, 3)}, "rollout_schedule"),
        ({"rollout_schedule": (0, 2, 0, 3)}, "rollout_schedule"),
        ({"real_ratio": 1.5}, "real_ratio"),
        ({"rollout_batch_size": 0}, "rollout_batch_size"),
        ({"model_elites": 9}, "model_elites"),
        ({"learning_starts": 20_000}, "learning_starts"),
    ],
)
def test_bad_configs_name_the_field(changes, field):
    with pytest.raises(ValueError, match=rf"MBPOConfig\.{field} must"):
        MBPOConfig(env="Pendulum-v1", total_steps=10_000, **changes)


def test_bad_envs_are_refused(tmp_path):
    with pytest.raises(ValueError, match="continuous"):
        MBPO("CartPole-v1", MBPOConfig(env="CartPole-v1", run_dir=str(tmp_path)))
