"""Probabilistic ensembles with trajectory sampling (PETS).

Chua, Calandra, McAllister, Levine (2018), "Deep Reinforcement Learning in a Handful
of Trials using Probabilistic Dynamics Models", NeurIPS. Defaults follow the paper and
mbrl-lib's PETS configs: 7 probabilistic members of 4x200 SiLU (5 elites), Gaussian
NLL with bounded log-variance, delta-state targets on normalised inputs; CEM with
population 350, 35 elites, 5 iterations, momentum 0.1, horizon 15, 20 particles
propagated TS-inf (each particle keeps one member for the whole horizon); the known
reward and termination of the env where they are known, else learned heads.

    1. collect initial_random_steps transitions with uniformly random actions into D
    2. for each environment step:
    3.   every model_train_every steps: fit the ensemble to D (bootstrap per member,
         held-out early stopping, elites by held-out score; warm start)
    4.   from the real observation s_t, CEM over action sequences a_{t:t+H}: each
         candidate scored by the mean return of P particles, each particle rolled out
         through one elite member (TS-inf), sampling the member's Gaussian every step
    5.   execute the first action of the plan (the elites' mean of the last iteration),
         add (s_t, a_t, r_t, s_{t+1}) to D; the next plan starts from this one shifted
    6.   at an episode's end: log its return, reset the env and the warm start

With ``--model exact`` the planner plans in the exact MuJoCo simulator from the real
env's state (one particle: it is deterministic), the ground-truth ceiling of step 4;
no ensemble is fitted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console

from mbrl.training.config import DeviceFields, EnvFields, RunFields, at_least, fail
from mbrl.training.modelbased import (
    MPC,
    DynamicsFields,
    PlannerFields,
    checked_obs,
    make_planner,
    mpc_agent,
    mpc_returns,
    mpc_step,
    setup_model_based,
    validate_model_based_config,
)
from mbrl.training.run import Run, RunSpec, crossed, status_line

__all__ = ["PETS", "PETSConfig"]


@dataclass(frozen=True, kw_only=True)
class PETSConfig(PlannerFields, DynamicsFields, DeviceFields, RunFields, EnvFields):
    """PETS (defaults: Chua et al. 2018 and mbrl-lib's PETS cartpole)."""

    env: str = "Pendulum-v1"
    """Gymnasium id of an environment with a Box action space (Pendulum-v1,
    InvertedPendulum-v5, HalfCheetah-v5)."""
    total_steps: int = 10_000
    """Environment steps to train for; PETS learns in thousands (1e3-1e5)."""
    eval_every: int = 2_000
    """Environment steps between evaluations (when eval_episodes > 0)."""
    eval_episodes: int = 0
    """Separate MPC episodes per evaluation (each costs a plan per step); 0: the training
    episodes, already MPC with the current model, are the measure."""
    checkpoint_every: int = 1_000
    """Environment steps between checkpoints (also every few minutes and at the end)."""
    log_every: int = 200
    """Environment steps between rows of speed in progress.csv."""
    model_batch_size: int = 32
    """Transitions per member per gradient step; 32 in PETS and mbrl-lib's PETS (small
    data: more steps per epoch)."""
    initial_random_steps: int = 200
    """Steps of uniformly random actions before the first fit (mbrl-lib: one trial)."""

    def __post_init__(self):
        validate_model_based_config(self)
        at_least(self, 1, "initial_random_steps")
        if self.initial_random_steps >= self.total_steps:
            fail(self, "initial_random_steps",
                 f"be < total_steps ({self.total_steps}): the model would never plan")  # fmt: skip


@mpc_agent
class PETS:
    """PETS on one gymnasium environment (the surface of :class:`mbrl.Agent`)."""

    algo = "pets"
    Config = PETSConfig
    FORMAT = "mbrl.pets/1"
    step_cost = 20_000.0

    def __init__(
        self,
        env: str,
        config: PETSConfig | None = None,
        *,
        run_dir: str | Path | None = None,
        console: Console | None = None,
    ):
        setup_model_based(self, env, config, run_dir=run_dir, console=console)  # 1.
        self._predict_mpc: MPC | None = None
        self._predict_batch = 0

    # ------------------------------------------------------------------ acting
    def predict(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """MPC actions ``[B, D]`` for observations ``[B, O]`` (a plan each; successive calls
        warm-start from the last plan: call :meth:`reset` when episodes start again).
        ``deterministic`` is accepted for the common surface: the plan is the action."""
        obs = checked_obs(self, obs)
        if self._predict_mpc is None or self._predict_batch != obs.shape[0]:
            planner = make_planner(self.config, self.mpc.exact)
            self._predict_mpc = MPC(self.mpc.world, planner, self.generator)
            self._predict_batch = obs.shape[0]
        return self._predict_mpc.act(obs)

    def reset(self) -> None:
        """Forget the warm start of :meth:`predict` (new episodes)."""
        if self._predict_mpc is not None:
            self._predict_mpc.reset()

    def evaluate(self) -> dict[str, float]:
        """Returns of ``eval_episodes`` fresh, seeded MPC episodes (their own warm start)."""
        episodes = self.config.eval_episodes
        return mpc_returns(self, episodes, self.config.seed + 10_000) if episodes else {}

    # ---------------------------------------------------------------- training
    def learn(self, total_steps: int | None = None) -> dict[str, float]:
        """Train until ``total_steps`` environment steps (counting steps already done)."""
        config, counters = self.config, self.counters
        total = config.total_steps if total_steps is None else total_steps
        start = counters["steps"]
        spec = RunSpec(self.algo, config.env, config, self.run_dir, total, start, start)
        metrics: dict[str, float] = {}
        with Run(spec, self.checkpoint, self.console) as run:
            while run.going(counters["steps"]):
                row = mpc_step(self)  # 1.-6.
                step = counters["steps"]
                if step % config.log_every == 0 or step == total:
                    row["charts/SPS"] = run.speed(step)
                if config.eval_episodes and (
                    crossed(step - 1, step, config.eval_every) or step == total
                ):
                    row |= self.evaluate()
                if row:
                    metrics.update(run.log(step, row))
                run.checkpoint_if_due(crossed(step - 1, step, config.checkpoint_every))
                run.show(step, status_line(metrics))
        return metrics
