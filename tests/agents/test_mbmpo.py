"""MB-MPO: the meta-gradient through the adaptation step against finite differences on a
tiny linear policy, the batched adaptation against a loop over tasks, ``inner_lr = 0`` as
ensemble TRPO, rllab's linear baseline against least squares, imagined rollouts in
member i mod K from real starts, learning a point mass, exact resume, and clear errors
when the model diverges or the config is bad."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from mbrl.algorithms.mbmpo import MBMPO, MBMPOConfig
from mbrl.models import ModelDivergedError
from mbrl.training.envs import evaluate
from mbrl.training.returns import linear_baseline

from .pointmass import ENV_ID, pd_action

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = dict(
    initial_random_steps=100,
    model_train_every=100,
    ensemble_size=3,
    model_elites=3,
    model_hidden_sizes=(64, 64),
    model_batch_size=32,
    meta_batch_size=6,
    imagined_rollouts=10,
    meta_steps=10,
    start_pool=100,
    eval_episodes=0,
)


def small_config(tmp_path, **changes) -> MBMPOConfig:
    fields = {**SMALL, "env": ENV_ID, "total_steps": 300, "run_dir": str(tmp_path)} | changes
    return MBMPOConfig(**fields)


def synthetic_batches(agent: MBMPO, rows: int = 8, seed: int = 0):
    """Pre- and post-adaptation batches of ``rows`` steps per task in float64, the post
    batch's old distributions those of the adapted policies at the current theta."""
    g = torch.Generator().manual_seed(seed)
    tasks = agent.config.meta_batch_size

    def batch() -> dict[str, torch.Tensor]:
        mask = (torch.rand(tasks, rows, generator=g) > 0.2).double()
        return {
            "obs": torch.randn(tasks, rows, 2, generator=g, dtype=torch.float64),
            "actions": torch.randn(tasks, rows, 1, generator=g, dtype=torch.float64),
            "advantages": torch.randn(tasks, rows, generator=g, dtype=torch.float64),
            "mask": mask,
            "count": mask.sum(1),
        }

    pre, post = batch(), batch()
    with torch.no_grad():
        post["dists"] = agent.task_dists(agent.adapt(pre), post["obs"])
        post["log_probs"] = agent.policy.log_prob(post["dists"], post["actions"])
    return pre, post


def linear_agent(tmp_path, inner_lr: float) -> MBMPO:
    config = small_config(tmp_path, policy_hidden_sizes=(), meta_batch_size=3, inner_lr=inner_lr)
    agent = MBMPO(ENV_ID, config)
    agent.policy.double()
    with torch.no_grad():  # away from the near-zero initial head, so every term matters
        for p in agent.policy.parameters():
            p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    return agent


def test_meta_gradient_through_the_adaptation_matches_finite_differences(tmp_path):
    agent = linear_agent(tmp_path, inner_lr=0.3)
    pre, post = synthetic_batches(agent)
    params = list(agent.policy.parameters())
    gradient = parameters_to_vector(torch.autograd.grad(agent.meta_objective(pre, post), params))
    theta = parameters_to_vector(params).detach().clone()
    numeric = torch.zeros_like(theta)
    eps = 1e-6
    with torch.no_grad():
        for i in range(len(theta)):
            values = []
            for sign in (1, -1):
                shifted = theta.clone()
                shifted[i] += sign * eps
                vector_to_parameters(shifted, params)
                values.append(agent.meta_objective(pre, post).item())
            numeric[i] = (values[0] - values[1]) / (2 * eps)
        vector_to_parameters(theta, params)
    torch.testing.assert_close(gradient, numeric, rtol=1e-6, atol=1e-8)
    # the second-order term is not negligible here: dropping it (first-order MAML) is wrong
    with torch.no_grad():
        adapted = agent.adapt(pre)
    first_order = [v[0].clone().requires_grad_(True) for v in adapted.values()]
    fo_params = {name: v.expand(3, *v.shape) for name, v in zip(adapted, first_order)}
    dists = agent.task_dists(fo_params, post["obs"])
    ratio = (agent.policy.log_prob(dists, post["actions"]) - post["log_probs"]).exp()
    objective = ((ratio * post["advantages"] * post["mask"]).sum(1) / post["count"]).mean()
    fo_gradient = parameters_to_vector(torch.autograd.grad(objective, first_order))
    assert (fo_gradient - numeric).abs().max() > 1e-3


def test_adaptation_equals_a_loop_over_tasks(tmp_path):
    agent = linear_agent(tmp_path, inner_lr=0.05)
    pre, _ = synthetic_batches(agent)
    adapted = agent.adapt(pre)
    for i in range(agent.config.meta_batch_size):
        policy = copy.deepcopy(agent.policy)
        log_probs = policy.log_prob(policy(pre["obs"][i]), pre["actions"][i])
        objective = (log_probs * pre["advantages"][i] * pre["mask"][i]).sum() / pre["count"][i]
        objective.backward()
        with torch.no_grad():
            for name, p in policy.named_parameters():
                torch.testing.assert_close(adapted[name][i], p + 0.05 * p.grad, msg=name)


def test_inner_lr_zero_is_ensemble_trpo(tmp_path):
    agent = linear_agent(tmp_path, inner_lr=0.0)
    pre, post = synthetic_batches(agent)
    params = list(agent.policy.parameters())
    gradient = torch.autograd.grad(agent.meta_objective(pre, post), params)
    dists = agent.policy(post["obs"])  # theta itself on every task's rollouts
    ratio = (agent.policy.log_prob(dists, post["actions"]) - post["log_probs"]).exp()
    plain = ((ratio * post["advantages"] * post["mask"]).sum(1) / post["count"]).mean()
    for got, want in zip(gradient, torch.autograd.grad(plain, params), strict=True):
        torch.testing.assert_close(got, want)
    assert agent.meta_kl(pre, post).item() == pytest.approx(0.0, abs=1e-12)


def test_linear_baseline_is_least_squares_per_task():
    g = torch.Generator().manual_seed(0)
    obs = torch.randn(2, 3, 5, 2, generator=g)
    returns = torch.randn(2, 3, 5, generator=g)
    mask = torch.ones(2, 3, 5)
    mask[1, 0, 3:] = 0
    got = linear_baseline(obs, returns, mask)
    for task in range(2):
        o = obs[task].double().numpy().reshape(15, 2)
        t = np.tile(np.arange(5) / 100, 3)[:, None]
        features = np.concatenate([o, o**2, t, t**2, t**3, np.ones_like(t)], axis=1)
        keep = mask[task].numpy().reshape(15) > 0
        weights = np.linalg.solve(
            features[keep].T @ features[keep] + 1e-5 * np.eye(8),
            features[keep].T @ returns[task].double().numpy().reshape(15)[keep],
        )
        np.testing.assert_allclose(got[task].numpy().reshape(15), features @ weights, rtol=1e-4)


def test_imagined_rollouts_start_from_real_starts_in_member_i_mod_k(tmp_path):
    agent = MBMPO(ENV_ID, small_config(tmp_path, total_steps=100, meta_steps=1))
    agent.learn()
    tasks, n, h = agent.config.meta_batch_size, agent.config.imagined_rollouts, agent.horizon
    assert agent.counters["imagined_steps"] == 2 * tasks * n * h  # before and after adapting
    data = agent.imagine(agent.task_parameters())
    obs = data["obs"].view(tasks, n, h, 2)
    actions = data["actions"].view(tasks, n, h, 1).clamp(-1, 1)
    first = obs[:, :, 0].reshape(-1, 2)
    assert (torch.cdist(first, agent.starts).min(1).values == 0).all()
    ensemble = agent.ensemble
    for task in range(tasks):
        member = torch.tensor([task % ensemble.num_members])
        with torch.no_grad():
            out = ensemble(ensemble.features(obs[task, :, 0], actions[task, :, 0]), member)
        torch.testing.assert_close(obs[task, :, 1], obs[task, :, 0] + out.mean[0, :, :2])
    assert data["mask"].all()  # the point mass never terminates
    assert agent.counters["imagined_steps"] == 3 * tasks * n * h


def test_learns_the_point_mass_near_the_reference_controller(tmp_path):
    agent = MBMPO(ENV_ID, small_config(tmp_path))
    metrics = agent.learn()
    ours = evaluate(ENV_ID, agent.predict, 20, seed=123).mean()
    reference = evaluate(ENV_ID, pd_action, 20, seed=123).mean()
    idle = evaluate(ENV_ID, lambda obs: np.zeros((1, 1)), 20, seed=123).mean()
    assert ours > reference - 1.5, (ours, reference)
    assert ours > idle + 5.0  # a force of zero scores about -11
    assert metrics["model/imagined_steps"] == agent.counters["imagined_steps"] > 10_000
    assert agent.counters["iterations"] == 3 and agent.counters["meta_steps"] == 30


def test_resumed_run_continues_exactly(tmp_path):
    changes = dict(total_steps=300, meta_steps=3, checkpoint_every=100)
    straight = MBMPO(ENV_ID, small_config(tmp_path / "a", **changes))
    straight.learn()
    first = MBMPO(ENV_ID, small_config(tmp_path / "b", **changes))
    first.learn(200)
    resumed = MBMPO.resume(first.run_dir)
    assert resumed.counters == first.counters
    torch.testing.assert_close(resumed.adapted.vectors, first.adapted.vectors, rtol=0, atol=0)
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
    agent = MBMPO(ENV_ID, small_config(tmp_path, total_steps=100, meta_steps=2))
    agent.learn()
    loaded = MBMPO.load(agent.save(tmp_path / "agent.safetensors"))
    obs = np.array([[0.5, 0.0], [-0.3, 0.2]], dtype=np.float32)
    np.testing.assert_array_equal(agent.predict(obs), loaded.predict(obs))


def test_a_diverging_model_stops_the_run_and_leaves_the_checkpoint(tmp_path):
    agent = MBMPO(ENV_ID, small_config(tmp_path, meta_steps=2))
    agent.learn(100)
    checkpoint = agent.checkpoint_path.read_bytes()
    with torch.no_grad():
        agent.ensemble.weights[0][0] = float("nan")
    with pytest.raises(ModelDivergedError, match=r"member \d+ (diverged|predicted a non-finite)"):
        agent.learn(300)
    assert agent.checkpoint_path.read_bytes() == checkpoint
    assert MBMPO.resume(agent.run_dir).counters["steps"] == 100


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"inner_lr": -1e-3}, "inner_lr"),
        ({"meta_batch_size": 0}, "meta_batch_size"),
        ({"imagined_rollouts": 0}, "imagined_rollouts"),
        ({"model_elites": 9}, "model_elites"),
        ({"initial_random_steps": 20_000}, "initial_random_steps"),
        ({"policy_hidden_sizes": (32, 0)}, "policy_hidden_sizes"),
        ({"max_kl": 0.0}, "max_kl"),
    ],
)
def test_bad_configs_name_the_field(changes, field):
    with pytest.raises(ValueError, match=rf"MBMPOConfig\.{field} must"):
        MBMPOConfig(env="Pendulum-v1", total_steps=10_000, **changes)


def test_bad_envs_are_refused(tmp_path):
    with pytest.raises(ValueError, match="continuous"):
        MBMPO("CartPole-v1", MBMPOConfig(env="CartPole-v1", run_dir=str(tmp_path)))
