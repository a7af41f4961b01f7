import numpy as np
import torch

from mbrl.training.returns import discounted_returns, gae


def loop_gae(rewards, values, dones, last_value, gamma, lam):
    """Plain per-environment loop, written from the paper's definition."""
    T, N = rewards.shape
    adv = np.zeros((T, N))
    for n in range(N):
        for t in range(T):
            total, discount = 0.0, 1.0
            for k in range(t, T):
                next_v = last_value[n] if k == T - 1 else values[k + 1, n]
                delta = rewards[k, n] + gamma * (1 - dones[k, n]) * next_v - values[k, n]
                total += discount * delta
                if dones[k, n]:
                    break
                discount *= gamma * lam
            adv[t, n] = total
    return adv


def test_gae_matches_the_definition():
    rng = np.random.default_rng(0)
    T, N = 17, 3
    rewards, values = rng.normal(size=(T, N)), rng.normal(size=(T, N))
    dones = (rng.random((T, N)) < 0.15).astype(float)
    last = rng.normal(size=N)
    adv, ret = gae(*(torch.tensor(x) for x in (rewards, values, dones, last)), 0.97, 0.9)
    expected = loop_gae(rewards, values, dones, last, 0.97, 0.9)
    np.testing.assert_allclose(adv.numpy(), expected, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(ret.numpy(), expected + values, rtol=1e-10)


def test_gae_with_lambda_one_is_discounted_return_minus_value():
    rng = np.random.default_rng(1)
    T, N = 9, 2
    rewards, values = torch.tensor(rng.normal(size=(T, N))), torch.tensor(rng.normal(size=(T, N)))
    dones = torch.zeros(T, N)
    dones[4, 0] = 1
    last = torch.tensor(rng.normal(size=N))
    adv, _ = gae(rewards, values, dones, last, 0.9, 1.0)
    ret = discounted_returns(rewards, dones, last, 0.9)
    torch.testing.assert_close(adv, ret - values)


def test_discounted_returns_closed_form():
    # Constant reward 1 for 50 steps, no termination, zero bootstrap: (1 - g^(T-t)) / (1 - g).
    T, gamma = 50, 0.9
    ret = discounted_returns(torch.ones(T, 1), torch.zeros(T, 1), torch.zeros(1), gamma)
    t = torch.arange(T, dtype=torch.float32)
    torch.testing.assert_close(ret[:, 0], (1 - gamma ** (T - t)) / (1 - gamma))


def test_truncation_bootstraps_with_the_final_value():
    rewards = torch.tensor([[1.0], [1.0]])
    values = torch.tensor([[0.0], [0.0]])
    dones = torch.tensor([[0.0], [1.0]])  # a time limit at step 1
    truncated = torch.tensor([[0.0], [10.0]])
    adv, _ = gae(rewards, values, dones, torch.zeros(1), 0.5, 1.0, truncated_values=truncated)
    # step 1: 1 + 0.5 * 10 = 6; step 0: 1 + 0.5 * 6 = 4
    torch.testing.assert_close(adv[:, 0], torch.tensor([4.0, 6.0]))
