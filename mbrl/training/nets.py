"""Networks shared by the algorithms.

- :class:`PolicyValueNet` (AlphaZero): residual tower with policy and value heads.
- :class:`EnsembleQ` is E critics in one module: every layer is one batched
  matmul ``[E, B, in] x [E, in, out]`` (``torch.baddbmm``), not E separate MLPs.
- :class:`DeterministicActor` (DDPG, TD3) and :class:`SquashedGaussianActor` (SAC).
- :class:`ActorCritic` (VPG, A2C, PPO, TRPO): separate policy and value MLPs for a
  Discrete or Box action space, the distribution maths written out (log-prob,
  entropy, KL) so TRPO can take second derivatives through it.
- :func:`soft_update` is Polyak averaging of target networks; :func:`frozen`
  switches a module's parameter gradients off for a block.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Iterator, Sequence

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

__all__ = [
    "ActorCritic",
    "DeterministicActor",
    "EnsembleQ",
    "PolicyValueNet",
    "ResidualBlock",
    "SquashedGaussianActor",
    "frozen",
    "make_adam",
    "mlp",
    "soft_update",
]


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(x + self.bn2(self.conv2(y)))


class PolicyValueNet(nn.Module):
    """AlphaZero's residual tower with a policy head and a tanh value head.

    Input ``[B, C, H, W]`` planes; output ``(logits [B, A], value [B])``, the
    value in [-1, 1] for the player to move.
    """

    def __init__(
        self,
        obs_shape: tuple[int, int, int],
        num_actions: int,
        num_blocks: int,
        channels: int,
        value_hidden: int = 64,
    ):
        super().__init__()
        C, H, W = obs_shape
        self.stem = nn.Sequential(
            nn.Conv2d(C, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU()
        )
        self.tower = nn.Sequential(*[ResidualBlock(channels) for _ in range(num_blocks)])
        self.policy_head = nn.Sequential(
            nn.Conv2d(channels, 4, 1, bias=False),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(4 * H * W, num_actions),
        )
        self.value_head = nn.Sequential(
            nn.Conv2d(channels, 2, 1, bias=False),
            nn.BatchNorm2d(2),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(2 * H * W, value_hidden),
            nn.ReLU(),
            nn.Linear(value_hidden, 1),
            nn.Tanh(),
        )

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        x = self.tower(self.stem(obs))
        return self.policy_head(x), self.value_head(x).squeeze(-1)


def mlp(
    sizes: list[int], activation: type[nn.Module] = nn.Tanh, output_gain: float | None = None
) -> nn.Sequential:
    """Linear layers of the given sizes with ``activation`` between them (none after the last).

    Hidden layers use orthogonal init with gain sqrt(2) (the PPO/A2C convention);
    ``output_gain`` sets the last layer's gain (e.g. 0.01 for a policy head).
    """
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        linear = nn.Linear(sizes[i], sizes[i + 1])
        last = i == len(sizes) - 2
        gain = (output_gain if output_gain is not None else 1.0) if last else 2**0.5
        nn.init.orthogonal_(linear.weight, gain)
        nn.init.zeros_(linear.bias)
        layers.append(linear)
        if not last:
            layers.append(activation())
    return nn.Sequential(*layers)


# ------------------------------------------------------- off-policy actors and critics
def _linear_init_(weight: Tensor, bias: Tensor, fan_in: int) -> None:
    """``nn.Linear``'s default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias."""
    bound = 1.0 / math.sqrt(fan_in)
    nn.init.uniform_(weight, -bound, bound)
    nn.init.uniform_(bias, -bound, bound)


class EnsembleQ(nn.Module):
    """E independent Q networks Q_e(obs, action), evaluated together.

    Layer l holds ``weight [E, in, out]`` and ``bias [E, 1, out]``; a forward is
    one ``torch.baddbmm`` per layer over all members, ReLU between layers.
    Input obs ``[B, *obs_shape]``, action ``[B, A]``; output ``[E, B]``.
    """

    def __init__(self, obs_dim: int, action_dim: int, hidden_sizes: Sequence[int], num_members=2):
        super().__init__()
        self.num_members = num_members
        sizes = [obs_dim + action_dim, *hidden_sizes, 1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in itertools.pairwise(sizes):
            weight = nn.Parameter(torch.empty(num_members, fan_in, fan_out))
            bias = nn.Parameter(torch.empty(num_members, 1, fan_out))
            _linear_init_(weight, bias, fan_in)
            self.weights.append(weight)
            self.biases.append(bias)

    def forward(self, obs: Tensor, action: Tensor, members: slice | None = None) -> Tensor:
        """Q values ``[E, B]`` (``[len(members), B]`` for a slice of the members)."""
        x = torch.cat([obs.flatten(1), action], dim=1)  # [B, in]
        pick = members if members is not None else slice(None)
        weights = [w[pick] for w in self.weights]
        biases = [b[pick] for b in self.biases]
        x = x.expand(weights[0].shape[0], *x.shape)  # [E, B, in], no copy
        for weight, bias in zip(weights[:-1], biases[:-1]):
            x = torch.baddbmm(bias, x, weight).relu_()  # relu(bias + x @ weight): [E, B, out]
        # The output layer (out = 1) as a product and a sum: the same numbers, but
        # several times faster on the CPU than a batched matmul with one column.
        weight, bias = weights[-1], biases[-1]
        return (x * weight.transpose(1, 2)).sum(-1) + bias.squeeze(-1)

    def min_q(self, obs: Tensor, action: Tensor) -> Tensor:
        """``min_e Q_e(obs, action)`` ``[B]``, differentiable in ``action`` only: the
        objective of an actor through frozen critics (SAC, the min over members).

        Equal to ``self(obs, action).min(0).values`` with the parameters frozen, but
        the backward pass sends each row through its minimising member alone (as
        autograd's min does), so it costs one member's matmuls instead of E.
        """
        x = torch.cat([obs.flatten(1).detach(), action], dim=1)
        return _MinQ.apply(x, list(self.weights), list(self.biases))


class _MinQ(torch.autograd.Function):
    """min over the members of an :class:`EnsembleQ`, gradient to the input rows only."""

    @staticmethod
    def forward(ctx, x: Tensor, weights: list[Tensor], biases: list[Tensor]) -> Tensor:
        weights = [w.detach() for w in weights]
        h = x.expand(weights[0].shape[0], *x.shape)
        hidden = []
        for weight, bias in zip(weights[:-1], biases[:-1]):
            h = torch.baddbmm(bias.detach(), h, weight).relu_()
            hidden.append(h)
        q = (h * weights[-1].transpose(1, 2)).sum(-1) + biases[-1].detach().squeeze(-1)
        values, member = q.min(0)
        ctx.save_for_backward(member, *weights, *hidden)
        return values

    @staticmethod
    def backward(ctx, grad: Tensor):
        member, *saved = ctx.saved_tensors
        num_layers = (len(saved) + 1) // 2
        weights, hidden = saved[:num_layers], saved[num_layers:]
        grad_x = grad.new_empty(len(grad), weights[0].shape[1])
        for e in range(weights[0].shape[0]):
            rows = torch.nonzero(member == e).squeeze(1)
            if len(rows) == 0:
                continue
            g = grad[rows, None] * weights[-1][e, :, 0]  # [n, H]
            for layer in range(num_layers - 2, -1, -1):
                g = g * (hidden[layer][e, rows] > 0)  # through the ReLU
                g = g @ weights[layer][e].T
            grad_x[rows] = g
        return grad_x, None, None


def _relu_mlp(sizes: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class _ActionScale(nn.Module):
    """Maps [-1, 1] to the Box [low, high]: ``action = scale * u + bias``."""

    def __init__(self, low: np.ndarray, high: np.ndarray):
        super().__init__()
        low_t, high_t = (
            torch.as_tensor(low, dtype=torch.float32),
            torch.as_tensor(high, dtype=torch.float32),
        )
        self.register_buffer("action_scale", (high_t - low_t) / 2)
        self.register_buffer("action_bias", (high_t + low_t) / 2)


class DeterministicActor(nn.Module):
    """mu(obs) = scale * tanh(MLP(obs)) + bias: obs ``[B, *obs_shape]`` -> action ``[B, A]``."""

    def __init__(
        self, obs_dim: int, low: np.ndarray, high: np.ndarray, hidden_sizes: Sequence[int]
    ):
        super().__init__()
        self.net = _relu_mlp([obs_dim, *hidden_sizes, len(low)])
        self.scale = _ActionScale(low, high)

    def forward(self, obs: Tensor) -> Tensor:
        unit = torch.tanh(self.net(obs.flatten(1)))
        return unit * self.scale.action_scale + self.scale.action_bias


LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # SB3 and Spinning Up


class SquashedGaussianActor(nn.Module):
    """pi(a|s): u ~ N(mu(s), sigma(s)), a = scale * tanh(u) + bias (Haarnoja et al. 2018, App. C).

    ``forward(obs [B, ...], generator)`` returns ``action [B, A]`` (reparameterised,
    differentiable) and ``log_prob [B]``, the log density of tanh(u) in [-1, 1]^A
    (the SB3 convention: the constant log-scale of the Box is left out, so the
    entropy target -A means the same in every Box).
    """

    def __init__(
        self, obs_dim: int, low: np.ndarray, high: np.ndarray, hidden_sizes: Sequence[int]
    ):
        super().__init__()
        action_dim = len(low)
        self.trunk = nn.Sequential(_relu_mlp([obs_dim, *hidden_sizes]), nn.ReLU())
        self.mean = nn.Linear(hidden_sizes[-1], action_dim)
        self.log_std = nn.Linear(hidden_sizes[-1], action_dim)
        self.scale = _ActionScale(low, high)

    def _to_box(self, unit: Tensor) -> Tensor:
        return unit * self.scale.action_scale + self.scale.action_bias

    def deterministic(self, obs: Tensor) -> Tensor:
        """The mode's image scale * tanh(mu(s)) + bias, ``[B, A]``."""
        return self._to_box(torch.tanh(self.mean(self.trunk(obs.flatten(1)))))

    def forward(
        self, obs: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        latent = self.trunk(obs.flatten(1))
        mean = self.mean(latent)
        log_std = self.log_std(latent).clamp(LOG_STD_MIN, LOG_STD_MAX)
        std = log_std.exp()
        noise = torch.randn(mean.shape, generator=generator, device=mean.device)
        u = mean + std * noise
        # log N(u; mu, sigma) - sum log(1 - tanh(u)^2), the latter in the stable form
        # 2 (log 2 - u - softplus(-2u)) (Spinning Up).
        gaussian = (-0.5 * noise.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        squash = (2 * (math.log(2) - u - nn.functional.softplus(-2 * u))).sum(-1)
        return self._to_box(torch.tanh(u)), gaussian - squash


@torch.no_grad()
def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging, theta_target <- (1 - tau) theta_target + tau theta_source."""
    targets = [p for p in target.parameters()]
    sources = [p for p in source.parameters()]
    torch._foreach_lerp_(targets, sources, tau)


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """No parameter gradients for ``module`` inside the block (the actor loss through Q)."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def make_adam(params, lr: float, eps: float = 1e-8) -> torch.optim.Adam:
    """Adam with the fused kernel where this torch build has it (one kernel for all tensors)."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, eps=eps, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr, eps=eps, foreach=True)


_LOG_2PI = math.log(2 * math.pi)


class ActorCritic(nn.Module):
    """Policy and value MLPs (not shared, as SB3's MlpPolicy), tanh, orthogonal init.

    The policy's output ``params [B, P]`` describes the action distribution:
    normalised log-probabilities ``[B, A]`` for a Discrete space, and
    ``cat(mean, log_std) [B, 2D]`` for a Box space (a state-independent
    ``log_std`` parameter, initialised to ``log_std_init``, 0 by default as SB3).
    """

    def __init__(
        self,
        obs_dim: int,
        action_space: gym.Space,
        hidden_sizes: tuple[int, ...] = (64, 64),
        log_std_init: float = 0.0,
    ):
        super().__init__()
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        if not self.discrete and not isinstance(action_space, gym.spaces.Box):
            raise ValueError(
                f"on-policy agents need a Discrete or Box action space, not {action_space}"
            )
        self.action_dim = int(action_space.n) if self.discrete else int(np.prod(action_space.shape))
        sizes = [obs_dim, *hidden_sizes]
        self.actor = mlp([*sizes, self.action_dim], nn.Tanh, output_gain=0.01)
        self.critic = mlp([*sizes, 1], nn.Tanh, output_gain=1.0)
        self.log_std = (
            None if self.discrete else nn.Parameter(torch.full((self.action_dim,), log_std_init))
        )

    def actor_parameters(self) -> list[nn.Parameter]:
        extra = [] if self.log_std is None else [self.log_std]
        return [*self.actor.parameters(), *extra]

    def value(self, obs: Tensor) -> Tensor:
        """``[B, obs_dim] -> [B]``."""
        return self.critic(obs).squeeze(-1)

    def dist_params(self, obs: Tensor) -> Tensor:
        """``[B, obs_dim] -> [B, P]`` (log-probs, or mean and log-std)."""
        out = self.actor(obs)
        if self.discrete:
            return torch.log_softmax(out, dim=-1)
        return torch.cat([out, self.log_std.expand_as(out)], dim=-1)

    def sample(
        self, params: Tensor, generator: torch.Generator | None, deterministic: bool = False
    ) -> Tensor:
        """Actions ``[B]`` (int64) or ``[B, D]`` (float32) from ``params [B, P]``."""
        if self.discrete:
            if deterministic:
                return params.argmax(-1)
            return torch.multinomial(params.exp(), 1, generator=generator).squeeze(-1)
        mean, log_std = params.chunk(2, dim=-1)
        if deterministic:
            return mean
        noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
        return mean + log_std.exp() * noise

    def log_prob(self, params: Tensor, action: Tensor) -> Tensor:
        """``log pi(action) [B]``."""
        if self.discrete:
            return params.gather(-1, action.long().unsqueeze(-1)).squeeze(-1)
        mean, log_std = params.chunk(2, dim=-1)
        z = (action - mean) * torch.exp(-log_std)
        return (-0.5 * z.pow(2) - log_std - 0.5 * _LOG_2PI).sum(-1)

    def entropy(self, params: Tensor) -> Tensor:
        """``H(pi) [B]``."""
        if self.discrete:
            return -(params.exp() * params).sum(-1)
        _, log_std = params.chunk(2, dim=-1)
        return (log_std + 0.5 * (1.0 + _LOG_2PI)).sum(-1)

    def kl(self, old: Tensor, new: Tensor) -> Tensor:
        """``KL(pi_old || pi_new) [B]``."""
        if self.discrete:
            return (old.exp() * (old - new)).sum(-1)
        mean0, log_std0 = old.chunk(2, dim=-1)
        mean1, log_std1 = new.chunk(2, dim=-1)
        var0, var1 = torch.exp(2 * log_std0), torch.exp(2 * log_std1)
        return (log_std1 - log_std0 + (var0 + (mean0 - mean1).pow(2)) / (2 * var1) - 0.5).sum(-1)
