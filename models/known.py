"""Known reward and termination functions of the suites' gymnasium envs, in the
observation space, for a :class:`~mbrl.models.LearnedModel` to use in place of learned
heads (``LearnedModel(ensemble, reward_fn=known.reward, termination_fn=known.termination)``).

Every function has the signature the learned model calls, over batched tensors:
``reward(obs [B, O], action [B, D] or [B], next_obs [B, O]) -> [B]`` (in the
observation's floating dtype) and ``termination(obs, action, next_obs) -> [B]`` bool.
They follow gymnasium 1.x with the envs' default constructor arguments; an env made with
other arguments (weights, ranges, ``exclude_current_positions_from_observation=False``,
Ant without contact forces) needs other functions, and a wrong observation width raises
:class:`~mbrl.model.ShapeError`. A MuJoCo env charges its control cost on the action as
given; the learned model passes the action clamped into the box, which is the same
inside the box.

:func:`known_functions` is the registry. Covered:

======================  ==========  ===========  ==========================================
env                     reward      termination  what is not observed
======================  ==========  ===========  ==========================================
``Pendulum-v1``         exact       never        (the angle before the step is
                                                 ``atan2(obs[1], obs[0])``)
``InvertedPendulum-v5`` exact       exact
``CartPole-v1``         exact (1)   exact
``HalfCheetah-v5``      approximate never        the x position: forward velocity estimated
``Hopper-v5``           approximate exact        the x position: forward velocity estimated
``Walker2d-v5``         approximate exact        the x position: forward velocity estimated
``Ant-v5``              approximate exact        the x position: forward velocity estimated
``Reacher-v5``          exact       never
======================  ==========  ===========  ==========================================

Planning rewards. Where an env's reward says nothing a short planning horizon can use
(InvertedPendulum's 1 a step until the pole falls), :attr:`KnownFunctions.planning_reward`
is a shaped objective in the manner of PETS's own task costs, for a planner to maximise
in its place (``PETS --shaped-reward``); the env's reward stays the measure.

Forward velocity. The locomotion rewards use ``(x_after - x_before) / dt`` over the
``frame_skip`` simulator steps of one env step, and the observation holds no x. The
observation does hold the x velocity ``qvel[0]`` at the start (``obs``) and the end
(``next_obs``) of the step, and the estimate is the displacement of a constant
acceleration between the two under the env's integrator: the trapezoid ``(v0 + v1) / 2``
under RK4 (Hopper, Walker2d, Ant) and ``(n - 1) / (2n) v0 + (n + 1) / (2n) v1`` under
MuJoCo's semi-implicit Euler (HalfCheetah, n = 5 substeps: ``0.4 v0 + 0.6 v1``), whose
position steps with the new velocity. Contacts break the constant acceleration, so
these are approximations; the error of the reward is exactly that of the velocity
(every other term is exact), measured in BENCHMARKS.md ("Known reward and termination
functions"): about 0.09 (HalfCheetah), 0.002 (Hopper), 0.008 (Walker2d) and 0.05 (Ant)
mean absolute error per step, several times smaller than with the end velocity alone.
Hopper and Walker2d observe velocities clipped to [-10, 10]; beyond that the estimate
is further off.

Exactness of the rest. Pendulum's and CartPole's observations are float32 roundings of
the float64 state, so their functions agree to float32 rounding (a CartPole state within
about 1e-7 of a threshold could be judged on the other side). Hopper's health check asks
every velocity to be inside (-100, 100), and the observation clips velocities at 10:
a speed of 100 is not visible (it did not occur in the recorded transitions). Ant's
contact cost is computable because the observation holds the clipped external contact
forces of every body but the world, whose force is zero; Ant's finiteness check sees
every state coordinate but x and y. Reacher's distance is the norm of the observed
fingertip-target vector: the two bodies move in one plane, so the unobserved z
difference is zero.

(1) CartPole gives 1 on every step including the one that terminates; gymnasium's 0
for steps after termination never arises, as a terminal row of the model absorbs.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass

import gymnasium as gym
import torch
from torch import Tensor

from mbrl.model import ShapeError, UnknownNameError

from .learned import RewardFn, TerminationFn

__all__ = ["KnownFunctions", "covered_envs", "known_functions", "shaped_envs"]


@dataclass(frozen=True)
class KnownFunctions:
    """An env's known reward and termination in the observation space."""

    env_id: str
    """The gymnasium id the functions follow (default constructor arguments)."""
    reward: RewardFn
    """``reward(obs [B, O], action, next_obs [B, O]) -> [B]``."""
    termination: TerminationFn
    """``termination(obs, action, next_obs) -> [B]`` bool (all False if the env never
    terminates)."""
    exact_reward: bool
    """True where the reward equals the env's to float rounding on every transition."""
    exact_termination: bool
    """True where the termination equals the env's ``terminated`` on every transition."""
    note: str
    """What is approximated or not observed, in a sentence."""
    planning_reward: RewardFn | None = None
    """A shaped reward for a planner to maximise in place of ``reward`` (a task cost in
    the manner of PETS's own), where the env's reward is flat over a planning horizon;
    None for most envs. Never the measure: episodes still score the env's reward."""


# ---------------------------------------------------------------------- helpers
def _check_width(obs: Tensor, next_obs: Tensor, width: int, env_id: str) -> None:
    for name, tensor in (("obs", obs), ("next_obs", next_obs)):
        if tensor.ndim != 2 or tensor.shape[1] != width:
            raise ShapeError(
                f"{env_id} known functions: {name} must be [B, {width}] (the env's default "
                f"observation), got {list(tensor.shape)}"
            )


def _ctrl_cost(action: Tensor, weight: float) -> Tensor:
    """``[B]`` gymnasium's ``weight * sum(action ** 2)``."""
    return weight * action.square().sum(1)


def _never(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    return torch.zeros(obs.shape[0], dtype=torch.bool, device=obs.device)


def _velocity(obs: Tensor, next_obs: Tensor, column: int, weight_before: float) -> Tensor:
    """``[B]`` the forward velocity over the step estimated from the x velocity at its
    start and end (see the module docstring)."""
    return weight_before * obs[:, column] + (1.0 - weight_before) * next_obs[:, column]


_TRAPEZOID = 0.5
"""RK4: the displacement of a constant acceleration is the mean of the end velocities."""
_EULER_5 = (5 - 1) / (2 * 5)
"""Semi-implicit Euler, 5 substeps: ``x += h v_k`` with the new velocity, k = 1..5."""


# ---------------------------------------------------------------------- classic control
def _pendulum_reward(obs, action, next_obs):
    _check_width(obs, next_obs, 3, "Pendulum-v1")
    theta = torch.atan2(obs[:, 1], obs[:, 0])  # in [-pi, pi]: gymnasium's angle_normalize
    torque = action[:, 0].clamp(-2.0, 2.0)
    return -(theta.square() + 0.1 * obs[:, 2].square() + 0.001 * torque.square())


def _cartpole_termination(obs, action, next_obs):
    _check_width(obs, next_obs, 4, "CartPole-v1")
    state = next_obs.double()  # gymnasium compares the float64 state
    x, theta = state[:, 0], state[:, 2]
    theta_limit = 12 * 2 * math.pi / 360
    return (x < -2.4) | (x > 2.4) | (theta < -theta_limit) | (theta > theta_limit)


def _cartpole_reward(obs, action, next_obs):
    _check_width(obs, next_obs, 4, "CartPole-v1")
    return torch.ones(obs.shape[0], dtype=obs.dtype, device=obs.device)


# ---------------------------------------------------------------------- MuJoCo
def _inverted_pendulum_termination(obs, action, next_obs):
    _check_width(obs, next_obs, 4, "InvertedPendulum-v5")
    return ~torch.isfinite(next_obs).all(1) | (next_obs[:, 1].abs() > 0.2)


def _inverted_pendulum_reward(obs, action, next_obs):
    return (~_inverted_pendulum_termination(obs, action, next_obs)).to(obs.dtype)


_POLE = 0.6
"""InvertedPendulum-v5's pole length (its XML: ``fromto="0 0 0 0.001 0 0.6"``)."""


def _inverted_pendulum_planning_reward(obs, action, next_obs):
    """``(1 + exp(-|tip - top|^2 / l^2)) / 2`` while the pole is up, else 0: the env's 1 a
    step, halved, plus half of PETS's cartpole cost (the pole tip's closeness to the
    point above the slider's centre, ``l`` the pole length). The env's reward is flat
    while the pole stays within 0.2 rad, so over a short horizon a planner lets the
    cart drift onto the end of its rail, where the pole can no longer be caught; the
    tip term pulls the cart to the centre and the pole upright. Every step alive still
    earns at least half of the best step, so staying up outweighs any shaping."""
    alive = _inverted_pendulum_reward(obs, action, next_obs)
    x, theta = next_obs[:, 0], next_obs[:, 1]
    dx = x + _POLE * torch.sin(theta)  # the hinge turns the pole about +y
    dz = _POLE * (torch.cos(theta) - 1.0)
    closeness = torch.exp(-(dx.square() + dz.square()) / _POLE**2)
    return alive * 0.5 * (1.0 + closeness)


def _cheetah_reward(obs, action, next_obs):
    _check_width(obs, next_obs, 17, "HalfCheetah-v5")
    return _velocity(obs, next_obs, 8, _EULER_5) - _ctrl_cost(action, 0.1)


def _hopper_healthy(next_obs: Tensor) -> Tensor:
    """obs = qpos[1:] (z, angle, 3 joints), clip(qvel, -10, 10) (6)."""
    z, angle = next_obs[:, 0], next_obs[:, 1]
    state_ok = ((-100.0 < next_obs[:, 1:]) & (next_obs[:, 1:] < 100.0)).all(1)
    return state_ok & (0.7 < z) & (z < math.inf) & (-0.2 < angle) & (angle < 0.2)


def _hopper_termination(obs, action, next_obs):
    _check_width(obs, next_obs, 11, "Hopper-v5")
    return ~_hopper_healthy(next_obs)


def _hopper_reward(obs, action, next_obs):
    _check_width(obs, next_obs, 11, "Hopper-v5")
    healthy = _hopper_healthy(next_obs).to(obs.dtype)
    return _velocity(obs, next_obs, 5, _TRAPEZOID) + healthy - _ctrl_cost(action, 1e-3)


def _walker_healthy(next_obs: Tensor) -> Tensor:
    """obs = qpos[1:] (z, angle, 6 joints), clip(qvel, -10, 10) (9)."""
    z, angle = next_obs[:, 0], next_obs[:, 1]
    return (0.8 < z) & (z < 2.0) & (-1.0 < angle) & (angle < 1.0)


def _walker_termination(obs, action, next_obs):
    _check_width(obs, next_obs, 17, "Walker2d-v5")
    return ~_walker_healthy(next_obs)


def _walker_reward(obs, action, next_obs):
    _check_width(obs, next_obs, 17, "Walker2d-v5")
    healthy = _walker_healthy(next_obs).to(obs.dtype)
    return _velocity(obs, next_obs, 8, _TRAPEZOID) + healthy - _ctrl_cost(action, 1e-3)


_ANT_STATE = 27
"""Ant's obs: qpos[2:] (z, quaternion, 8 joints: 13), qvel (14), then the clipped
``cfrc_ext`` of bodies 1..13 (6 each: 78); 105 in all."""


def _ant_healthy(next_obs: Tensor) -> Tensor:
    finite = torch.isfinite(next_obs[:, :_ANT_STATE]).all(1)
    z = next_obs[:, 0]
    return finite & (0.2 <= z) & (z <= 1.0)


def _ant_termination(obs, action, next_obs):
    _check_width(obs, next_obs, 105, "Ant-v5")
    return ~_ant_healthy(next_obs)


def _ant_reward(obs, action, next_obs):
    _check_width(obs, next_obs, 105, "Ant-v5")
    healthy = _ant_healthy(next_obs).to(obs.dtype)
    contact_cost = 5e-4 * next_obs[:, _ANT_STATE:].square().sum(1)
    forward = _velocity(obs, next_obs, 13, _TRAPEZOID)
    return forward + healthy - _ctrl_cost(action, 0.5) - contact_cost


def _reacher_reward(obs, action, next_obs):
    """obs = cos q (2), sin q (2), target (2), qvel (2), (fingertip - target)[:2]."""
    _check_width(obs, next_obs, 10, "Reacher-v5")
    return -torch.linalg.vector_norm(next_obs[:, 8:10], dim=1) - _ctrl_cost(action, 1.0)


# ---------------------------------------------------------------------- registry
_VELOCITY_NOTE = (
    "the forward reward's x displacement is not observed: estimated from the observed x "
    "velocity at the start and end of the step ({}); the rest is exact"
)

_KNOWN: dict[str, KnownFunctions] = {
    known.env_id: known
    for known in [
        KnownFunctions(
            env_id="Pendulum-v1",
            reward=_pendulum_reward,
            termination=_never,
            exact_reward=True,
            exact_termination=True,
            note="the angle before the step is atan2 of the observed sine and cosine; "
            "the torque is clipped to [-2, 2] as the env does",
        ),
        KnownFunctions(
            env_id="InvertedPendulum-v5",
            reward=_inverted_pendulum_reward,
            termination=_inverted_pendulum_termination,
            exact_reward=True,
            exact_termination=True,
            note="reward 1 while the pole angle next_obs[1] is within 0.2",
            planning_reward=_inverted_pendulum_planning_reward,
        ),
        KnownFunctions(
            env_id="CartPole-v1",
            reward=_cartpole_reward,
            termination=_cartpole_termination,
            exact_reward=True,
            exact_termination=True,
            note="reward 1 per step; thresholds on the float32 observation, exact to its rounding",
        ),
        KnownFunctions(
            env_id="HalfCheetah-v5",
            reward=_cheetah_reward,
            termination=_never,
            exact_reward=False,
            exact_termination=True,
            note=_VELOCITY_NOTE.format("0.4 v0 + 0.6 v1, semi-implicit Euler"),
        ),
        KnownFunctions(
            env_id="Hopper-v5",
            reward=_hopper_reward,
            termination=_hopper_termination,
            exact_reward=False,
            exact_termination=True,
            note=_VELOCITY_NOTE.format("trapezoid, RK4")
            + "; the health check's speed limit of 100 is not visible in velocities "
            "clipped at 10",
        ),
        KnownFunctions(
            env_id="Walker2d-v5",
            reward=_walker_reward,
            termination=_walker_termination,
            exact_reward=False,
            exact_termination=True,
            note=_VELOCITY_NOTE.format("trapezoid, RK4"),
        ),
        KnownFunctions(
            env_id="Ant-v5",
            reward=_ant_reward,
            termination=_ant_termination,
            exact_reward=False,
            exact_termination=True,
            note=_VELOCITY_NOTE.format("trapezoid, RK4")
            + "; the contact cost comes from the observed contact forces",
        ),
        KnownFunctions(
            env_id="Reacher-v5",
            reward=_reacher_reward,
            termination=_never,
            exact_reward=True,
            exact_termination=True,
            note="distance from the observed fingertip-target vector (planar)",
        ),
    ]
}


def covered_envs() -> list[str]:
    """The gymnasium ids :func:`known_functions` covers."""
    return sorted(_KNOWN)


def shaped_envs() -> list[str]:
    """The gymnasium ids whose known functions have a shaped planning reward."""
    return sorted(env_id for env_id, known in _KNOWN.items() if known.planning_reward)


def known_functions(env_id: str) -> KnownFunctions | None:
    """The known functions of ``env_id``, or None where none are known (then the
    model learns its reward, the default).

    An id that gymnasium does not register but that is close to a covered one
    (``"halfcheetah-v5"``, ``"Hoper-v5"``) is taken for a typo and raises
    :class:`~mbrl.model.UnknownNameError` naming the covered id; any other id (another
    version, another env, a name of one's own) gives None.
    """
    known = _KNOWN.get(env_id)
    if known is not None or env_id in gym.registry:
        return known
    lowered = {name.lower(): name for name in _KNOWN}
    close = difflib.get_close_matches(env_id.lower(), list(lowered), n=1, cutoff=0.85)
    if close:
        suggestion = lowered[close[0]]
        raise UnknownNameError(
            f"unknown env id {env_id!r}: did you mean {suggestion!r}? (known reward and "
            f"termination functions: {', '.join(covered_envs())})",
            name=env_id,
            known=covered_envs(),
        )
    return None
