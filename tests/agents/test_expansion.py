"""MVE and STEVE: targets against brute-force sums on a known linear model, the plain
agent's targets at H = 0, TD-k rows for every imagined state, predicted terminals that
end the sums, STEVE's weights against a hand computation and their collapse to H = 0
when the members disagree, learning a point mass, exact resume, bad configs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from mbrl.algorithms.mve import MVEDDPG, MVESAC, MVETD3, mve_targets
from mbrl.algorithms.sac import SAC
from mbrl.algorithms.steve import STEVESAC, STEVETD3, steve_weights
from mbrl.algorithms.td3 import TD3
from mbrl.model import Step
from mbrl.registry import available_agents
from mbrl.training.envs import evaluate
from mbrl.training.replay import Batch, ReplayBuffer, TargetContext, one_step_targets

from .pointmass import ENV_ID, pd_action

pytestmark = pytest.mark.usefixtures("one_thread")

GAMMA = 0.9
SMALL = dict(
    learning_starts=200,
    hidden_sizes=(64, 64),
    ensemble_size=3,
    model_elites=2,
    model_hidden_sizes=(64, 64),
    model_batch_size=32,
    model_train_every=100,
    expansion_horizon=3,
    eval_episodes=0,
    log_every=50,
)


def small_config(cls, tmp_path, **changes):
    fields = {**SMALL, "env": ENV_ID, "total_steps": 400, "run_dir": str(tmp_path)} | changes
    return cls.Config(**fields)


# ------------------------------------------------------------------ a known model
A = torch.tensor([[1.0, 0.2], [-0.1, 0.9]])
B_ACTION = torch.tensor([0.0, 0.5])
POLICY = torch.tensor([[-0.6], [-0.3]])
CRITICS = torch.tensor([[1.0, -0.5], [0.8, -0.2]])  # V_m(s) = s . CRITICS[m]
TERMINAL_X = 1.5


class LinearModel:
    """``s' = A s + B a + spread * (member - (K - 1) / 2)``, reward ``s_x + a``, terminal
    once ``s'_x > 1.5``; terminal rows absorb (reward 0), as a LearnedModel's do. The
    state is ``[x, v, member, terminal]``; rows ``(b k)`` as LearnedModel's."""

    def __init__(self, spread: float = 0.0):
        self.spread = spread

    def initial_state(self, obs, num_particles, generator):
        member = torch.arange(num_particles, dtype=torch.float32).repeat(len(obs))
        rows = obs.repeat_interleave(num_particles, 0)
        self.k = num_particles
        return torch.cat([rows, member[:, None], torch.zeros(len(rows), 1)], 1)

    def observe(self, state):
        return state[:, :2].clone()

    def step(self, state, action, generator):
        obs, member, done = state[:, :2], state[:, 2], state[:, 3] > 0.5
        offset = self.spread * (member - (self.k - 1) / 2)
        next_obs = obs @ A.T + action * B_ACTION + offset[:, None]
        reward = obs[:, 0] + action[:, 0]
        terminal = next_obs[:, 0] > TERMINAL_X
        next_state = torch.cat([next_obs, member[:, None], terminal[:, None].float()], 1)
        next_state = torch.where(done[:, None], state, next_state)
        return Step(next_state, torch.where(done, 0.0, reward), done | terminal)


def context() -> TargetContext:
    return TargetContext(GAMMA, lambda obs: CRITICS @ obs.T, lambda obs: obs @ POLICY)


def known_step(s: np.ndarray, member_offset: float = 0.0):
    a = s @ POLICY.numpy()
    s2 = A.numpy() @ s + a * B_ACTION.numpy() + member_offset
    return a, s2, float(s[0] + a[0]), bool(s2[0] > TERMINAL_X)


def brute_force(start, first_reward, first_done, horizon, offset=0.0, value=None):
    """The H-step target of one pair by a plain loop: reward of the first step, then the
    model's, then the bootstrap at the last state, stopping at the first terminal."""
    value = value or (lambda s: float((CRITICS.numpy() @ s).min()))
    total, discount, s = first_reward, GAMMA, np.asarray(start, dtype=np.float64)
    if first_done:
        return total
    for _ in range(horizon):
        _, s, r, done = known_step(s, offset)
        total += discount * r
        discount *= GAMMA
        if done:
            return total
    return total + discount * value(s)


def a_batch(b=6, seed=0, terminated=()):
    rng = np.random.default_rng(seed)
    obs = torch.as_tensor(rng.uniform(-1, 1, (b, 2)), dtype=torch.float32)
    next_obs = torch.as_tensor(rng.uniform(-1, 1.4, (b, 2)), dtype=torch.float32)
    next_obs[0] = torch.tensor([1.4, 1.4])  # terminates after one model step
    done = torch.zeros(b)
    done[list(terminated)] = 1.0
    reward = torch.as_tensor(rng.normal(size=b), dtype=torch.float32)
    action = torch.as_tensor(rng.uniform(-1, 1, (b, 1)), dtype=torch.float32)
    return Batch(obs, action, reward, next_obs, done)


def a_hook(cls, tmp_path, spread=0.0, **changes):
    agent = cls(ENV_ID, small_config(cls, tmp_path, **changes))
    hook = agent.hook
    hook.model = LinearModel(spread)
    hook.counters["fits"] = 1
    return hook


# ------------------------------------------------------------------ MVE
@pytest.mark.parametrize("horizon", [1, 3])
def test_mve_targets_equal_a_brute_force_sum_on_a_known_linear_model(tmp_path, horizon):
    hook = a_hook(MVETD3, tmp_path, expansion_horizon=horizon, td_k=False)
    batch = a_batch(terminated=[3])
    rows = hook.critic_targets(batch, context())
    expected = [
        brute_force(
            batch.next_obs[i].numpy(), float(batch.reward[i]), bool(batch.terminated[i]), horizon
        )
        for i in range(len(batch))
    ]
    np.testing.assert_allclose(rows.target.numpy(), expected, rtol=1e-5, atol=1e-5)
    assert rows.weight is None and torch.equal(rows.obs, batch.obs)
    # row 0 terminates after its first model step: no bootstrap after it
    _, _, r1, done = known_step(batch.next_obs[0].numpy())
    assert done
    assert rows.target[0].item() == pytest.approx(float(batch.reward[0]) + GAMMA * r1, abs=1e-5)
    assert rows.target[3].item() == pytest.approx(float(batch.reward[3]))  # a real terminal


def test_td_k_regresses_every_imagined_pair_on_its_remaining_horizon_target(tmp_path):
    h = 3
    hook = a_hook(MVETD3, tmp_path, expansion_horizon=h)
    batch = a_batch(b=5, terminated=[2])
    rows = hook.critic_targets(batch, context())
    b = len(batch)
    assert rows.obs.shape == ((h + 1) * b, 2) and rows.weight.shape == ((h + 1) * b,)
    for i in range(b):
        s = batch.next_obs[i].numpy().astype(np.float64)
        reached = not bool(batch.terminated[i])  # no terminal before this pair
        absorbed = False  # the model reached a terminal: its state stays
        np.testing.assert_allclose(rows.obs[i].numpy(), batch.obs[i].numpy())
        assert rows.weight[i].item() == pytest.approx(1 / b)
        for k in range(1, h + 1):  # the pair (s_k, a_k) of the k-th model step
            row = k * b + i
            a = s @ POLICY.numpy()
            np.testing.assert_allclose(rows.obs[row].numpy(), s, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(rows.action[row].numpy(), a, rtol=1e-5, atol=1e-6)
            assert rows.weight[row].item() == pytest.approx(reached / b)
            _, s2, r, done = known_step(s)
            if reached:
                expected = brute_force(s2, r, done, h - k)
                assert rows.target[row].item() == pytest.approx(expected, abs=1e-4)
            if not absorbed:
                s, absorbed = s2, done
            reached = reached and not done
    # the normaliser divides the imagined pairs' weights by H
    divided = a_hook(MVETD3, tmp_path, expansion_horizon=h, divide_by_horizon=True)
    other = divided.critic_targets(batch, context())
    torch.testing.assert_close(other.weight[:b], rows.weight[:b])
    torch.testing.assert_close(other.weight[b:], rows.weight[b:] / h)


def test_mve_recursion_agrees_with_the_candidate_targets_of_every_horizon():
    g = torch.Generator().manual_seed(0)
    rewards = torch.randn(4, 7, generator=g)
    dones = (torch.rand(4, 7, generator=g) < 0.3).float()
    values = torch.randn(4, 7, generator=g)
    from mbrl.training.expansion import Expansion

    expansion = Expansion(
        frames=torch.zeros(1, 4, 7, 2), actions=torch.zeros(1, 3, 7, 1),
        rewards=rewards[None], dones=dones[None], values=values[None, None],
    )  # fmt: skip
    candidates = expansion.candidates(GAMMA, values[None, None])[0, 0]  # [H + 1, B]
    for h in range(4):
        y = mve_targets(rewards[: h + 1], dones[: h + 1], values[h], GAMMA)[0]
        torch.testing.assert_close(candidates[h], y)


@pytest.mark.parametrize("cls", [MVEDDPG, MVETD3, MVESAC])
def test_at_horizon_zero_the_expansion_gives_the_plain_agents_targets(tmp_path, cls):
    agent = cls(ENV_ID, small_config(cls, tmp_path, expansion_horizon=0, total_steps=260))
    agent.learn()
    batch = agent.replay.sample(32, np.random.default_rng(1))
    hook, ctx = agent.hook, agent.target_context
    state = agent.generator.get_state()
    plain = one_step_targets(batch, ctx)
    agent.generator.set_state(state)
    expanded = hook.targets_of(hook.expand(batch, ctx), batch, ctx)
    torch.testing.assert_close(expanded.target, plain.target, rtol=0, atol=0)
    assert torch.equal(expanded.obs, batch.obs) and torch.equal(expanded.action, batch.action)
    assert (expanded.weight is None) or torch.allclose(expanded.weight, torch.tensor(1 / 32))


@pytest.mark.parametrize(("cls", "plain"), [(MVETD3, TD3), (MVESAC, SAC)])
def test_horizon_zero_trains_exactly_as_the_plain_agent(tmp_path, cls, plain):
    config = small_config(cls, tmp_path / "mve", expansion_horizon=0, total_steps=300)
    expanded = cls(ENV_ID, config)
    expanded.learn()
    fields = {f.name for f in dataclasses.fields(plain.Config)}
    base = plain.Config(**{k: v for k, v in vars(config).items() if k in fields})
    reference = plain(ENV_ID, dataclasses.replace(base, run_dir=str(tmp_path / "plain")))
    reference.learn()
    assert expanded.hook.counters["fits"] == 2  # the model is fitted, but not used
    for x, y in zip(expanded.actor.parameters(), reference.actor.parameters(), strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


# ------------------------------------------------------------------ STEVE
def test_steve_weights_equal_a_hand_computation():
    # two samples of each of two horizons: T_0 in {1.0, 1.2}, T_1 in {2.0, 2.4}
    candidates = torch.tensor([[[1.0], [2.0]], [[1.2], [2.4]]])
    means, weights = steve_weights(candidates)
    torch.testing.assert_close(means[:, 0], torch.tensor([1.1, 2.2]))
    # variances 0.01 and 0.04: inverse 100 and 25, normalised 0.8 and 0.2
    torch.testing.assert_close(weights[:, 0], torch.tensor([0.8, 0.2]), rtol=1e-4, atol=1e-5)
    assert float((weights * means).sum()) == pytest.approx(0.8 * 1.1 + 0.2 * 2.2, rel=1e-4)


def test_steve_target_equals_a_hand_computation_on_two_horizons(tmp_path):
    hook = a_hook(STEVETD3, tmp_path, expansion_horizon=1, spread=0.1, model_elites=2)
    batch = a_batch(b=4)
    rows = hook.critic_targets(batch, context())
    for i in range(len(batch)):
        s1, r0 = batch.next_obs[i].numpy().astype(np.float64), float(batch.reward[i])
        samples = {0: [], 1: []}
        for member, offset in enumerate([-0.05, 0.05]):
            values = CRITICS.numpy() @ s1
            for m in range(2):  # centred on the minimum, spread by the critics
                samples[0].append(r0 + GAMMA * (values.min() + values[m] - values.mean()))
            _, s2, r1, done = known_step(s1, offset)
            values2 = CRITICS.numpy() @ s2
            for m in range(2):
                tail = 0.0 if done else GAMMA**2 * (values2.min() + values2[m] - values2.mean())
                samples[1].append(r0 + GAMMA * r1 + tail)
            del member
        means = [np.mean(samples[j]) for j in (0, 1)]
        inverse = [1 / (np.var(samples[j]) + 1e-8) for j in (0, 1)]
        expected = sum(w * m for w, m in zip(inverse, means)) / sum(inverse)
        assert rows.target[i].item() == pytest.approx(expected, rel=1e-4, abs=1e-4)


def test_steve_falls_back_to_the_one_step_target_when_members_disagree_wildly(tmp_path):
    hook = a_hook(STEVETD3, tmp_path, expansion_horizon=3, spread=1_000.0, model_elites=2)
    batch = a_batch(b=8)
    batch = dataclasses.replace(batch, next_obs=batch.next_obs.clamp(max=0.5))  # no terminals
    rows = hook.critic_targets(batch, context())
    one_step = one_step_targets(batch, context()).target
    # the critics' spread at s' (T_0's variance) is tiny beside the model's
    torch.testing.assert_close(rows.target, one_step, rtol=1e-3, atol=1e-3)
    assert hook.last_weights[0] > 0.99
    agreeing = a_hook(STEVETD3, tmp_path, expansion_horizon=3, spread=0.0, model_elites=2)
    agreeing.critic_targets(batch, context())
    assert agreeing.last_weights[1:].sum() > 0.3  # one model: the longer horizons count
    assert agreeing.metrics()["steve/weight_h0"] < 1.0  # the logged moving mean follows


def test_steve_needs_two_critics(tmp_path):
    hook = a_hook(STEVETD3, tmp_path, expansion_horizon=1)
    one_critic = TargetContext(GAMMA, lambda obs: CRITICS[:1] @ obs.T, context().policy)
    with pytest.raises(ValueError, match="two or more critics"):
        hook.critic_targets(a_batch(), one_critic)
    assert "steve-ddpg" not in available_agents()


# ------------------------------------------------------------------ agents
@pytest.mark.parametrize(
    ("cls", "changes"),
    [
        (MVETD3, {}),  # TD-k on, the default
        (STEVETD3, {}),
        (MVESAC, {}),
    ],
)
def test_each_pair_learns_the_point_mass(tmp_path, cls, changes):
    config = small_config(cls, tmp_path, total_steps=1_500, gradient_steps=2, **changes)
    agent = cls(ENV_ID, config)
    metrics = agent.learn()
    seeds, episodes = 10_000, 5
    agent.config = dataclasses.replace(agent.config, eval_episodes=episodes)
    learned = agent.evaluate()["eval/mean_return"]
    reference = evaluate(ENV_ID, pd_action, episodes, seeds).mean()
    idle = evaluate(ENV_ID, lambda obs: np.zeros((1, 1)), episodes, seeds).mean()
    # on these starts the PD controller gets about -1.4 and doing nothing about -5.2
    assert learned > reference - 1.5, (learned, reference, idle)
    assert learned > idle + 2.5, (learned, reference, idle)
    assert metrics["model/imagined_steps"] == agent.hook.counters["imagined_steps"] > 0
    assert agent.hook.counters["fits"] == 14  # at 200, 300, ..., 1,500


@pytest.mark.parametrize("cls", [MVETD3, STEVESAC])
def test_resumed_run_continues_exactly(tmp_path, cls):
    straight = cls(ENV_ID, small_config(cls, tmp_path / "a", total_steps=340))
    straight.learn()
    first = cls(ENV_ID, small_config(cls, tmp_path / "b", total_steps=340))
    first.learn(250)  # fitted at 200: the expansion is in use
    resumed = cls.resume(first.run_dir)
    assert resumed.counters == first.counters
    assert resumed.hook.counters == first.hook.counters
    resumed.learn()
    assert resumed.hook.counters == straight.hook.counters
    if cls is STEVESAC:  # the logged moving mean of the horizon weights continues too
        torch.testing.assert_close(resumed.hook.weight_mean, straight.hook.weight_mean)
    for module in ("actor", "critic"):
        for x, y in zip(
            getattr(straight, module).parameters(), getattr(resumed, module).parameters()
        ):
            torch.testing.assert_close(x, y, rtol=0, atol=0)
    for x, y in zip(straight.hook.ensemble.parameters(), resumed.hook.ensemble.parameters()):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_saved_agent_keeps_its_model(tmp_path):
    agent = MVETD3(ENV_ID, small_config(MVETD3, tmp_path, total_steps=220))
    agent.learn()
    loaded = MVETD3.load(agent.save(tmp_path / "agent.safetensors"))
    obs = np.array([[0.5, 0.0], [-0.3, 0.2]], dtype=np.float32)
    np.testing.assert_array_equal(agent.predict(obs), loaded.predict(obs))
    for x, y in zip(agent.hook.ensemble.parameters(), loaded.hook.ensemble.parameters()):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("cls", "changes", "field"),
    [
        (MVETD3, {"expansion_horizon": -1}, "expansion_horizon"),
        (STEVESAC, {"model_elites": 9}, "model_elites"),
        (MVESAC, {"learning_starts": 20_000}, "learning_starts"),
    ],
)
def test_bad_configs_name_the_field(cls, changes, field):
    with pytest.raises(ValueError, match=rf"{cls.__name__}Config\.{field} must"):
        cls.Config(env="Pendulum-v1", total_steps=10_000, **changes)


def test_bad_envs_are_refused(tmp_path):
    with pytest.raises(ValueError, match="continuous"):
        MVETD3("CartPole-v1")


def test_the_replay_is_the_agents_own(tmp_path):
    agent = MVETD3(ENV_ID, small_config(MVETD3, tmp_path))
    assert isinstance(agent.hook.replay, ReplayBuffer) and agent.hook.replay is agent.replay


# ------------------------------------------------------------------ the hook on its own
def test_the_hook_on_a_plain_agent_trains_as_the_variant_and_resumes(tmp_path):
    from mbrl.algorithms.mve import MVE

    settings = {k: v for k, v in SMALL.items() if k in MVE.fields.__dataclass_fields__}
    variant = MVETD3(ENV_ID, small_config(MVETD3, tmp_path / "variant", total_steps=260))
    variant.learn()
    agent_fields = {k: v for k, v in SMALL.items() if k in TD3.Config.__dataclass_fields__}
    config = TD3.Config(env=ENV_ID, total_steps=260, run_dir=str(tmp_path / "hook"), **agent_fields)
    hooked = TD3(ENV_ID, config, model_hook=MVE(**settings))  # the three lines
    hooked.learn(230)
    assert type(hooked.hook.config).__name__ == "MVETD3Config"
    resumed = TD3.resume(hooked.run_dir, model_hook=MVE(**settings))
    assert resumed.hook.counters == hooked.hook.counters and resumed.hook.counters["fits"] == 1
    resumed.learn()
    for x, y in zip(variant.actor.parameters(), resumed.actor.parameters(), strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)
    with pytest.raises(ValueError, match="no setting horizon"):
        MVE(horizon=3)
    with pytest.raises(ValueError, match=r"MVETD3Config\.expansion_horizon must"):
        TD3(ENV_ID, config, model_hook=MVE(expansion_horizon=-2))
