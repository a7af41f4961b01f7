"""Model-based control with model-free fine-tuning (MB-MF).

Nagabandi, Kahn, Fearing, Levine (2018), "Neural Network Dynamics for Model-Based
Deep Reinforcement Learning with Model-Free Fine-Tuning", ICRA (arXiv:1708.02596).
A deterministic dynamics network (delta-state targets on normalised inputs) drives
random-shooting MPC with on-policy data aggregation; the MPC controller is imitated
into a Gaussian MLP policy by DAgger; the policy initialises a model-free learner (the
project's PPO or TRPO), which fine-tunes it on the real env. Defaults follow the paper
where it gives them (1 network of 2x500, horizon 10 for the cheetah, K = 1000
candidates, DAgger over a few iterations) and otherwise the project's PPO.

    stage 1, model-based (mpc_steps environment steps):
    1.   collect initial_random_steps transitions with uniformly random actions into D
    2.   every model_train_every steps: fit the dynamics network to D
    3.   each step: random shooting, K sequences of horizon H through the network,
         execute the first action of the best; add the transition to D
    stage 2, imitation (DAgger, dagger_iterations x dagger_steps environment steps):
    4.   D_pi = the (observation, MPC action) pairs of stage 1's MPC steps; fit the
         policy mean to them (squared error, observations normalised by D_pi's moments)
    5.   for each iteration: run the policy (sampling its Gaussian) for dagger_steps,
         label every visited observation with the MPC action from it, add the pairs to
         D_pi (and the transitions to D), refit the policy
    stage 3, model-free (the rest of total_steps):
    6.   PPO or TRPO from the imitation policy (its mean net, its observation
         normaliser, log-std finetune_log_std; a fresh value net), on the real env
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
import tyro
from rich.console import Console

from mbrl.training.config import DeviceFields, EnvFields, RunFields, at_least, fail, positive
from mbrl.training.modelbased import (
    MPC,
    DynamicsFields,
    PlannerFields,
    PlannerKind,
    WorldKind,
    checked_obs,
    make_planner,
    model_based_parts,
    mpc_agent,
    mpc_returns,
    mpc_step,
    setup_model_based,
    validate_model_based_config,
)
from mbrl.training.nets import make_adam
from mbrl.training.replay import Ring
from mbrl.training.run import Run, RunSpec, crossed, status_line

__all__ = ["MBMF", "FineTuner", "MBMFConfig"]


class FineTuner(enum.Enum):
    """The model-free learner of stage 3."""

    PPO = "ppo"
    TRPO = "trpo"
    """As in the paper."""


@dataclass(frozen=True, kw_only=True)
class MBMFConfig(PlannerFields, DynamicsFields, DeviceFields, RunFields, EnvFields):
    """MB-MF (defaults: Nagabandi et al. 2018 for HalfCheetah, the project's PPO)."""

    env: str = "HalfCheetah-v5"
    """Gymnasium id of an environment with a Box action space."""
    total_steps: int = 1_000_000
    """Environment steps of all three stages together."""
    eval_every: int = 10_000
    """Environment steps between evaluations of the policy (stages 2 and 3)."""
    eval_episodes: int = 5
    """Episodes of the deterministic policy per evaluation (stage 1's MPC episodes are
    the training episodes)."""
    checkpoint_every: int = 2_000
    """Environment steps between checkpoints (also every few minutes and at the end)."""
    log_every: int = 1_000
    """Environment steps between rows of speed in progress.csv."""
    ensemble_size: int = 1
    """One dynamics network, as in the paper (more: an ensemble, mean propagation)."""
    model_elites: int = 1
    """Members predictions use."""
    probabilistic: bool = False
    """A deterministic network trained by squared error, as in the paper."""
    model_hidden_sizes: tuple[int, ...] = (500, 500)
    """Hidden widths of the dynamics network; 2x500 in the paper."""
    model_batch_size: int = 512
    """Transitions per gradient step; 512 in the paper."""
    model_train_every: int = 1_000
    """Environment steps between refits during stage 1 (an aggregation iteration)."""
    planner: Annotated[PlannerKind, tyro.conf.EnumChoicesFromValues] = PlannerKind.RANDOM
    """Random shooting, as in the paper (cem, icem and mppi also work)."""
    horizon: int = 10
    """H; 10 for the cheetah in the paper."""
    population_size: int = 1_000
    """K, candidate sequences; 1000 in the paper."""
    num_particles: int = 1
    """One rollout per candidate: the network is deterministic."""
    initial_random_steps: int = 1_000
    """Steps of uniformly random actions before the first fit."""
    mpc_steps: int = 10_000
    """Environment steps of stage 1 (the random steps included)."""
    dagger_iterations: int = 3
    """DAgger iterations of stage 2; 0 fits the policy to stage 1's MPC steps only."""
    dagger_steps: int = 1_000
    """Environment steps of the policy per DAgger iteration (each visited observation is
    labelled by a plan)."""
    policy_hidden_sizes: tuple[int, ...] = (64, 64)
    """Hidden widths of the policy and value MLPs (tanh), as the fine-tuner's."""
    imitation_epochs: int = 50
    """Passes over D_pi per policy fit; 20-200."""
    imitation_lr: float = 1e-3
    """Adam learning rate of the policy fits."""
    imitation_batch_size: int = 256
    """Pairs per gradient step of the policy fits."""
    finetune: Annotated[FineTuner, tyro.conf.EnumChoicesFromValues] = FineTuner.PPO
    """The model-free learner of stage 3: ppo or trpo (the paper's)."""
    finetune_rollout_steps: int = 2048
    """T, steps per rollout of the fine-tuner (its batch); 2048 as the project's PPO."""
    finetune_log_std: float = -1.0
    """Log-std of the fine-tuner's Gaussian at the start of stage 3 (its log_std_init; the
    imitation fits only the mean, and a wide std would undo it)."""

    def __post_init__(self):
        validate_model_based_config(self)
        at_least(self, 1, "initial_random_steps", "dagger_steps", "imitation_epochs",
                 "imitation_batch_size", "finetune_rollout_steps")  # fmt: skip
        at_least(self, 0, "dagger_iterations")
        positive(self, "imitation_lr")
        if not self.initial_random_steps < self.mpc_steps:
            fail(self, "mpc_steps", f"be > initial_random_steps ({self.initial_random_steps})")
        if self.model is not WorldKind.LEARNED:
            fail(self, "model", "be 'learned': MB-MF's policy imitates planning in its model")
        if self.finetune_start > self.total_steps:
            fail(self, "total_steps", f"be >= mpc_steps + dagger_iterations x dagger_steps "
                 f"({self.finetune_start})")  # fmt: skip
        if not self.policy_hidden_sizes or min(self.policy_hidden_sizes) < 1:
            fail(self, "policy_hidden_sizes", "be positive sizes")

    @property
    def finetune_start(self) -> int:
        """The environment step at which stage 3 begins."""
        return self.mpc_steps + self.dagger_iterations * self.dagger_steps


def _finetuner(config: MBMFConfig, run_dir: Path, console: Console) -> Any:
    """The stage-3 agent (PPO or TRPO), its policy the one the imitation fits."""
    if config.finetune is FineTuner.TRPO:
        from mbrl.algorithms.trpo import TRPO as cls
    else:
        from mbrl.algorithms.ppo import PPO as cls
    settings = dict(
        env=config.env, total_steps=config.total_steps, seed=config.seed,
        hidden_sizes=tuple(config.policy_hidden_sizes), normalize_obs=True,
        normalize_reward=True, eval_every=config.eval_every,
        eval_episodes=config.eval_episodes, checkpoint_every=config.checkpoint_every,
        log_every=config.log_every, run_dir=config.run_dir,
        num_steps=config.finetune_rollout_steps, log_std_init=config.finetune_log_std,
    )  # fmt: skip
    return cls(config.env, cls.Config(**settings), run_dir=run_dir, console=console)


@mpc_agent
class MBMF:
    """MB-MF on one gymnasium environment (the surface of :class:`mbrl.Agent`)."""

    algo = "mbmf"
    Config = MBMFConfig
    FORMAT = "mbrl.mbmf/1"
    step_cost = 500.0

    def __init__(
        self,
        env: str,
        config: MBMFConfig | None = None,
        *,
        run_dir: str | Path | None = None,
        console: Console | None = None,
    ):
        setup_model_based(self, env, config, run_dir=run_dir, console=console)
        config = self.config
        self.counters |= {"stage": 1, "dagger_iterations": 0, "finetuning": 0}
        self.finetuner = _finetuner(config, self.run_dir, self.console)
        self.policy = self.finetuner.policy
        self.obs_rms = self.finetuner.loop.obs_rms
        self.policy_optimizer = make_adam(self.policy.actor.parameters(), config.imitation_lr)
        obs_dim, action_dim = self.obs_shape[0], len(self.action_low)
        fields = {"obs": ((obs_dim,), np.float32), "action": ((action_dim,), np.float32)}
        self.imitation_data = Ring(config.buffer_size, fields)

    # ------------------------------------------------------------------ acting
    def predict(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Actions ``[B, D]``: the MPC controller's in stage 1, the policy's after."""
        obs = checked_obs(self, obs)
        if self.counters["stage"] == 1:
            return self.label(obs)
        return self.finetuner.predict(obs, deterministic)

    def label(self, obs: np.ndarray, chunk: int = 64) -> np.ndarray:
        """``[B, D]`` the MPC actions from observations ``[B, O]`` (each a fresh plan, no
        warm start), planned ``chunk`` at a time."""
        out = []
        for start in range(0, len(obs), chunk):
            part = obs[start : start + chunk]
            mpc = MPC(self.mpc.world, make_planner(self.config), self.generator)
            out.append(mpc.act(part))
        return np.concatenate(out)

    def evaluate(self) -> dict[str, float]:
        """Returns of the policy's deterministic episodes (stage 1: of MPC episodes)."""
        episodes = self.config.eval_episodes
        if not episodes:
            return {}
        if self.counters["stage"] > 1:
            return self.finetuner.evaluate()
        return mpc_returns(self, episodes, self.config.seed + 10**6)

    # ---------------------------------------------------------------- training
    def learn(self, total_steps: int | None = None) -> dict[str, float]:
        """Train until ``total_steps`` environment steps, through the three stages."""
        config, counters = self.config, self.counters
        total = config.total_steps if total_steps is None else total_steps
        metrics: dict[str, float] = {}
        if counters["stage"] < 3 and counters["steps"] < total:
            start = counters["steps"]
            until = min(total, config.finetune_start)
            spec = RunSpec(self.algo, config.env, config, self.run_dir, until, start, start)
            with Run(spec, self.checkpoint, self.console) as run:
                while run.going(counters["steps"], until):
                    before = counters["steps"]
                    row = self._stage_one_step() if counters["stage"] == 1 else self._dagger()
                    step = counters["steps"]
                    if crossed(before, step, config.log_every) or step == until:
                        row["charts/SPS"] = run.speed(step)
                    if counters["stage"] > 1 and crossed(before, step, config.eval_every):
                        row |= self.evaluate()
                    if row:
                        row["charts/stage"] = counters["stage"]
                        metrics.update(run.log(step, row))
                    run.checkpoint_if_due(crossed(before, step, config.checkpoint_every))
                    run.show(step, status_line(metrics))
        if counters["steps"] >= config.finetune_start and counters["steps"] < total:
            metrics = self._finetune(total)
        return metrics

    def _stage_one_step(self) -> dict[str, float]:
        """Steps 1-3, and step 4 once stage 1 ends."""
        config, counters = self.config, self.counters
        planned, obs = counters["steps"] >= config.initial_random_steps, self.collector.obs
        row = mpc_step(self)
        if planned:  # an MPC step: its (observation, action) pair goes to D_pi
            action = self.replay.arrays()[self.replay.names.index("action")]
            self.imitation_data.add(obs[None], action[(self.replay.pos - 1) % len(action)][None])
        if counters["steps"] >= config.mpc_steps:
            counters["stage"] = 2
            row |= self._fit_policy()  # 4.
            if config.dagger_iterations == 0:
                counters["stage"] = 3
        return row

    def _dagger(self) -> dict[str, float]:
        """Step 5, one DAgger iteration: dagger_steps of the policy, labelled by plans."""
        config, counters, collector = self.config, self.counters, self.collector
        visited, row = [], {}
        for _ in range(config.dagger_steps):
            obs = collector.obs
            visited.append(obs)
            action = self.finetuner.predict(obs[None], deterministic=False)[0]
            episode = collector.step(action)
            counters["steps"] += 1
            if episode:
                counters["episodes"] += 1
                row |= episode
        visited = np.stack(visited).astype(np.float32)
        self.imitation_data.add(visited, self.label(visited))
        counters["dagger_iterations"] += 1
        row |= self._fit_policy()
        if counters["dagger_iterations"] >= config.dagger_iterations:
            counters["stage"] = 3
        return row

    def _fit_policy(self) -> dict[str, float]:
        """Fit the policy mean to D_pi by squared error; the observation normaliser is
        set to D_pi's moments first (the fine-tuner keeps updating it)."""
        config = self.config
        size = len(self.imitation_data)
        obs, actions = (a[:size] for a in self.imitation_data.arrays())
        self.obs_rms.mean = obs.mean(0).astype(np.float64)
        self.obs_rms.var = obs.var(0).astype(np.float64)
        self.obs_rms.count = float(size)
        inputs = torch.from_numpy(self.obs_rms.normalize(obs))
        targets = torch.from_numpy(actions)
        loss = torch.zeros(())
        for _ in range(config.imitation_epochs):
            order = torch.from_numpy(self.rng.permutation(size))
            for start in range(0, size, config.imitation_batch_size):
                rows = order[start : start + config.imitation_batch_size]
                loss = (self.policy.actor(inputs[rows]) - targets[rows]).pow(2).mean()
                self.policy_optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.policy_optimizer.step()
        return {"imitation/loss": float(loss.detach()), "imitation/pairs": float(size)}

    def _finetune(self, total: int) -> dict[str, float]:
        """Step 6: the fine-tuner's own loop, in this run's folder, from this step on."""
        config, finetuner = self.config, self.finetuner
        loop = finetuner.loop
        if not self.counters.get("finetuning"):  # the first call of stage 3
            loop.counters["steps"] = self.counters["steps"]
            obs, _ = loop.envs.reset(seed=config.seed + 1)
            loop.next_obs = loop._prepare(obs, update=False)  # under D_pi's moments
            self.counters["stage"], self.counters["finetuning"] = 3, 1

        def checkpoint() -> Path:
            self.counters["steps"] = loop.counters["steps"]
            return self.checkpoint()

        metrics = loop.learn(total, finetuner.update, checkpoint, run_as=(self.algo, config))
        self.counters["steps"] = loop.counters["steps"]
        return metrics

    def parts(self, training: bool = False) -> dict[str, Any]:
        parts = model_based_parts(self, training)
        for name, part in self.finetuner.parts(training).items():
            parts[f"finetune.{name}"] = part
        if training:
            parts |= {
                "imitation_data": self.imitation_data,
                "policy_optimizer": self.policy_optimizer,
                "finetune.counters": _Counters(self.finetuner.loop),
            }
        return parts


class _Counters:
    """The fine-tuner's counters as a checkpoint part."""

    def __init__(self, loop: Any):
        self.loop = loop

    def state_dict(self) -> dict:
        return dict(self.loop.counters)

    def load_state_dict(self, state: dict) -> None:
        self.loop.counters = dict(state)
