"""Ensembles of MLP dynamics models, all members evaluated as one batched product.

An ensemble maps an input row ``(obs, action)`` to a prediction per member of the
change of observation ``next_obs - obs`` (delta-state targets, as in PETS and MBPO),
optionally of the reward, and optionally of a termination logit:

- ``PROBABILISTIC`` members (PETS, Chua et al. 2018) output a Gaussian per target,
  mean and log-variance, trained with the Gaussian negative log-likelihood. The
  log-variance is soft-clamped between a learned maximum and minimum per member and
  target, and the loss adds the PETS regulariser ``coef * (sum max - sum min)``
  that pulls the bounds together, so the variance cannot run off where there is no
  data to pin it.
- ``DETERMINISTIC`` members output the mean only, trained with the squared error
  (ME-TRPO, MB-MF).

Layer l holds ``weight [E, in, out]`` and ``bias [E, 1, out]``; a forward pass is one
``torch.baddbmm`` per layer over all members (``[E, B, in] x [E, in, out]``). Inputs
are standardised by a :class:`Normalizer` whose mean and std are buffers, saved in the
``state_dict`` with the weights. Every parameter has the member dimension E first,
so a member's weights are ``p[e]`` for every ``p`` (the trainer keeps each member's
best weights by that index).

Shapes: E members, B batch, D observation dims, K = D (+1 with a reward head)
Gaussian targets.
"""

from __future__ import annotations

import enum
import itertools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import repeat
from torch import Tensor, nn

from mbrl.model import ShapeError

from ._checks import at_least, fail, positive

__all__ = [
    "Activation",
    "Ensemble",
    "EnsembleConfig",
    "EnsembleKind",
    "EnsembleOutput",
    "ModelDivergedError",
    "Normalizer",
]


class EnsembleKind(enum.Enum):
    """What each member predicts."""

    PROBABILISTIC = "probabilistic"
    """A Gaussian (mean, bounded log-variance) per target; Gaussian NLL (PETS)."""
    DETERMINISTIC = "deterministic"
    """A mean per target; squared error."""


class Activation(enum.Enum):
    """The nonlinearity between hidden layers; call it on a tensor."""

    SILU = "silu"
    """x * sigmoid(x), PETS's "swish"."""
    RELU = "relu"
    TANH = "tanh"

    def __call__(self, x: Tensor) -> Tensor:
        return _ACTIVATIONS[self](x)


_ACTIVATIONS = {Activation.SILU: F.silu, Activation.RELU: F.relu, Activation.TANH: torch.tanh}


class ModelDivergedError(ValueError):
    """A member's loss or prediction became NaN or infinite, or exploded.

    ``member`` is the member's index; ``epoch`` the training epoch (counted from 1
    within a fit) or, for a prediction, the number of epochs the ensemble had been
    trained for.
    """

    def __init__(self, message: str, *, member: int, epoch: int):
        super().__init__(message)
        self.member = member
        self.epoch = epoch


@dataclass(frozen=True, kw_only=True)
class EnsembleConfig:
    """Sizes and heads of an :class:`Ensemble`."""

    obs_dim: int
    """D, the length of an observation vector."""
    action_dim: int
    """Length of a continuous action vector, or the number of discrete actions A (one-hot
    encoded into the input) when ``discrete_actions``."""
    discrete_actions: bool = False
    """Actions are int64 indices in [0, action_dim) rather than float vectors."""
    kind: EnsembleKind = EnsembleKind.PROBABILISTIC
    """Probabilistic (Gaussian NLL, PETS) or deterministic (squared error) members."""
    num_members: int = 7
    """E, the number of members; 5 in PETS, 7 in MBPO, 5-10 in ME-TRPO."""
    num_elites: int = 5
    """Members with the best validation scores that propagation uses; 5 of 7 in MBPO
    (set equal to ``num_members`` to use all)."""
    hidden_sizes: tuple[int, ...] = (200, 200, 200, 200)
    """Widths of the hidden layers; 4x200 in MBPO, 3-4x200 in PETS, 2x500 in MB-MF."""
    activation: Activation = Activation.SILU
    """Nonlinearity between hidden layers; SiLU (swish) in PETS and MBPO."""
    learn_reward: bool = True
    """Predict the reward as one more Gaussian target (MBPO); off where a known reward
    function is used (PETS)."""
    learn_termination: bool = False
    """Predict a termination logit (binary cross-entropy); off where a known termination
    function is used or the task never terminates."""
    init_max_log_var: float = 0.5
    """Initial upper bound of the log-variance; 0.5 in PETS."""
    init_min_log_var: float = -10.0
    """Initial lower bound of the log-variance; -10 in PETS."""
    log_var_bound_coef: float = 0.01
    """Weight of the regulariser ``sum(max_log_var) - sum(min_log_var)``; 0.01 in PETS."""

    def __post_init__(self):
        positive(self, "obs_dim", "action_dim")
        at_least(self, 1, "num_members", "num_elites")
        if self.num_elites > self.num_members:
            fail(self, "num_elites", f"be <= num_members ({self.num_members})")
        if not isinstance(self.kind, EnsembleKind):
            fail(self, "kind", "be an EnsembleKind")
        if not isinstance(self.activation, Activation):
            fail(self, "activation", "be an Activation")
        if len(self.hidden_sizes) == 0:
            fail(self, "hidden_sizes", "hold at least one layer width")
        if not all(isinstance(h, int) and h > 0 for h in self.hidden_sizes):
            fail(self, "hidden_sizes", "hold positive integers")
        if not self.init_min_log_var < self.init_max_log_var:
            fail(self, "init_min_log_var", f"be < init_max_log_var ({self.init_max_log_var})")
        at_least(self, 0.0, "log_var_bound_coef")

    @property
    def probabilistic(self) -> bool:
        return self.kind is EnsembleKind.PROBABILISTIC

    @property
    def num_inputs(self) -> int:
        """Length of an input row: observation, then the action (one-hot if discrete)."""
        return self.obs_dim + self.action_dim

    @property
    def num_targets(self) -> int:
        """K, the Gaussian targets: the observation delta, then the reward if learned."""
        return self.obs_dim + int(self.learn_reward)

    @property
    def num_outputs(self) -> int:
        """Width of the last layer: K means, K log-variances if probabilistic, one logit."""
        return self.num_targets * (2 if self.probabilistic else 1) + int(self.learn_termination)


class Normalizer(nn.Module):
    """Per-column standardisation ``(x - mean) / std``; mean and std are buffers."""

    def __init__(self, size: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(size))
        self.register_buffer("std", torch.ones(size))

    @torch.no_grad()
    def fit(self, x: Tensor) -> None:
        """Set mean and std from rows ``x [N, size]``; a constant column keeps std 1."""
        std = x.std(0, unbiased=False)
        self.mean.copy_(x.mean(0))
        self.std.copy_(torch.where(std < 1e-6, torch.ones_like(std), std))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


@dataclass(frozen=True)
class EnsembleOutput:
    """What the members predict, with leading dimensions ``[E, B]`` (a forward over all or
    some members) or ``[B]`` (one member per row, :meth:`Ensemble.forward_rows`)."""

    mean: Tensor
    """[E, B, K] means of the Gaussian targets: observation delta, then reward."""
    log_var: Tensor | None
    """[E, B, K] bounded log-variances (probabilistic members), else None."""
    termination_logit: Tensor | None
    """[E, B] termination logits (with a termination head), else None."""

    def map(self, fn) -> EnsembleOutput:
        """The same output with ``fn`` applied to every tensor."""
        return EnsembleOutput(*(None if t is None else fn(t) for t in self.tensors()))

    def tensors(self) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        return self.mean, self.log_var, self.termination_logit


class Ensemble(nn.Module):
    """E MLP members over ``(obs, action)`` rows, evaluated as one batched product.

    ``forward(inputs)`` takes ``inputs [B, in]`` (every member sees the same rows) or
    ``[E, B, in]`` (a batch per member, as in bootstrap training) and returns an
    :class:`EnsembleOutput` of ``[E, B, ...]`` tensors. ``elites`` (a buffer, int64
    ``[num_elites]``) lists the members propagation uses; the trainer sets it.
    """

    def __init__(self, config: EnsembleConfig, *, generator: torch.Generator | None = None):
        super().__init__()
        self.config = config
        num = config.num_members
        sizes = [config.num_inputs, *config.hidden_sizes, config.num_outputs]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in itertools.pairwise(sizes):
            weight = torch.empty(num, fan_in, fan_out)
            # PETS's initialisation: truncated normal, std 1 / (2 sqrt(fan_in)), zero bias.
            std = 1.0 / (2.0 * math.sqrt(fan_in))
            nn.init.trunc_normal_(weight, std=std, a=-2 * std, b=2 * std, generator=generator)
            self.weights.append(nn.Parameter(weight))
            self.biases.append(nn.Parameter(torch.zeros(num, 1, fan_out)))
        if config.probabilistic:
            k = config.num_targets
            self.max_log_var = nn.Parameter(torch.full((num, 1, k), config.init_max_log_var))
            self.min_log_var = nn.Parameter(torch.full((num, 1, k), config.init_min_log_var))
        self.input_normalizer = Normalizer(config.num_inputs)
        self.register_buffer("elites", torch.arange(config.num_elites))
        self.register_buffer("epochs_trained", torch.zeros((), dtype=torch.int64))

    @property
    def num_members(self) -> int:
        return self.config.num_members

    @property
    def device(self) -> torch.device:
        return self.weights[0].device

    # ------------------------------------------------------------------ inputs
    def features(self, obs: Tensor, action: Tensor) -> Tensor:
        """Input rows ``[..., in]`` from ``obs [..., D]`` and ``action [..., A]`` float (or
        ``[...]`` int64 indices, one-hot encoded, for discrete actions)."""
        config = self.config
        if obs.shape[-1] != config.obs_dim:
            raise ShapeError(f"obs must be [..., {config.obs_dim}], got {list(obs.shape)}")
        if config.discrete_actions:
            if action.dtype != torch.int64 or action.shape != obs.shape[:-1]:
                raise ShapeError(
                    f"discrete actions must be int64 {list(obs.shape[:-1])}, got "
                    f"{action.dtype} {list(action.shape)}"
                )
            action = F.one_hot(action, config.action_dim).to(obs.dtype)
        elif action.shape != (*obs.shape[:-1], config.action_dim):
            raise ShapeError(
                f"actions must be [{', '.join(map(str, obs.shape[:-1]))}, {config.action_dim}]"
                f", got {list(action.shape)}"
            )
        return torch.cat([obs, action.to(obs.dtype)], dim=-1)

    # ------------------------------------------------------------------ forward
    def forward(self, inputs: Tensor, members: Tensor | None = None) -> EnsembleOutput:
        """Predictions ``[E, B, ...]`` of ``inputs [B, in]`` or ``[E, B, in]``.

        ``members`` (int64 ``[E']``) evaluates those members only: the inputs are then
        ``[B, in]`` or ``[E', B, in]`` and the outputs ``[E', B, ...]``.
        """
        pick = slice(None) if members is None else members
        weights = [w[pick] for w in self.weights]
        biases = [b[pick] for b in self.biases]
        x = self.input_normalizer(inputs)
        if x.ndim == 2:
            x = repeat(x, "b d -> e b d", e=weights[0].shape[0])  # [E, B, in], a view
        for weight, bias in zip(weights[:-1], biases[:-1]):
            x = self.config.activation(torch.baddbmm(bias, x, weight))  # [E, B, out]
        out = torch.baddbmm(biases[-1], x, weights[-1])  # [E, B, num_outputs]
        k = self.config.num_targets
        mean, log_var, logit = out[..., :k], None, None
        if self.config.probabilistic:
            log_var = self._bounded_log_var(out[..., k : 2 * k], pick)
        if self.config.learn_termination:
            logit = out[..., -1]
        return EnsembleOutput(mean, log_var, logit)

    def _bounded_log_var(self, raw: Tensor, pick) -> Tensor:
        """PETS's soft clamp of ``raw [E, B, K]`` between the members' learned bounds."""
        high, low = self.max_log_var[pick], self.min_log_var[pick]
        log_var = high - F.softplus(high - raw)
        return low + F.softplus(log_var - low)

    def forward_rows(self, inputs: Tensor, member: Tensor) -> EnsembleOutput:
        """Each row through its own member: ``inputs [B, in]``, ``member`` int64 ``[B]``;
        outputs ``[B, ...]``.

        Rows are grouped by member into one padded ``[E', C, in]`` batch (E' members in
        use, C rows of the busiest one), so any batch size and any split of the rows
        over the members costs one batched forward of about B rows.
        """
        used, local = torch.unique(member, return_inverse=True)  # [E'], [B] in [0, E')
        counts = torch.bincount(local, minlength=len(used))
        order = torch.argsort(local, stable=True)
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.empty_like(local)
        rank[order] = torch.arange(len(local), device=local.device) - starts[local[order]]
        slots = local.new_zeros(len(used), int(counts.max()))  # padding reads row 0
        slots[local, rank] = torch.arange(len(local), device=local.device)
        members = None if len(used) == self.num_members else used
        grouped = self(inputs[slots], members=members)  # [E', C, ...]
        return grouped.map(lambda t: t[local, rank])

    # ------------------------------------------------------------------ losses
    def loss(self, inputs: Tensor, targets: Tensor, terminated: Tensor | None = None) -> Tensor:
        """Training loss of each member ``[E]`` on its own batch.

        ``inputs [E, B, in]``, ``targets [E, B, K]`` (observation delta, then reward),
        ``terminated [E, B]`` bool (with a termination head). Probabilistic: Gaussian NLL
        (up to constants, averaged over B and K) plus the log-variance bound regulariser;
        deterministic: squared error averaged over B and K.
        """
        out = self(inputs)
        if self.config.probabilistic:
            inverse_var = torch.exp(-out.log_var)
            nll = ((out.mean - targets) ** 2 * inverse_var + out.log_var).mean((1, 2))
            bounds = (self.max_log_var - self.min_log_var).sum((1, 2))
            loss = nll + self.config.log_var_bound_coef * bounds
        else:
            loss = ((out.mean - targets) ** 2).mean((1, 2))
        if self.config.learn_termination:
            loss = loss + self._termination_loss(out.termination_logit, terminated)
        return loss

    @torch.no_grad()
    def score(self, inputs: Tensor, targets: Tensor, terminated: Tensor | None = None) -> Tensor:
        """Validation score of each member ``[E]`` (lower is better): the squared error of
        the means (``inputs [B, in]``, ``targets [B, K]``), plus the termination
        cross-entropy with a termination head."""
        out = self(inputs)
        score = ((out.mean - targets) ** 2).mean((1, 2))
        if self.config.learn_termination:
            score = score + self._termination_loss(out.termination_logit, terminated)
        return score

    @staticmethod
    def _termination_loss(logit: Tensor, terminated: Tensor | None) -> Tensor:
        if terminated is None:
            raise ValueError("an ensemble with a termination head needs terminated targets")
        target = terminated.to(logit.dtype).expand_as(logit)
        return F.binary_cross_entropy_with_logits(logit, target, reduction="none").mean(1)
