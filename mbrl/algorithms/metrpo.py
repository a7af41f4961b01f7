"""Model-ensemble trust-region policy optimisation (ME-TRPO).

Kurutach, Clavera, Duan, Tamar, Abbeel (2018), "Model-Ensemble Trust-Region Policy
Optimization", ICLR (arXiv:1802.10592). The project's own
:class:`~mbrl.algorithms.trpo.TRPO`, unchanged, trains on rollouts imagined in an
ensemble of deterministic dynamics networks: its rollouts come from a
:class:`~mbrl.models.ModelVectorEnv` over the ensemble (a random member each step),
so this file holds no second TRPO. Defaults follow the authors' configs: 5 members of
2x1024 ReLU predicting the change of state, a third of the data held out, 3,000 real
steps per iteration, a 32x32 tanh policy with initial std 1, TRPO step 0.01, imagined
horizon = the task's episode length, validation every 5 policy iterations, stop when
fewer than 70% of members see an improvement for 25 iterations (at most 400).

    1. initialise the policy pi_theta, the members f_1..f_K and the real data D
    2. for each iteration:
    3.   run pi_theta (sampling its Gaussian) in the real env for model_train_every steps;
         add the transitions to D
    4.   fit every member to D (its own bootstrap; held-out early stopping; warm start)
    5.   repeat (policy iterations):
    6.     imagined rollouts: imagined_envs episodes of the horizon from real start
           observations, a member drawn at random for every row and step
    7.     one TRPO update of pi_theta (and its value function) on them
    8.     every validate_every iterations: the return R_k of the deterministic policy in
           each member k alone, from fixed real start observations; the validation passes
           when R_k improved over the last validation for >= improvement_ratio of the
           members
    9.   until policy_patience iterations pass without a passing validation, or
         max_policy_iterations
   10.   every eval_every real steps: evaluate the deterministic policy in the real env

The progress log carries, per iteration, the imagined-step count beside the real one,
the policy iterations the stopping rule allowed, the validation's share of improving
members, and the seconds spent on real steps, model fitting, imagination, policy
updates and validation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import gymnasium as gym
import numpy as np
import torch
import tyro
from rich.console import Console

from mbrl.algorithms.trpo import TRPO, TRPOConfig
from mbrl.models import (
    Activation,
    ModelVectorEnv,
    Propagation,
    VectorEnvConfig,
    observation_starts,
)
from mbrl.training.checkpoint import RngStates, agent_files
from mbrl.training.config import DeviceFields, EnvFields, RunFields, at_least, fail, in_range
from mbrl.training.modelbased import (
    DynamicsFields,
    GeneratorPart,
    checked_obs,
    fit_dynamics,
    learn_in_iterations,
    reset_observations,
    setup_imagination,
    validate_dynamics_fields,
)

__all__ = ["METRPO", "METRPOConfig", "StoppingRule"]


@dataclass(frozen=True, kw_only=True)
class METRPOConfig(DynamicsFields, DeviceFields, RunFields, EnvFields):
    """ME-TRPO (defaults: Kurutach et al. 2018's configs; TRPO's own otherwise)."""

    env: str = "Pendulum-v1"
    """Gymnasium id with flat Box observations and a Box action space."""
    total_steps: int = 100_000
    """Real environment steps to train for."""
    eval_every: int = 3_000
    """Real steps between evaluations of the deterministic policy (real env)."""
    eval_episodes: int = 5
    """Episodes per evaluation; 0: the training episodes' returns only."""
    checkpoint_every: int = 3_000
    """Real steps between checkpoints (taken between iterations; also every few minutes
    and at the end)."""
    log_every: int = 3_000
    """Real steps between rows of progress.csv (one row per iteration at most)."""
    ensemble_size: int = 5
    """K, deterministic members trained on the same data; 5 in the paper."""
    model_elites: int = 5
    """Members the imagination draws from: all of them, as in the paper."""
    probabilistic: bool = False
    """Deterministic members trained by squared error on the change of state."""
    model_hidden_sizes: tuple[int, ...] = (1024, 1024)
    """Hidden widths of each member; 2x1024 in the authors' configs."""
    model_activation: Annotated[Activation, tyro.conf.EnumChoicesFromValues] = Activation.RELU
    """ReLU, as the authors'."""
    model_batch_size: int = 1000
    """Transitions per member per gradient step; 1000 in the authors' configs."""
    model_weight_decay: float = 0.0
    """No L2, as the authors'."""
    model_holdout: float = 1 / 3
    """Held-out share for early stopping (the authors' split ratio)."""
    model_train_every: int = 3_000
    """Real steps collected with the policy per iteration (the authors' sample_size);
    the members are refitted after each batch."""
    policy_hidden_sizes: tuple[int, ...] = (32, 32)
    """Hidden widths of the policy and value MLPs (tanh); 32x32 in the paper."""
    log_std_init: float = 0.0
    """Initial log-std of the Gaussian policy (std 1, the authors' init_std)."""
    max_kl: float = 0.01
    """TRPO's trust region (step size 0.01 in the paper)."""
    gamma: float = 0.99
    """Discount of the imagined returns."""
    gae_lambda: float = 0.95
    """GAE lambda of TRPO's advantages."""
    value_epochs: int = 5
    """Epochs of value minibatch steps per policy iteration."""
    value_batch_size: int = 1024
    """Minibatch size of the value steps (imagined batches are large)."""
    normalize_obs: bool = True
    """Normalise the policy's observations (running statistics of imagined ones)."""
    imagined_envs: int = 100
    """Imagined episodes per policy iteration (the batch is imagined_envs x horizon;
    the authors' 50,000 steps are 500 episodes of 100)."""
    imagined_horizon: int = 0
    """Steps of an imagined episode; 0: the env's time limit (the paper's choice)."""
    start_pool: int = 1_000
    """Real start observations (env resets, drawn once) the imagined episodes start from."""
    validation_starts: int = 100
    """Fixed real start observations of the per-member validation."""
    validate_every: int = 5
    """Policy iterations between validations (the authors' log_every)."""
    improvement_ratio: float = 0.7
    """Share of members whose validation return must improve for a validation to pass."""
    policy_patience: int = 25
    """Policy iterations without a passing validation before the policy phase stops."""
    max_policy_iterations: int = 400
    """Most policy iterations per real-data iteration."""

    def __post_init__(self):
        validate_dynamics_fields(self)
        at_least(self, 1, "imagined_envs", "start_pool", "validation_starts", "validate_every",
                 "policy_patience", "max_policy_iterations", "value_epochs",
                 "value_batch_size")  # fmt: skip
        at_least(self, 0, "imagined_horizon")
        if not self.policy_hidden_sizes or min(self.policy_hidden_sizes) < 1:
            fail(self, "policy_hidden_sizes", "be positive sizes")
        in_range(self, "improvement_ratio", 0.0, 1.0, open_low=True)
        in_range(self, "gamma", 0.0, 1.0)
        in_range(self, "gae_lambda", 0.0, 1.0)
        if not self.max_kl > 0:
            fail(self, "max_kl", "be > 0")
        if self.model_train_every > self.total_steps:
            fail(self, "model_train_every", f"be <= total_steps ({self.total_steps})")


class StoppingRule:
    """The authors' rule for ending a policy phase (the paper's section 4.3).

    ``update(returns, iterations)`` takes the validation returns ``[K]`` of the policy in
    each member after ``iterations`` more policy iterations and says whether to go on:
    a validation passes when the return improved over the previous validation's in at
    least ``ratio`` of the members; ``patience`` iterations without a passing one stop
    the phase. The first validation is the reference and passes.
    """

    def __init__(self, ratio: float, patience: int):
        self.ratio, self.patience = ratio, patience
        self.last: np.ndarray | None = None
        self.since_pass = 0
        self.share = float("nan")
        """The share of members that improved at the last validation."""

    def update(self, returns: np.ndarray, iterations: int) -> bool:
        returns = np.asarray(returns, dtype=np.float64)
        if self.last is None:
            self.share = 1.0
        else:
            self.share = float(np.mean(returns > self.last))
        self.last = returns
        self.since_pass = 0 if self.share >= self.ratio else self.since_pass + iterations
        return self.since_pass < self.patience


@agent_files
class METRPO:
    """ME-TRPO on one gymnasium environment (the surface of :class:`mbrl.Agent`)."""

    algo = "metrpo"
    title = "ME-TRPO"
    Config = METRPOConfig
    FORMAT = "mbrl.metrpo/1"
    world_field = "env"
    action_spaces = frozenset({"continuous"})
    budget_fields = ("total_steps",)
    step_cost = 1_000.0

    def __init__(
        self,
        env: str,
        config: METRPOConfig | None = None,
        *,
        run_dir: str | Path | None = None,
        console: Console | None = None,
    ):
        setup_imagination(  # step 1
            self, env, config, run_dir=run_dir, console=console, propagation=Propagation.TS1,
            counters=("policy_iterations",),
        )  # fmt: skip
        config, model = self.config, self.learned_model
        self.member_model = model.with_propagation(Propagation.TS_INF)  # validation
        starts = reset_observations(env, config.start_pool, config.seed + 2_000_000)
        self.validation_obs = reset_observations(
            env, config.validation_starts, config.seed + 3_000_000
        ).to(self.device)
        self.imagined = ModelVectorEnv(
            model,
            starts.to(self.device),
            start_state=observation_starts(model),
            config=VectorEnvConfig(num_envs=config.imagined_envs, horizon=self.horizon),
        )
        settings = dict(
            env=env, total_steps=config.total_steps, seed=config.seed,
            num_envs=config.imagined_envs, num_steps=self.horizon, gamma=config.gamma,
            gae_lambda=config.gae_lambda, hidden_sizes=tuple(config.policy_hidden_sizes),
            log_std_init=config.log_std_init, normalize_obs=config.normalize_obs,
            max_kl=config.max_kl, value_epochs=config.value_epochs,
            value_batch_size=config.value_batch_size, eval_episodes=config.eval_episodes,
            run_dir=config.run_dir,
        )  # fmt: skip
        self.trpo = TRPO(
            env,
            TRPOConfig(**settings),
            run_dir=self.run_dir,
            console=self.console,
            envs=gym.wrappers.vector.RecordEpisodeStatistics(self.imagined),
        )
        self.policy = self.trpo.policy
        self.seconds = dict.fromkeys(("real", "fit", "imagination", "policy", "validation"), 0.0)

    # ------------------------------------------------------------------ acting
    def predict(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Actions ``[B, D]`` of the policy for observations ``[B, O]``."""
        return self.trpo.predict(checked_obs(self, obs), deterministic)

    def evaluate(self) -> dict[str, float]:
        """The mean return of the deterministic policy on seeded real episodes."""
        return self.trpo.evaluate() if self.config.eval_episodes else {}

    @torch.no_grad()
    def validation_returns(self) -> np.ndarray:
        """``[K]`` step 8: the mean return of the deterministic policy over the fixed
        validation starts, rolled ``horizon`` steps in each member alone."""
        model, k = self.member_model, self.ensemble.num_members
        start = model.initial_state(self.validation_obs, 1, self.generator)
        n = start.shape[0]
        member = torch.arange(k, device=start.device).repeat_interleave(n)
        state = model.with_member(start.repeat(k, 1), member)
        total = torch.zeros(k * n, device=start.device)
        for _ in range(self.horizon):
            obs = model.observe(state).cpu().numpy()
            action = torch.as_tensor(self.trpo.predict(obs, deterministic=True))
            step = model.step(state, action.to(state.device), self.generator)
            total += step.reward
            state = step.state
            if step.terminal.all():
                break
        return total.view(k, n).mean(1).cpu().numpy()

    # ---------------------------------------------------------------- training
    def learn(self, total_steps: int | None = None) -> dict[str, float]:
        """Train until ``total_steps`` real environment steps (counting steps done)."""
        return learn_in_iterations(self, total_steps)

    def iteration_steps(self) -> int:
        """Real steps of the next iteration (step 3)."""
        return self.config.model_train_every

    def iteration(self, real_steps: int) -> dict[str, float]:
        """Steps 3-9: real data, a fit, and the policy phase; returns the row to log."""
        counters, seconds = self.counters, self.seconds
        tick = time.perf_counter()
        episodes = []
        for _ in range(real_steps):  # step 3
            obs = self.collector.obs
            action = self.trpo.predict(obs[None], deterministic=False)[0]
            episode = self.collector.step(action)
            counters["steps"] += 1
            if episode:
                counters["episodes"] += 1
                episodes.append(episode["charts/episodic_return"])
        seconds["real"] += time.perf_counter() - tick
        tick = time.perf_counter()
        row = fit_dynamics(self)  # step 4
        seconds["fit"] += time.perf_counter() - tick
        row |= self.policy_phase()  # steps 5-9
        counters["iterations"] += 1
        if episodes:
            row["charts/episodic_return"] = float(np.mean(episodes))
        row |= {f"time/{name}_seconds": value for name, value in seconds.items()}
        row["model/imagined_steps"] = float(counters["imagined_steps"])
        return row

    def policy_phase(self) -> dict[str, float]:
        """Steps 5-9: TRPO on imagined rollouts until the stopping rule ends the phase."""
        config, counters, seconds = self.config, self.counters, self.seconds
        loop = self.trpo.loop
        obs, _ = loop.envs.reset(seed=config.seed + 7_919 * counters["iterations"])
        loop.next_obs = loop._prepare(obs, update=True)
        loop._episodes = []
        rule = StoppingRule(config.improvement_ratio, config.policy_patience)
        metrics: dict[str, float] = {}
        batch = config.imagined_envs * self.horizon
        iterations = 0
        while iterations < config.max_policy_iterations:
            tick = time.perf_counter()
            loop.collect()  # step 6
            seconds["imagination"] += time.perf_counter() - tick
            tick = time.perf_counter()
            metrics = self.trpo.update(loop.buffer, 1.0)  # step 7
            seconds["policy"] += time.perf_counter() - tick
            iterations += 1
            counters["imagined_steps"] += batch
            if iterations % config.validate_every == 0:  # step 8
                tick = time.perf_counter()
                going = rule.update(self.validation_returns(), config.validate_every)
                seconds["validation"] += time.perf_counter() - tick
                if not going:  # step 9
                    break
        counters["policy_iterations"] += iterations
        row = dict(metrics)
        row |= {"policy/iterations": float(iterations), "policy/improving_share": rule.share}
        if rule.last is not None:
            row["policy/validation_return"] = float(np.mean(rule.last))
        if loop._episodes:
            row["imagined/episodic_return"] = float(np.mean([r for r, _ in loop._episodes]))
            loop._episodes = []
        return row

    def parts(self, training: bool = False) -> dict[str, Any]:
        """The ensemble (with its normaliser) and its optimiser, the policy (TRPO's
        parts); for training also the real data, the collector and the RNGs."""
        parts: dict[str, Any] = {"ensemble": self.ensemble, "model_optimizer": self.model_trainer}
        for name, part in self.trpo.parts(training).items():
            parts[f"policy.{name}"] = part
        if training:
            parts |= {
                "replay": self.replay,
                "collector": self.collector,
                "rng": RngStates(self.rng, self.generator),
                "fit_rng": GeneratorPart(self.fit_generator),
            }
        return parts
