"""ME-TRPO: the stopping rule on scripted member verdicts, the per-member validation
against a loop over members, imagined rollouts from real starts, learning a point mass,
exact resume, and clear errors when the model diverges or the config is bad."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mbrl.algorithms.metrpo import METRPO, METRPOConfig, StoppingRule
from mbrl.models import ModelDivergedError
from mbrl.training.envs import evaluate

from .pointmass import ENV_ID, pd_action

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = dict(
    model_train_every=100,
    ensemble_size=3,
    model_elites=3,
    model_hidden_sizes=(64, 64),
    model_batch_size=32,
    imagined_envs=20,
    start_pool=100,
    validation_starts=20,
    max_policy_iterations=60,
    policy_patience=10,
    eval_episodes=0,
)


def small_config(tmp_path, **changes) -> METRPOConfig:
    fields = {**SMALL, "env": ENV_ID, "total_steps": 300, "run_dir": str(tmp_path)} | changes
    return METRPOConfig(**fields)


def test_stopping_rule_on_scripted_verdicts():
    rule = StoppingRule(ratio=0.7, patience=10)
    # 5 members; the first validation is the reference
    assert rule.update([0, 0, 0, 0, 0], 5)
    assert rule.share == 1.0
    # 4 of 5 improve (0.8 >= 0.7): passes, the counter stays at 0
    assert rule.update([1, 1, 1, 1, -1], 5) and rule.since_pass == 0
    # 3 of 5 improve over the last validation (not the best): fails, 5 iterations
    assert rule.update([2, 2, 2, 0, -2], 5) and rule.since_pass == 5
    assert rule.share == pytest.approx(0.6)
    # a pass resets the count
    assert rule.update([3, 3, 3, 3, 3], 5) and rule.since_pass == 0
    # ties do not count as improvement: two failures of 5 iterations reach patience 10
    assert rule.update([3, 3, 3, 3, 3], 5)
    assert not rule.update([4, 3, 3, 3, 3], 5)
    assert rule.since_pass == 10


def test_validation_equals_a_loop_over_members(tmp_path):
    agent = METRPO(ENV_ID, small_config(tmp_path, total_steps=100, max_policy_iterations=5))
    agent.learn()
    got = agent.validation_returns()
    ensemble, d = agent.ensemble, 2
    for k in range(ensemble.num_members):  # member k alone, through the [E, B] forward
        obs = agent.validation_obs.clone()
        total, done = torch.zeros(len(obs)), torch.zeros(len(obs), dtype=torch.bool)
        with torch.no_grad():
            for _ in range(agent.horizon):
                action = torch.as_tensor(agent.predict(obs.numpy())).clamp(-1, 1)
                out = ensemble(ensemble.features(obs, action), members=torch.tensor([k]))
                delta = out.mean[0]
                total += torch.where(done, 0.0, delta[:, d])  # the learned reward head
                obs = torch.where(done[:, None], obs, obs + delta[:, :d])
                done |= out.termination_logit[0].sigmoid() > 0.5
        np.testing.assert_allclose(got[k], total.mean().item(), rtol=1e-4, atol=1e-4)


def test_imagined_rollouts_start_from_real_start_observations(tmp_path):
    config = small_config(tmp_path, total_steps=100, max_policy_iterations=1, normalize_obs=False)
    agent = METRPO(ENV_ID, config)
    agent.learn()
    buffer, pool = agent.trpo.loop.buffer, agent.imagined.starts
    assert buffer.obs.shape == (agent.horizon, config.imagined_envs, 2)
    first = buffer.obs[0]  # every sub-environment starts an episode at t = 0
    distance = (first[:, None, :] - pool[None]).abs().amax(-1).amin(1)
    assert distance.max() == 0
    assert (pool[:, 1] == 0).all() and (pool[:, 0].abs() <= 1).all()  # the env's resets
    assert agent.counters["imagined_steps"] == config.imagined_envs * agent.horizon
    assert agent.counters["steps"] == 100


def test_learns_the_point_mass_near_the_reference_controller(tmp_path):
    agent = METRPO(ENV_ID, small_config(tmp_path))
    metrics = agent.learn()
    ours = evaluate(ENV_ID, agent.predict, 20, seed=123).mean()
    reference = evaluate(ENV_ID, pd_action, 20, seed=123).mean()
    idle = evaluate(ENV_ID, lambda obs: np.zeros((1, 1)), 20, seed=123).mean()
    assert ours > reference - 1.0, (ours, reference)  # about -3.5 against -3.4
    assert ours > idle + 5.0  # a force of zero scores about -11
    assert metrics["model/imagined_steps"] == agent.counters["imagined_steps"] > 10_000
    assert agent.counters["iterations"] == 3 and agent.counters["fits"] == 3


def test_resumed_run_continues_exactly(tmp_path):
    changes = dict(total_steps=300, max_policy_iterations=10, checkpoint_every=100)
    straight = METRPO(ENV_ID, small_config(tmp_path / "a", **changes))
    straight.learn()
    first = METRPO(ENV_ID, small_config(tmp_path / "b", **changes))
    first.learn(200)
    resumed = METRPO.resume(first.run_dir)
    assert resumed.counters == first.counters
    resumed.learn()
    assert resumed.counters == straight.counters
    a, b = straight.replay, resumed.replay
    assert len(a) == len(b) == 300
    for x, y in zip(a.arrays(), b.arrays(), strict=True):
        np.testing.assert_array_equal(x, y)
    for module in ("policy", "ensemble"):
        for (name, x), y in zip(
            getattr(straight, module).state_dict().items(),
            getattr(resumed, module).state_dict().values(),
            strict=True,
        ):
            torch.testing.assert_close(x, y, rtol=0, atol=0, msg=name)


def test_saved_agent_acts_as_before(tmp_path):
    agent = METRPO(ENV_ID, small_config(tmp_path, total_steps=100, max_policy_iterations=5))
    agent.learn()
    loaded = METRPO.load(agent.save(tmp_path / "agent.safetensors"))
    obs = np.array([[0.5, 0.0], [-0.3, 0.2]], dtype=np.float32)
    np.testing.assert_array_equal(agent.predict(obs), loaded.predict(obs))


def test_a_diverging_model_stops_the_run_and_leaves_the_checkpoint(tmp_path):
    agent = METRPO(ENV_ID, small_config(tmp_path, max_policy_iterations=5))
    agent.learn(100)
    checkpoint = agent.checkpoint_path.read_bytes()
    with torch.no_grad():
        agent.ensemble.weights[0][0] = float("nan")
    with pytest.raises(ModelDivergedError, match=r"member \d+ (diverged|predicted a non-finite)"):
        agent.learn(300)
    assert agent.checkpoint_path.read_bytes() == checkpoint
    assert METRPO.resume(agent.run_dir).counters["steps"] == 100


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"improvement_ratio": 0.0}, "improvement_ratio"),
        ({"imagined_envs": 0}, "imagined_envs"),
        ({"model_elites": 9}, "model_elites"),
        ({"model_train_every": 20_000}, "model_train_every"),
        ({"policy_hidden_sizes": ()}, "policy_hidden_sizes"),
    ],
)
def test_bad_configs_name_the_field(changes, field):
    with pytest.raises(ValueError, match=rf"METRPOConfig\.{field} must"):
        METRPOConfig(env="Pendulum-v1", total_steps=10_000, **changes)


def test_bad_envs_are_refused(tmp_path):
    with pytest.raises(ValueError, match="continuous"):
        METRPO("CartPole-v1", METRPOConfig(env="CartPole-v1", run_dir=str(tmp_path)))
