"""Returns and advantages (closed forms that the tests check against plain loops).

Shapes: T time steps, N parallel environments.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["discounted_returns", "gae", "linear_baseline"]


def discounted_returns(rewards: Tensor, dones: Tensor, last_value: Tensor, gamma: float) -> Tensor:
    """``G_t = r_t + gamma (1 - done_t) G_{t+1}``, bootstrapped from ``last_value``.

    Args:
        rewards: ``[T, N]``.
        dones: ``[T, N]`` 1 where the episode ended at step t (no bootstrap past it).
        last_value: ``[N]`` value of the state after the last step.
    """
    returns = torch.empty_like(rewards)
    running = last_value
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = rewards[t] + gamma * (1.0 - dones[t]) * running
        returns[t] = running
    return returns


def gae(
    rewards: Tensor,
    values: Tensor,
    dones: Tensor,
    last_value: Tensor,
    gamma: float,
    lam: float,
    truncated_values: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016).

    ``delta_t = r_t + gamma (1 - done_t) V(s_{t+1}) - V(s_t)``,
    ``A_t = delta_t + gamma lam (1 - done_t) A_{t+1}``.

    Args:
        rewards, values, dones: ``[T, N]``; ``dones`` marks terminated *or*
            truncated steps (the advantage does not flow across them).
        last_value: ``[N]`` V of the state after step T-1.
        truncated_values: ``[T, N]`` optional V of the final observation at
            truncated steps (0 elsewhere): a time limit is not a terminal state,
            so its reward is bootstrapped with ``gamma * V(final obs)``.

    Returns:
        ``(advantages [T, N], returns [T, N])`` with returns = advantages + values.
    """
    T = rewards.shape[0]
    if truncated_values is not None:
        rewards = rewards + gamma * truncated_values
    advantages = torch.empty_like(rewards)
    running = torch.zeros_like(last_value)
    next_value = last_value
    for t in range(T - 1, -1, -1):
        not_done = 1.0 - dones[t]
        delta = rewards[t] + gamma * not_done * next_value - values[t]
        running = delta + gamma * lam * not_done * running
        advantages[t] = running
        next_value = values[t]
    return advantages, advantages + values


def linear_baseline(obs: Tensor, returns: Tensor, mask: Tensor, reg: float = 1e-5) -> Tensor:
    """rllab's linear feature baseline (MB-MPO's), fitted per task: ``obs [K, N, H, O]``
    for K tasks of N rollouts of H steps, returns and mask ``[K, N, H]`` -> predictions
    ``[K, N, H]``.

    Features ``(o, o^2, t/100, (t/100)^2, (t/100)^3, 1)`` with ``o`` clipped to
    ``[-10, 10]``; ridge regression on the unmasked steps (the penalty grows tenfold
    until the solution is finite, as rllab's).
    """
    k, n, h, _ = obs.shape
    o = obs.double().clamp(-10, 10)
    time_ = (torch.arange(h, dtype=torch.float64, device=obs.device) / 100).expand(k, n, h)
    columns = [o, o**2, time_[..., None], time_[..., None] ** 2, time_[..., None] ** 3]
    features = torch.cat([*columns, torch.ones_like(time_[..., None])], dim=-1)
    flat = (features * mask.double()[..., None]).reshape(k, n * h, -1)
    target = (returns.double() * mask.double()).reshape(k, n * h, 1)
    gram, rhs = flat.transpose(1, 2) @ flat, flat.transpose(1, 2) @ target
    eye = torch.eye(gram.shape[-1], dtype=torch.float64, device=obs.device)
    for _ in range(5):
        weights = torch.linalg.solve(gram + reg * eye, rhs)
        if torch.isfinite(weights).all():
            break
        reg *= 10
    return (features @ weights[:, None]).squeeze(-1).to(returns.dtype)
