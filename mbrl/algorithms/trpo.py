"""Trust Region Policy Optimisation (Schulman et al. 2015, arXiv:1502.05477).

The natural-gradient step is found by conjugate gradient on Fisher-vector
products (the Hessian of the mean KL, never formed), then a backtracking line
search keeps only a step that improves the surrogate and respects the KL
bound. Details and defaults as sb3-contrib's TRPO and Spinning Up's: GAE
advantages normalised per rollout, damping 0.1, value function by Adam
minibatch epochs.

    1. initialise policy pi_theta and value V_phi
    2. for each iteration:
    3.   collect T steps in each of N environments with pi_theta_k
    4.   advantages A_t by GAE(gamma, lambda) with V_phi, returns R_t = A_t + V_phi(s_t)
    5.   surrogate L(theta) = mean(pi_theta(a_t|s_t) / pi_theta_k(a_t|s_t) A_t),
         its gradient g at theta_k
    6.   x ~= H^-1 g by `cg_iters` steps of conjugate gradient, with
         H v = grad(grad(mean KL(pi_theta_k || pi_theta)) . v) + damping v
    7.   full step: delta = sqrt(2 max_kl / (x^T H x)) x
    8.   backtracking: for j = 0 .. line_search_iters - 1, theta = theta_k + shrink^j delta;
         accept the first with KL(pi_theta_k || pi_theta) <= max_kl and L(theta) > L(theta_k);
         if none is accepted, theta = theta_k
    9.   fit V_phi: `value_epochs` epochs of Adam on minibatches of mean((V_phi(s_t) - R_t)^2)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from mbrl.training.config import EnvFields, OnPolicyFields, RunFields
from mbrl.training.rollout import (
    RolloutBuffer,
    adam,
    check_common_config,
    check_positive,
    explained_variance,
    on_policy_agent,
)

__all__ = ["TRPO", "conjugate_gradient", "natural_gradient_step"]


@dataclass(frozen=True, kw_only=True)
class TRPOConfig(OnPolicyFields, RunFields, EnvFields):
    """TRPO hyperparameters; defaults are sb3-contrib's."""

    max_kl: float = 0.01
    """Trust region: largest mean KL(old || new) of an accepted step (delta); 0.001-0.05."""
    cg_iters: int = 15
    """Conjugate gradient iterations; 10-20."""
    cg_damping: float = 0.1
    """Damping added to the Fisher-vector product (H + damping I); 0.01-0.1."""
    line_search_shrink: float = 0.8
    """Backtracking factor of the line search; 0.5-0.9."""
    line_search_iters: int = 10
    """Backtracking steps tried before the update is rejected; 10-15."""
    value_lr: float = 1e-3
    """Adam learning rate of the value function; 1e-4-3e-3."""
    value_epochs: int = 10
    """Epochs of value minibatch steps per iteration; 5-80."""
    value_batch_size: int = 128
    """Minibatch size of the value steps; 64-4096."""
    normalize_advantage: bool = True
    """Normalise advantages of each rollout to mean 0, std 1."""

    def __post_init__(self):
        check_common_config(self)
        check_positive(self, "max_kl", "cg_iters", "line_search_iters", "value_lr")
        check_positive(self, "value_epochs", "value_batch_size")
        if self.cg_damping < 0:
            raise ValueError(f"TRPOConfig.cg_damping must be >= 0, got {self.cg_damping}")
        if not 0 < self.line_search_shrink < 1:
            raise ValueError(
                f"TRPOConfig.line_search_shrink must be in (0, 1), got {self.line_search_shrink}"
            )


def conjugate_gradient(
    matrix_vector: Callable[[Tensor], Tensor], b: Tensor, num_iters: int, tol: float = 1e-10
) -> Tensor:
    """Approximately solve ``A x = b`` for symmetric positive-definite A given only ``A v``.

    Shapes: ``b [D]`` -> ``x [D]`` (Nocedal & Wright, Algorithm 5.2).
    """
    x = torch.zeros_like(b)
    residual = b.clone()  # r = b - A x with x = 0
    direction = residual.clone()
    residual_sq = residual @ residual
    for _ in range(num_iters):
        if residual_sq <= tol:
            break
        a_direction = matrix_vector(direction)
        alpha = residual_sq / (direction @ a_direction)
        x += alpha * direction
        residual -= alpha * a_direction
        new_residual_sq = residual @ residual
        direction = residual + (new_residual_sq / residual_sq) * direction
        residual_sq = new_residual_sq
    return x


def natural_gradient_step(
    params: list[Tensor],
    surrogate: Callable[[], Tensor],
    mean_kl: Callable[[], Tensor],
    config: Any,
) -> dict[str, float]:
    """Steps 5-8 on any objective: move ``params`` (in place) along the natural gradient
    of ``surrogate()`` within the trust region ``mean_kl() <= config.max_kl``.

    ``config`` has TRPO's fields ``max_kl``, ``cg_iters``, ``cg_damping``,
    ``line_search_shrink`` and ``line_search_iters``. Both closures read the current
    values of ``params``; ``mean_kl()`` is 0 with zero gradient at the starting point.
    The line search calls them under ``torch.no_grad()`` (a closure that needs
    gradients inside, as MB-MPO's adaptation step, enables them itself). Returns the
    step's metrics.
    """
    objective = surrogate()  # step 5
    gradient = parameters_to_vector(torch.autograd.grad(objective, params))
    grad_kl = parameters_to_vector(torch.autograd.grad(mean_kl(), params, create_graph=True))

    def fisher_vector(vector: Tensor) -> Tensor:
        hvp = torch.autograd.grad(grad_kl @ vector, params, retain_graph=True)
        return parameters_to_vector(hvp) + config.cg_damping * vector

    direction = conjugate_gradient(fisher_vector, gradient, config.cg_iters)  # step 6
    curvature = direction @ fisher_vector(direction)
    full_step = torch.sqrt(2 * config.max_kl / curvature.clamp_min(1e-12)) * direction  # 7
    old_theta = parameters_to_vector(params).detach()
    accepted, kl, new_objective, scale = False, 0.0, objective.item(), 1.0
    with torch.no_grad():
        for _ in range(config.line_search_iters):  # step 8
            vector_to_parameters(old_theta + scale * full_step, params)
            kl, new_objective = mean_kl().item(), surrogate().item()
            if kl <= config.max_kl and new_objective > objective.item():
                accepted = True
                break
            scale *= config.line_search_shrink
        if not accepted:
            vector_to_parameters(old_theta, params)
            kl, new_objective = 0.0, objective.item()
    return {
        "losses/policy_loss": -new_objective,
        "losses/surrogate_improvement": new_objective - objective.item(),
        "losses/kl": kl,
        "losses/step_fraction": scale if accepted else 0.0,
        "losses/line_search_accepted": float(accepted),
    }


@on_policy_agent
class TRPO:
    """TRPO agent: ``TRPO("CartPole-v1", TRPO.Config(...)).learn(100_000)``."""

    algo = "trpo"
    Config = TRPOConfig

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Step 1's optimiser: Adam on the value function (the policy steps by CG)."""
        self.value_optimizer = adam(self.policy.critic.parameters(), self.config.value_lr)
        return {"value": self.value_optimizer}

    def update(self, buffer: RolloutBuffer, progress_remaining: float) -> dict[str, float]:
        """Steps 5-9 on one rollout; returns the loss metrics."""
        metrics = self.policy_step(buffer)
        metrics.update(self.fit_value(buffer))
        return metrics

    def policy_step(self, buffer: RolloutBuffer) -> dict[str, float]:
        """Steps 5-8: the natural-gradient step with line search."""
        config, policy = self.config, self.policy
        data = buffer.flat()
        obs, actions, old_log_probs = data["obs"], data["actions"], data["log_probs"]
        advantages = data["advantages"]
        if config.normalize_advantage and len(advantages) > 1:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        params = policy.actor_parameters()
        with torch.no_grad():
            old_dist = policy.dist_params(obs)

        def surrogate() -> Tensor:
            log_probs = policy.log_prob(policy.dist_params(obs), actions)
            return ((log_probs - old_log_probs).exp() * advantages).mean()

        def mean_kl() -> Tensor:
            return policy.kl(old_dist, policy.dist_params(obs)).mean()

        metrics = natural_gradient_step(params, surrogate, mean_kl, config)
        with torch.no_grad():
            metrics["losses/entropy"] = policy.entropy(policy.dist_params(obs)).mean().item()
        return metrics

    def fit_value(self, buffer: RolloutBuffer) -> dict[str, float]:
        """Step 9: Adam minibatch epochs on the value loss."""
        config, policy = self.config, self.policy
        for _ in range(config.value_epochs):
            for batch in buffer.minibatches(config.value_batch_size, self.loop.rng):
                value_loss = (policy.value(batch["obs"]) - batch["returns"]).pow(2).mean()
                self.value_optimizer.zero_grad(set_to_none=True)
                value_loss.backward()
                self.value_optimizer.step()
        return {
            "losses/value_loss": value_loss.item(),
            "losses/explained_variance": explained_variance(buffer.returns, buffer.values),
        }
