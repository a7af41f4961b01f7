"""An exact MuJoCo model: gymnasium's MuJoCo tasks as a batched :class:`~mbrl.model.Model`.

The world is the simulator itself: the env's own ``MjModel`` (from
``gymnasium.make(env_id).unwrapped.model``) and its ``frame_skip``, stepped for a whole
batch at once by ``mujoco.rollout`` (a persistent ``rollout.Rollout`` thread pool, one
``MjData`` per thread; no Python loop over rows). Observation, reward and termination
are gymnasium v5's, computed from the batched states as ``gymnasium/envs/mujoco/*_v5.py``
does with the default arguments. It is the planners' ground-truth upper bound (MBBL's
"GT-CEM").

A state row is float64 ``[B, S + 1]``, S = ``mj_stateSize(model, mjSTATE_FULLPHYSICS)``:

=====================  ==================================================================
columns                meaning
=====================  ==================================================================
``[0, S)``             ``mj_getState(model, data, mjSTATE_FULLPHYSICS)``: time, then
                       ``qpos [nq]`` (from column 1), ``qvel [nv]`` (from ``1 + nq``),
                       ``act [na]`` and the rest of the physics state
``S``                  1.0 where the row is terminal (an unhealthy Hopper), else 0.0
=====================  ==================================================================

Starts: :meth:`MujocoModel.initial_state` samples gymnasium's reset distribution (the
same noise law and scale, drawn from a ``np.random.Generator``), and :func:`state_of`
reads the states of real envs, so a planner can start where a real env is now.

Rewards: the task's, or those of ``MujocoModel(config, reward_fn=...)``, a function of
the observations before and after a step and of the clipped action (a planner's shaped
objective, ``mbrl.models.KnownFunctions.planning_reward``).

A terminal row absorbs: stepping it returns it unchanged with reward 0 and
``terminal=True``, and its legal mask is False. Actions are float ``[B, D]`` and act as
the nearest action in the box ``[action_low, action_high]`` (the env's ``action_space``,
also in the spec): they are clipped first, so the control cost of an action outside
the box is that of the clipped action (gymnasium charges the unclipped one; inside the
box the two agree).

Exactness. A step is the env's ``do_simulation`` (control held for ``frame_skip``
``mj_step`` calls) from the row's full physics state. One thing the state does not
carry is the constraint solver's warm start (``qacc_warmstart``): ``mujoco.rollout``
starts each model step from a zero warm start, where a gymnasium env reuses the last
accelerations. The RK4 tasks (InvertedPendulum, Hopper, Walker2d, Swimmer) then agree
with gymnasium to rounding (states within about 1e-11 over 200 steps); in HalfCheetah
(Euler integrator, many contacts) one step from a real env's state agrees to about
1e-13, and open-loop trajectories drift apart as the chaotic dynamics amplify the
solver's differences (about 3e-6 after 50 steps, order 1 after 200). A step needs
nothing else of a ``MjData``: the tasks covered read only ``qpos`` and ``qvel``
(Ant's contact forces and Reacher's body positions, which gymnasium reads from the
last substep's ``MjData``, are not in the state, so those tasks are not covered).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import gymnasium as gym
import mujoco
import numpy as np
import torch
from mujoco import rollout
from torch import Tensor

from mbrl.model import ModelSpec, ShapeError, Step, UnknownNameError

__all__ = ["MujocoConfig", "MujocoModel", "available", "state_of"]

_FULL = mujoco.mjtState.mjSTATE_FULLPHYSICS.value
Array = np.ndarray


@dataclass(frozen=True)
class _Physics:
    """Batched views a task reads: every array has leading dimension B."""

    qpos_before: Array
    """[B, nq] positions before the step."""
    qpos: Array
    """[B, nq] positions after the step (or of the state, for ``observe``)."""
    qvel: Array
    """[B, nv] velocities after the step."""
    action: Array
    """[B, D] float32 clipped actions (zeros for ``observe``)."""
    dt: float
    """Seconds of one env step: ``opt.timestep * frame_skip``."""


@dataclass(frozen=True)
class _Task:
    """One gymnasium v5 task: its observation, reward, termination and reset noise."""

    observe: Callable[[Array, Array], Array]
    """``(qpos [B, nq], qvel [B, nv]) -> obs [B, O]``."""
    reward: Callable[[_Physics], Array]
    """``[B]`` float64 the env's reward."""
    terminated: Callable[[Array, Array], Array]
    """``(qpos, qvel) -> [B]`` bool, the env's ``terminated`` after the step."""
    reset: Callable[[np.random.Generator, Array, Array, int], tuple[Array, Array]]
    """``(rng, init_qpos, init_qvel, B) -> (qpos [B, nq], qvel [B, nv])``, the reset law."""
    hidden: int = 0
    """Leading ``qpos`` coordinates the observation leaves out (the observation is the
    rest of ``qpos`` then ``qvel``); translation invariant: no step depends on them."""


def _ctrl_cost(action: Array, weight: float) -> Array:
    """gymnasium's ``weight * np.sum(np.square(action))`` in float32, as NumPy 2 does it."""
    return np.float32(weight) * np.square(action, dtype=np.float32).sum(1, dtype=np.float32)


def _forward_velocity(p: _Physics) -> Array:
    return (p.qpos[:, 0] - p.qpos_before[:, 0]) / p.dt


def _uniform_reset(scale: float) -> Callable:
    def reset(rng, init_qpos, init_qvel, b):
        qpos = init_qpos + rng.uniform(-scale, scale, (b, init_qpos.size))
        qvel = init_qvel + rng.uniform(-scale, scale, (b, init_qvel.size))
        return qpos, qvel

    return reset


def _cheetah_reset(rng, init_qpos, init_qvel, b):
    qpos = init_qpos + rng.uniform(-0.1, 0.1, (b, init_qpos.size))
    qvel = init_qvel + 0.1 * rng.standard_normal((b, init_qvel.size))
    return qpos, qvel


def _never(qpos: Array, qvel: Array) -> Array:
    return np.zeros(qpos.shape[0], dtype=bool)


def _pendulum_obs(qpos, qvel):
    return np.concatenate([qpos, qvel], axis=1)


def _pendulum_terminated(qpos, qvel):
    obs = _pendulum_obs(qpos, qvel)
    return ~np.isfinite(obs).all(1) | (np.abs(obs[:, 1]) > 0.2)


def _cheetah_obs(qpos, qvel):
    return np.concatenate([qpos[:, 1:], qvel], axis=1)


def _clipped_obs(qpos, qvel):
    return np.concatenate([qpos[:, 1:], np.clip(qvel, -10, 10)], axis=1)


def _hopper_healthy(qpos, qvel):
    z, angle = qpos[:, 1], qpos[:, 2]
    rest = np.concatenate([qpos, qvel], axis=1)[:, 2:]
    state_ok = ((-100.0 < rest) & (rest < 100.0)).all(1)
    return state_ok & (0.7 < z) & (z < np.inf) & (-0.2 < angle) & (angle < 0.2)


def _walker_healthy(qpos, qvel):
    z, angle = qpos[:, 1], qpos[:, 2]
    return (0.8 < z) & (z < 2.0) & (-1.0 < angle) & (angle < 1.0)


def _walking_reward(healthy: Callable[[Array, Array], Array]) -> Callable[[_Physics], Array]:
    def reward(p: _Physics) -> Array:
        survive = healthy(p.qpos, p.qvel).astype(np.float64)
        return _forward_velocity(p) + survive - _ctrl_cost(p.action, 1e-3)

    return reward


_TASKS: dict[str, _Task] = {
    "InvertedPendulum-v5": _Task(
        observe=_pendulum_obs,
        reward=lambda p: (~_pendulum_terminated(p.qpos, p.qvel)).astype(np.float64),
        terminated=_pendulum_terminated,
        reset=_uniform_reset(0.01),
    ),
    "HalfCheetah-v5": _Task(
        observe=_cheetah_obs,
        reward=lambda p: _forward_velocity(p) - _ctrl_cost(p.action, 0.1),
        terminated=_never,
        reset=_cheetah_reset,
        hidden=1,
    ),
    "Hopper-v5": _Task(
        observe=_clipped_obs,
        reward=_walking_reward(_hopper_healthy),
        terminated=lambda qpos, qvel: ~_hopper_healthy(qpos, qvel),
        reset=_uniform_reset(5e-3),
        hidden=1,
    ),
    "Walker2d-v5": _Task(
        observe=_clipped_obs,
        reward=_walking_reward(_walker_healthy),
        terminated=lambda qpos, qvel: ~_walker_healthy(qpos, qvel),
        reset=_uniform_reset(5e-3),
        hidden=1,
    ),
    "Swimmer-v5": _Task(
        observe=lambda qpos, qvel: np.concatenate([qpos[:, 2:], qvel], axis=1),
        reward=lambda p: _forward_velocity(p) - _ctrl_cost(p.action, 1e-4),
        terminated=_never,
        reset=_uniform_reset(0.1),
        hidden=2,
    ),
}


def available() -> list[str]:
    """The gymnasium ids :class:`MujocoModel` covers."""
    return sorted(_TASKS)


@dataclass(frozen=True, kw_only=True)
class MujocoConfig:
    """Which task and how many threads step it."""

    env_id: str = "HalfCheetah-v5"
    """A gymnasium MuJoCo id among :func:`available` (v5 tasks, default arguments)."""
    num_threads: int = 1
    """Threads of the rollout pool; 1 steps on the calling thread, more split the rows."""

    def __post_init__(self):
        if self.env_id not in _TASKS:
            raise UnknownNameError(
                f"MujocoConfig.env_id: unknown MuJoCo task {self.env_id!r}; "
                f"available: {', '.join(available())}",
                name=self.env_id,
                known=available(),
            )
        if not isinstance(self.num_threads, int) or self.num_threads < 1:
            raise ValueError(
                f"MujocoConfig.num_threads must be an int >= 1, got {self.num_threads}"
            )


class MujocoModel:
    """A gymnasium MuJoCo task as a one-player :class:`~mbrl.model.Model` (see the module)."""

    def __init__(
        self,
        config: MujocoConfig | None = None,
        *,
        reward_fn: Callable[[Tensor, Tensor, Tensor], Tensor] | None = None,
    ):
        """``reward_fn(obs [B, O], action [B, D], next_obs [B, O]) -> [B]``, when given,
        replaces the task's reward (a planner's shaped objective, as
        :attr:`~mbrl.models.KnownFunctions.planning_reward`); the action it sees is the
        clipped one, and terminal rows still absorb with reward 0."""
        self.config = config = config or MujocoConfig()
        self._task = _TASKS[config.env_id]
        self.reward_fn = reward_fn
        env = gym.make(config.env_id)
        unwrapped = env.unwrapped
        self.mj_model: mujoco.MjModel = unwrapped.model
        self.frame_skip: int = int(unwrapped.frame_skip)
        self.dt: float = float(unwrapped.dt)
        self.init_qpos: Array = unwrapped.init_qpos.copy()
        self.init_qvel: Array = unwrapped.init_qvel.copy()
        box = env.action_space
        self._low, self._high = box.low.astype(np.float32), box.high.astype(np.float32)
        obs_dim = int(env.observation_space.shape[0])
        env.close()
        m = self.mj_model
        self.nq, self.nv, self.nu = m.nq, m.nv, m.nu
        self.physics_size = mujoco.mj_stateSize(m, _FULL)
        data = mujoco.MjData(m)
        self._reset_state = np.empty(self.physics_size)
        mujoco.mj_getState(m, data, self._reset_state, _FULL)
        self._datas = [mujoco.MjData(m) for _ in range(config.num_threads)]
        self._pool = rollout.Rollout(nthread=0 if config.num_threads == 1 else config.num_threads)
        self.spec = ModelSpec(
            name=f"mujoco:{config.env_id}",
            obs_shape=(obs_dim,),
            state_shape=(self.physics_size + 1,),
            state_dtype=torch.float64,
            num_actions=None,
            action_shape=(self.nu,),
            max_episode_length=gym.spec(config.env_id).max_episode_steps,
            action_low=tuple(map(float, self._low)),
            action_high=tuple(map(float, self._high)),
        )

    def close(self) -> None:
        """Stop the rollout thread pool (the model cannot step afterwards)."""
        self._pool.close()

    # ------------------------------------------------------------------ states
    def initial_state(
        self, batch_size: int, generator: np.random.Generator | None = None
    ) -> Tensor:
        """``[B, S + 1]`` float64 states drawn from gymnasium's reset distribution."""
        if batch_size < 1:
            raise ValueError(f"initial_state: batch_size must be >= 1, got {batch_size}")
        rng = generator if generator is not None else np.random.default_rng()
        qpos, qvel = self._task.reset(rng, self.init_qpos, self.init_qvel, batch_size)
        physics = np.repeat(self._reset_state[None], batch_size, axis=0)
        physics[:, 1 : 1 + self.nq] = qpos
        physics[:, 1 + self.nq : 1 + self.nq + self.nv] = qvel
        return self._with_terminal(physics)

    def _with_terminal(self, physics: Array) -> Tensor:
        qpos, qvel = self._split(physics)
        done = self._task.terminated(qpos, qvel)
        return torch.from_numpy(np.concatenate([physics, done[:, None].astype(np.float64)], 1))

    def _split(self, physics: Array) -> tuple[Array, Array]:
        nq, nv = self.nq, self.nv
        return physics[:, 1 : 1 + nq], physics[:, 1 + nq : 1 + nq + nv]

    def observe(self, state: Tensor) -> Tensor:
        """``[B, O]`` float32 the env's observation of each row."""
        self._check_state(state, "observe")
        qpos, qvel = self._split(state.numpy())
        return torch.from_numpy(self._task.observe(qpos, qvel).astype(np.float32))

    def state_from_observation(self, obs: Tensor) -> Tensor:
        """``[B, S + 1]`` float64 states whose observation is ``obs [B, O]``.

        The positions the observation leaves out (the x of HalfCheetah, Hopper and
        Walker2d, Swimmer's x and y) are set to 0, which changes no step, reward or
        termination (the tasks are translation invariant in them); the rest of the
        physics state is the reset state's. Exact for InvertedPendulum, HalfCheetah and
        Swimmer up to the float32 rounding of the observation; Hopper and Walker2d
        observe velocities clipped to [-10, 10], beyond which the state differs."""
        obs = torch.as_tensor(obs).detach().cpu().numpy().astype(np.float64)
        if obs.ndim != 2 or obs.shape[1] != self.spec.obs_shape[0]:
            raise ShapeError(
                f"state_from_observation: obs must be [B, {self.spec.obs_shape[0]}], got "
                f"{list(obs.shape)}"
            )
        hidden, seen = self._task.hidden, self.nq - self._task.hidden
        physics = np.repeat(self._reset_state[None], obs.shape[0], axis=0)
        physics[:, 1 + hidden : 1 + self.nq] = obs[:, :seen]
        physics[:, 1 + self.nq : 1 + self.nq + self.nv] = obs[:, seen : seen + self.nv]
        return self._with_terminal(physics)

    def legal_actions(self, state: Tensor) -> Tensor:
        """``[B, 1]`` bool: True unless terminal."""
        self._check_state(state, "legal_actions")
        return ~self._terminal(state)[:, None]

    def to_play(self, state: Tensor) -> Tensor:
        self._check_state(state, "to_play")
        return torch.zeros(state.shape[0], dtype=torch.int64)

    def is_terminal(self, state: Tensor) -> Tensor:
        """``[B]`` bool."""
        self._check_state(state, "is_terminal")
        return self._terminal(state)

    @staticmethod
    def _terminal(state: Tensor) -> Tensor:
        return state[:, -1] > 0.5

    # ------------------------------------------------------------------ step
    def step(self, state: Tensor, action: Tensor, generator: torch.Generator | None = None) -> Step:
        """Advance every row by one env step: ``state [B, S + 1]`` float64, ``action [B, D]``
        float. Deterministic (``generator`` is unused); terminal rows absorb."""
        self._check_state(state, "step")
        b = state.shape[0]
        if action.shape != (b, self.nu) or not action.is_floating_point():
            raise ShapeError(
                f"step: actions must be float [{b}, {self.nu}], got {action.dtype} "
                f"{list(action.shape)}"
            )
        states = state.numpy()
        action = np.clip(action.detach().cpu().numpy().astype(np.float32), self._low, self._high)
        next_states = states.copy()
        reward = np.zeros(b, dtype=np.float32)
        live = ~(states[:, -1] > 0.5)
        if live.any():
            start = np.ascontiguousarray(states[live, : self.physics_size])
            physics = self._simulate(start, action[live])
            qpos, qvel = self._split(physics)
            done = self._task.terminated(qpos, qvel)
            before = start[:, 1 : 1 + self.nq]
            p = _Physics(qpos_before=before, qpos=qpos, qvel=qvel, action=action[live], dt=self.dt)
            reward[live] = self._task.reward(p)
            next_states[live, : self.physics_size] = physics
            next_states[live, -1] = done
        next_state = torch.from_numpy(next_states)
        if self.reward_fn is not None:
            reward = self._reward_of(state, action, next_state, live)
        return Step(next_state, torch.from_numpy(reward), self._terminal(next_state))

    def _reward_of(self, state: Tensor, action: Array, next_state: Tensor, live: Array) -> Array:
        """``[B]`` float32 ``reward_fn`` of the live rows' observations, 0 on the others."""
        obs, next_obs = self.observe(state), self.observe(next_state)
        out = self.reward_fn(obs, torch.from_numpy(action), next_obs)
        if out.shape != (state.shape[0],):
            raise ShapeError(f"reward_fn must return [{state.shape[0]}], got {list(out.shape)}")
        return np.where(live, out.detach().cpu().numpy(), 0.0).astype(np.float32)

    def _simulate(self, start: Array, action: Array) -> Array:
        """``[B, S]`` physics after ``frame_skip`` substeps of ``action [B, D]`` from ``start``."""
        control = np.repeat(action.astype(np.float64)[:, None], self.frame_skip, axis=1)
        out, _ = self._pool.rollout(self.mj_model, self._datas, start, control)
        return out[:, -1]

    # ------------------------------------------------------------------ checks
    def _check_state(self, state: Tensor, where: str) -> None:
        width = self.spec.state_shape[0]
        if state.ndim != 2 or state.shape[1] != width or state.dtype != torch.float64:
            raise ShapeError(
                f"{where}: state must be float64 [B, {width}], got {state.dtype} "
                f"{list(state.shape)}"
            )


def state_of(model: MujocoModel, envs: gym.Env | Sequence[gym.Env]) -> Tensor:
    """``[B, S + 1]`` float64 the current states of real gymnasium envs of the model's task
    (one env or a sequence of B), with their terminal flags."""
    envs = [envs] if isinstance(envs, gym.Env) else list(envs)
    physics = np.empty((len(envs), model.physics_size))
    for row, env in enumerate(envs):  # reading B envs, not a hot path
        unwrapped = env.unwrapped
        if unwrapped.spec is None or unwrapped.spec.id != model.config.env_id:
            name = None if unwrapped.spec is None else unwrapped.spec.id
            raise ValueError(f"state_of: env {name!r} is not the model's {model.config.env_id}")
        mujoco.mj_getState(unwrapped.model, unwrapped.data, physics[row], _FULL)
    return model._with_terminal(physics)
