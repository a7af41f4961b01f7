"""A learned ensemble as a :class:`~mbrl.model.Model`: the one interface planners and
imagining agents use.

A state row is the observation plus what propagation needs, float32
``[B, 2D + 2]`` (D observation dims):

======================  ==================================================================
columns                 meaning
======================  ==================================================================
``[0, D)``              the observation (under ``EXPECTATION``: the mean of the belief)
``[D, 2D)``             the variance of the belief under ``EXPECTATION``; zeros otherwise
``2D``                  the member that made the row's last step (``TS1``), or that makes
                        all its steps (``TS_INF``); kept as is by ``MEAN``/``EXPECTATION``
``2D + 1``              1.0 where the row is terminal, else 0.0
======================  ==================================================================

States start from real observations: :meth:`LearnedModel.initial_state` repeats
each observation for P particles (rows ``(b p)``) and gives each row its member. A
terminal row absorbs: stepping it returns the same row, reward 0 and
``terminal=True``, and its legal mask is all False.

Propagation (PETS's names, Chua et al. 2018), over the elite members only:

- ``TS1``: each row draws a member uniformly from the elites at every step;
- ``TS_INF``: each row keeps the member :meth:`~LearnedModel.initial_state` gave it
  (balanced over the elites among a start's particles);
- ``MEAN``: the mean of the elites' means, deterministic;
- ``EXPECTATION``: moment matching, deterministic: the next belief's mean is the mean
  of the elites' means, and its variance grows by the moment-matched variance of the
  step, the mean of the members' variances plus the variance of their means. The
  network sees the belief's mean only: the variance of the input is not pushed
  through it (the increments are treated as independent of the state).

In the ``TS`` modes a probabilistic member's prediction is a sample of its Gaussian
(observation delta and reward). Randomness comes only from the ``generator``
argument (on the model's device); the same generator state gives the same result.
Any batch size and any number of particles work with any number of members: the
rows of each member are grouped into one batched forward.

Reward and termination come from the ensemble's heads, or from known functions
``reward_fn(obs, action, next_obs) -> [B]`` and
``termination_fn(obs, action, next_obs) -> [B] bool``. Without either termination
source no row ever terminates. A termination head's row is terminal where its
probability (averaged over the elites in ``MEAN``/``EXPECTATION``) exceeds 1/2.

Precision: ``compute_dtype=torch.bfloat16`` runs the members' matrix products (and
activations) in bfloat16 under ``torch.autocast``, where a CPU with AVX512-BF16 (or a
GPU) multiplies several times faster than in float32; the state, the sum
``obs + delta``, the noise, reward and termination stay float32. A prediction then
carries bfloat16's relative error (about 0.4%) in the delta: enough to rank the
candidates of a planner, not to train on (fits always run in float32).

Continuous actions outside ``[action_low, action_high]`` act as the nearest action in
the box (as MuJoCo clamps its controls); there is no legal mask beyond the terminal
rows (``legal_actions`` is ``[B, 1]`` for continuous actions, ``[B, A]`` for discrete).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence

import torch
from einops import rearrange, repeat
from torch import Tensor

from mbrl.model import IllegalActionError, ModelSpec, ShapeError, Step

from .ensemble import Ensemble, EnsembleOutput, ModelDivergedError

__all__ = ["LearnedModel", "Propagation", "RewardFn", "TerminationFn"]

RewardFn = Callable[[Tensor, Tensor, Tensor], Tensor]
"""``reward_fn(obs [B, D], action, next_obs [B, D]) -> [B]`` float32."""
TerminationFn = Callable[[Tensor, Tensor, Tensor], Tensor]
"""``termination_fn(obs [B, D], action, next_obs [B, D]) -> [B]`` bool."""


class Propagation(enum.Enum):
    """How a row's next state is drawn from the ensemble."""

    TS1 = "ts1"
    """A member drawn uniformly from the elites for every row and step."""
    TS_INF = "ts_inf"
    """The row's own member, fixed for its whole trajectory."""
    MEAN = "mean"
    """The mean of the elites' means (deterministic)."""
    EXPECTATION = "expectation"
    """Moment matching: mean of means, variance = mean variance + variance of means."""


class LearnedModel:
    """An :class:`Ensemble` as a one-player :class:`~mbrl.model.Model` (see the module)."""

    def __init__(
        self,
        ensemble: Ensemble,
        *,
        propagation: Propagation = Propagation.TS_INF,
        reward_fn: RewardFn | None = None,
        termination_fn: TerminationFn | None = None,
        action_low: Sequence[float] | None = None,
        action_high: Sequence[float] | None = None,
        name: str = "learned",
        max_episode_length: int | None = None,
        compute_dtype: torch.dtype = torch.float32,
    ):
        config = ensemble.config
        if compute_dtype not in (torch.float32, torch.bfloat16):
            raise ValueError(
                f"compute_dtype must be torch.float32 or torch.bfloat16, got {compute_dtype}"
            )
        self.compute_dtype = compute_dtype
        if not isinstance(propagation, Propagation):
            raise ValueError(f"propagation must be a Propagation, got {propagation!r}")
        if (reward_fn is not None) == config.learn_reward:
            raise ValueError(
                "a learned model needs exactly one reward source: pass reward_fn or use an "
                f"ensemble with EnsembleConfig.learn_reward=True (got reward_fn="
                f"{'given' if reward_fn else None}, learn_reward={config.learn_reward})"
            )
        if termination_fn is not None and config.learn_termination:
            raise ValueError(
                "termination_fn given for an ensemble with a termination head: use one "
                "(EnsembleConfig.learn_termination=False to use the function)"
            )
        if config.discrete_actions and (action_low is not None or action_high is not None):
            raise ValueError("action_low and action_high are for continuous actions only")
        self.ensemble = ensemble
        self.propagation = propagation
        self.reward_fn = reward_fn
        self.termination_fn = termination_fn
        obs_dim, action_dim = config.obs_dim, config.action_dim
        self.spec = ModelSpec(
            name=name,
            obs_shape=(obs_dim,),
            state_shape=(2 * obs_dim + 2,),
            state_dtype=torch.float32,
            num_actions=action_dim if config.discrete_actions else None,
            action_shape=() if config.discrete_actions else (action_dim,),
            max_episode_length=max_episode_length,
            action_low=None if action_low is None else tuple(map(float, action_low)),
            action_high=None if action_high is None else tuple(map(float, action_high)),
        )
        self._bounds = None
        if self.spec.action_low is not None:
            low, high = self.spec.action_low, self.spec.action_high
            self._bounds = (torch.tensor(low), torch.tensor(high))

    @property
    def num_members(self) -> int:
        return self.ensemble.num_members

    def with_propagation(self, propagation: Propagation) -> LearnedModel:
        """The same ensemble and functions, another propagation mode."""
        spec = self.spec
        return LearnedModel(
            self.ensemble,
            propagation=propagation,
            reward_fn=self.reward_fn,
            termination_fn=self.termination_fn,
            action_low=spec.action_low,
            action_high=spec.action_high,
            name=spec.name,
            max_episode_length=spec.max_episode_length,
            compute_dtype=self.compute_dtype,
        )

    # ------------------------------------------------------------------ states
    @torch.no_grad()
    def initial_state(
        self, obs: Tensor, num_particles: int = 1, generator: torch.Generator | None = None
    ) -> Tensor:
        """``[B * P, 2D + 2]`` states from observations ``obs [B, D]``: P particles per
        observation (rows ``(b p)``), each with a member of the elites, spread evenly
        over the P particles of each observation in a random order."""
        d = self.ensemble.config.obs_dim
        if obs.ndim != 2 or obs.shape[1] != d:
            raise ShapeError(f"initial_state: obs must be [B, {d}], got {list(obs.shape)}")
        if num_particles < 1:
            raise ValueError(f"initial_state: num_particles must be >= 1, got {num_particles}")
        device = self.ensemble.device
        obs = obs.to(device, torch.float32)
        elites = self.ensemble.elites
        b, p = obs.shape[0], num_particles
        slot = torch.argsort(torch.rand(b, p, generator=generator, device=device), dim=1)
        offset = torch.randint(len(elites), (b, 1), generator=generator, device=device)
        member = elites[rearrange((slot + offset) % len(elites), "b p -> (b p)")]
        rows = repeat(obs, "b d -> (b p) d", p=p)
        zeros = torch.zeros_like(rows)
        return torch.cat([rows, zeros, member[:, None].float(), zeros[:, :1]], dim=1)

    def observe(self, state: Tensor) -> Tensor:
        """``[B, D]`` float32 the observation columns (a copy)."""
        self._check_state(state, "observe")
        return state[:, : self.ensemble.config.obs_dim].clone()

    def legal_actions(self, state: Tensor) -> Tensor:
        """``[B, A]`` (discrete) or ``[B, 1]`` (continuous) bool: True unless terminal."""
        self._check_state(state, "legal_actions")
        width = self.spec.num_actions or 1
        return repeat(~self._terminal(state), "b -> b a", a=width).clone()

    def to_play(self, state: Tensor) -> Tensor:
        self._check_state(state, "to_play")
        return torch.zeros(state.shape[0], dtype=torch.int64, device=state.device)

    def is_terminal(self, state: Tensor) -> Tensor:
        """``[B]`` bool."""
        self._check_state(state, "is_terminal")
        return self._terminal(state)

    def member(self, state: Tensor) -> Tensor:
        """``[B]`` int64 the member column."""
        self._check_state(state, "member")
        return state[:, -2].long()

    def with_member(self, state: Tensor, member: Tensor | int) -> Tensor:
        """A copy of ``state`` whose rows step with ``member`` (``[B]`` or one int) under
        ``TS_INF``, elite or not (ME-TRPO scores its policy on every member)."""
        self._check_state(state, "with_member")
        member = torch.as_tensor(member, device=state.device)
        if ((member < 0) | (member >= self.num_members)).any():
            raise ValueError(f"with_member: members are 0..{self.num_members - 1}, got {member}")
        state = state.clone()
        state[:, -2] = member.float()
        return state

    def variance(self, state: Tensor) -> Tensor:
        """``[B, D]`` the belief's variance (``EXPECTATION``; zeros in the other modes)."""
        self._check_state(state, "variance")
        d = self.ensemble.config.obs_dim
        return state[:, d : 2 * d].clone()

    # ------------------------------------------------------------------ step
    @torch.no_grad()
    def step(self, state: Tensor, action: Tensor, generator: torch.Generator | None = None) -> Step:
        """Advance every row: ``state [B, 2D + 2]``, ``action [B, A]`` float (continuous) or
        ``[B]`` int64 (discrete). Terminal rows stay as they are with reward 0. Runs
        without an autograd graph (a world to plan in, not a function to differentiate)."""
        self._check_state(state, "step")
        action = self._checked_action(state, action)
        d = self.ensemble.config.obs_dim
        obs, var, done = state[:, :d], state[:, d : 2 * d], self._terminal(state)
        inputs = self.ensemble.features(obs, action)
        delta, delta_var, member, prob = self._predict(inputs, state[:, -2].long(), generator)
        next_obs = obs + delta[:, :d]
        reward = self._reward(obs, action, next_obs, delta)
        terminal = self._termination(obs, action, next_obs, prob)
        next_var = var + delta_var[:, :d] if delta_var is not None else var
        columns = [next_obs, next_var, member[:, None].float(), terminal[:, None].float()]
        next_state = torch.cat(columns, dim=1)
        next_state = torch.where(done[:, None], state, next_state)
        reward = torch.where(done, 0.0, reward).float()
        return Step(next_state, reward, done | terminal)

    def _predict(self, inputs: Tensor, member: Tensor, generator):
        """``(delta [B, K], delta variance [B, K] or None, member [B], termination
        probability [B] or None)`` under the propagation mode."""
        ensemble, mode = self.ensemble, self.propagation
        elites = ensemble.elites
        if mode in (Propagation.TS1, Propagation.TS_INF):
            if mode is Propagation.TS1:
                draw = torch.randint(
                    len(elites), member.shape, generator=generator, device=member.device
                )
                member = elites[draw]
            elif ((member < 0) | (member >= ensemble.num_members)).any():
                row = int(torch.nonzero((member < 0) | (member >= ensemble.num_members))[0])
                raise ValueError(
                    f"step: row {row} has no valid member ({int(member[row])}) for TS_INF; "
                    "make states with LearnedModel.initial_state"
                )
            with self._precision(inputs):
                out = ensemble.forward_rows(inputs, member).map(Tensor.float)  # [B, ...]
            self._check_finite(out, lambda row: int(member[row]))
            delta = out.mean
            if out.log_var is not None:
                noise = torch.randn(
                    delta.shape, generator=generator, device=delta.device, dtype=delta.dtype
                )
                delta = delta + torch.exp(0.5 * out.log_var) * noise
            prob = None if out.termination_logit is None else out.termination_logit.sigmoid()
            return delta, None, member, prob
        with self._precision(inputs):
            out = ensemble(inputs, members=elites).map(Tensor.float)  # [E', B, ...]
        self._check_finite(out, lambda index: int(elites[index]))
        delta = out.mean.mean(0)
        delta_var = None
        if mode is Propagation.EXPECTATION:
            spread = out.mean.var(0, unbiased=False)
            delta_var = spread if out.log_var is None else out.log_var.exp().mean(0) + spread
        logit = out.termination_logit
        prob = None if logit is None else logit.sigmoid().mean(0)
        return delta, delta_var, member, prob

    def _precision(self, inputs: Tensor) -> torch.autocast:
        """The members' products in ``compute_dtype`` (a no-op for float32)."""
        low = self.compute_dtype is not torch.float32
        return torch.autocast(inputs.device.type, dtype=self.compute_dtype, enabled=low)

    def _check_finite(self, out: EnsembleOutput, member_of: Callable[[int], int]) -> None:
        """Raise :class:`ModelDivergedError` if a prediction is not finite; ``member_of``
        names the member of an index along the first dimension (a row of ``[B, ...]``
        or a member of ``[E', B, ...]``)."""
        bad = torch.zeros(out.mean.shape[0], dtype=torch.bool, device=out.mean.device)
        for tensor in out.tensors():
            if tensor is not None:
                bad |= ~torch.isfinite(tensor.reshape(tensor.shape[0], -1)).all(1)
        if bool(bad.any()):
            index = int(torch.nonzero(bad)[0])
            member = member_of(index)
            epochs = int(self.ensemble.epochs_trained)
            raise ModelDivergedError(
                f"ensemble member {member} predicted a non-finite value (NaN or infinite) "
                f"after {epochs} training epochs",
                member=member,
                epoch=epochs,
            )

    def _reward(self, obs: Tensor, action: Tensor, next_obs: Tensor, delta: Tensor) -> Tensor:
        if self.reward_fn is None:
            return delta[:, self.ensemble.config.obs_dim]
        reward = self.reward_fn(obs, action, next_obs)
        if reward.shape != (obs.shape[0],):
            raise ShapeError(f"reward_fn must return [{obs.shape[0]}], got {list(reward.shape)}")
        return reward.to(torch.float32)

    def _termination(self, obs, action, next_obs, prob: Tensor | None) -> Tensor:
        if self.termination_fn is not None:
            terminal = self.termination_fn(obs, action, next_obs)
            if terminal.shape != (obs.shape[0],) or terminal.dtype != torch.bool:
                raise ShapeError(
                    f"termination_fn must return bool [{obs.shape[0]}], got "
                    f"{terminal.dtype} {list(terminal.shape)}"
                )
            return terminal
        if prob is not None:
            return prob > 0.5
        return torch.zeros(obs.shape[0], dtype=torch.bool, device=obs.device)

    # ------------------------------------------------------------------ checks
    @staticmethod
    def _terminal(state: Tensor) -> Tensor:
        return state[:, -1] > 0.5

    def _check_state(self, state: Tensor, where: str) -> None:
        width = self.spec.state_shape[0]
        if state.ndim != 2 or state.shape[1] != width or state.dtype != torch.float32:
            raise ShapeError(
                f"{where}: state must be float32 [B, {width}], got {state.dtype} "
                f"{list(state.shape)}"
            )

    def _checked_action(self, state: Tensor, action: Tensor) -> Tensor:
        """The action on the state's device, clamped into the box for continuous actions."""
        b = state.shape[0]
        if self.spec.is_discrete:
            if action.shape != (b,) or action.dtype != torch.int64:
                raise ShapeError(
                    f"step: actions must be int64 [{b}], got {action.dtype} {list(action.shape)}"
                )
            bad = (action < 0) | (action >= self.spec.num_actions)
            if bad.any():
                row = int(torch.nonzero(bad)[0])
                raise IllegalActionError(
                    f"step: action {int(action[row])} of row {row} is not in "
                    f"[0, {self.spec.num_actions})",
                    row=row,
                    action=int(action[row]),
                    legal=list(range(self.spec.num_actions)),
                )
            return action.to(state.device)
        if action.shape != (b, *self.spec.action_shape) or not action.is_floating_point():
            raise ShapeError(
                f"step: actions must be float [{b}, {self.spec.action_shape[0]}], got "
                f"{action.dtype} {list(action.shape)}"
            )
        action = action.to(state.device, torch.float32)
        if self._bounds is not None:
            low, high = (bound.to(state.device) for bound in self._bounds)
            action = torch.clamp(action, low, high)
        return action
