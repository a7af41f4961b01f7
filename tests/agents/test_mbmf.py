"""MB-MF: its three stages on a point mass (MPC, the imitation policy, fine-tuning),
exact resumption inside each stage, and bad configs named by field."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from mbrl.algorithms.mbmf import MBMF, FineTuner, MBMFConfig
from mbrl.training.envs import evaluate
from mbrl.training.modelbased import WorldKind

from .pointmass import ENV_ID, pd_action

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = dict(
    initial_random_steps=60,
    model_train_every=60,
    mpc_steps=180,
    dagger_iterations=2,
    dagger_steps=60,
    population_size=200,
    horizon=10,
    model_hidden_sizes=(64, 64, 64),
    model_batch_size=32,
    eval_episodes=0,
    finetune_rollout_steps=64,
    policy_hidden_sizes=(32, 32),
)


def small_config(tmp_path, **changes) -> MBMFConfig:
    fields = {**SMALL, "env": ENV_ID, "total_steps": 428, "run_dir": str(tmp_path)} | changes
    return MBMFConfig(**fields)


def test_stages_control_imitate_and_fine_tune_the_point_mass(tmp_path):
    agent = MBMF(ENV_ID, small_config(tmp_path))
    agent.learn(300)  # stages 1 and 2
    assert agent.counters["stage"] == 3 and agent.counters["dagger_iterations"] == 2
    episodes, seed = 5, 10**6
    imitation = evaluate(ENV_ID, agent.predict, episodes, seed).mean()
    reference = evaluate(ENV_ID, pd_action, episodes, seed).mean()
    idle = evaluate(ENV_ID, lambda obs: np.zeros((1, 1)), episodes, seed).mean()
    # the PD controller gets about -1.5 on these starts and doing nothing about -6
    assert imitation > idle + 1.5, (imitation, reference, idle)
    metrics = agent.learn()  # stage 3: the fine-tuner's rollouts of 64 steps
    assert agent.counters["steps"] == 428 and "losses/policy_loss" in metrics
    with open(agent.run_dir / "progress.csv") as file:
        rows = list(csv.DictReader(file))
    steps = [int(row["global_step"]) for row in rows]
    assert steps == sorted(steps)
    stages = [float(row["charts/stage"]) for row in rows if row["charts/stage"]]
    assert stages == sorted(stages) and set(stages) == {1.0, 2.0, 3.0}
    assert any(row["losses/policy_loss"] for row in rows)  # the fine-tuner's rows follow


@pytest.mark.parametrize("stop", [120, 240, 364])  # in stage 1, stage 2, stage 3
def test_resumed_run_continues_exactly(tmp_path, stop):
    straight = MBMF(ENV_ID, small_config(tmp_path / "a"))
    straight.learn()
    first = MBMF(ENV_ID, small_config(tmp_path / "b"))
    first.learn(stop)
    resumed = MBMF.resume(first.run_dir)
    assert resumed.counters == first.counters
    resumed.learn()
    assert resumed.counters == straight.counters
    for (name, a), b in zip(
        straight.policy.state_dict().items(), resumed.policy.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def test_trpo_fine_tunes_too(tmp_path):
    agent = MBMF(ENV_ID, small_config(tmp_path, finetune=FineTuner.TRPO, dagger_iterations=0))
    metrics = agent.learn(244)  # stage 2 is one fit of stage 1's MPC pairs
    assert agent.counters["stage"] == 3 and "losses/policy_loss" in metrics


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"mpc_steps": 60}, "mpc_steps"),
        ({"total_steps": 299}, "total_steps"),
        ({"model": WorldKind.EXACT}, "model"),
        ({"population_size": 0}, "population_size"),
        ({"policy_hidden_sizes": ()}, "policy_hidden_sizes"),
    ],
)
def test_bad_configs_name_the_field(tmp_path, changes, field):
    with pytest.raises(ValueError, match=rf"MBMFConfig\.{field} must"):
        small_config(tmp_path, **changes)
