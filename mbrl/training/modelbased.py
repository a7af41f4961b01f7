"""What the model-predictive agents (PETS, MB-MF) share: the dynamics ensemble, its data
and fits, the trajectory optimiser, and planning from a real environment's state.

- config sections :class:`DynamicsFields` (the ensemble and its trainer) and
  :class:`PlannerFields` (the optimiser and its rollouts), flat flags like the others;
- :func:`setup_model_based`: checks the env, makes the replay of real transitions, the
  collector, the ensemble (known reward and termination where the env has them), the
  world the planner plans in (the learned model or the exact MuJoCo model) and the
  planner; :func:`fit_dynamics` fits the ensemble to everything collected so far;
- :class:`MPC`: the planner's first action for an observation or a real env's state.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import gymnasium as gym
import numpy as np
import torch
import tyro
from rich.console import Console
from torch import Tensor

from mbrl.games import mujoco as exact_mujoco
from mbrl.models import (
    Activation,
    Ensemble,
    EnsembleConfig,
    EnsembleKind,
    EnsembleTrainer,
    LearnedModel,
    Propagation,
    TrainerConfig,
    Transitions,
    known_functions,
    shaped_envs,
)
from mbrl.planners.trajectory import (
    CEM,
    ICEM,
    MPPI,
    CEMConfig,
    ICEMConfig,
    MPPIConfig,
    RandomShooting,
    RandomShootingConfig,
)
from mbrl.training.checkpoint import RngStates, agent_files
from mbrl.training.config import at_least, check_run_fields, fail, in_range, positive
from mbrl.training.envs import check_env_id, make_env
from mbrl.training.offpolicy import Collector, check_continuous_env
from mbrl.training.replay import ReplayBuffer
from mbrl.training.run import Run, RunSpec, crossed, status_line
from mbrl.training.runs import new_run_dir

__all__ = [
    "MPC",
    "DynamicsFields",
    "GeneratorPart",
    "PlannerFields",
    "PlannerKind",
    "Precision",
    "WorldKind",
    "checked_obs",
    "fit_dynamics",
    "learn_in_iterations",
    "make_dynamics",
    "make_planner",
    "model_based_parts",
    "mpc_agent",
    "mpc_returns",
    "mpc_step",
    "reset_observations",
    "setup_imagination",
    "setup_model_based",
    "validate_dynamics_fields",
    "validate_model_based_config",
]


class PlannerKind(enum.Enum):
    """The trajectory optimiser of an MPC agent."""

    CEM = "cem"
    """Cross-entropy method (PETS)."""
    ICEM = "icem"
    """Improved CEM: coloured noise, decaying population, kept elites."""
    MPPI = "mppi"
    """Model-predictive path integral with PDDM's filtered noise."""
    RANDOM = "random"
    """Random shooting (MB-MF)."""


class WorldKind(enum.Enum):
    """What the planner plans in."""

    LEARNED = "learned"
    """The learned ensemble (the algorithm)."""
    EXACT = "exact"
    """The exact MuJoCo simulator from the real env's state: the ground-truth ceiling
    (MBBL's GT-CEM); no ensemble is fitted."""


class Precision(enum.Enum):
    """Arithmetic of the ensemble's products when planning (fits are float32)."""

    FLOAT32 = "float32"
    BFLOAT16 = "bfloat16"
    """Several times faster on CPUs with AVX512-BF16 and on GPUs; about 1% error in a
    prediction (``LearnedModel(compute_dtype=torch.bfloat16)``)."""


@dataclass(frozen=True, kw_only=True)
class DynamicsFields:
    """Agents that learn a dynamics ensemble (PETS, MB-MF)."""

    ensemble_size: int = 7
    """E, ensemble members; 5-7 in PETS and mbrl-lib, 1 a single network (MB-MF)."""
    model_elites: int = 5
    """Members with the best held-out scores that predictions use; <= ensemble_size."""
    probabilistic: bool = True
    """Gaussian members trained by NLL (PETS); False: deterministic members, MSE (MB-MF)."""
    model_hidden_sizes: tuple[int, ...] = (200, 200, 200, 200)
    """Hidden widths of each member; 4x200 in PETS/mbrl-lib, 2x500 in MB-MF."""
    model_activation: Annotated[Activation, tyro.conf.EnumChoicesFromValues] = Activation.SILU
    """Nonlinearity of the members: silu (PETS, MBPO), relu (MB-MF, ME-TRPO) or tanh."""
    model_lr: float = 1e-3
    """Adam learning rate of the ensemble; 1e-4-1e-3."""
    model_weight_decay: float = 5e-5
    """L2 on the member weights; 1e-5-1e-4."""
    model_batch_size: int = 256
    """Transitions per member per gradient step; 32-512."""
    model_max_epochs: int = 200
    """Most epochs of one fit (it stops earlier when held-out scores stop improving)."""
    model_patience: int = 5
    """Epochs without a held-out improvement before a fit stops; 5-25."""
    model_holdout: float = 0.2
    """Share of the data held out for early stopping and elites, in [0, 1)."""
    model_member_holdouts: bool = False
    """Each member holds out its own share of the data (MB-MPO's per-model splits) and
    trains on the rest; off: one held-out split for all members."""
    model_train_every: int = 200
    """Environment steps between fits (mbrl-lib's freq_train_model: one trial)."""
    buffer_size: int = 1_000_000
    """Real transitions kept for the fits (the oldest dropped first beyond it)."""
    learned_reward: bool = False
    """Learn the reward (and termination) even where the env's are known functions of the
    observation; where none are known the model learns them anyway."""


@dataclass(frozen=True, kw_only=True)
class PlannerFields:
    """Agents that plan with a trajectory optimiser (PETS, MB-MF)."""

    planner: Annotated[PlannerKind, tyro.conf.EnumChoicesFromValues] = PlannerKind.CEM
    """The optimiser: cem, icem, mppi or random (shooting)."""
    horizon: int = 15
    """H, steps planned ahead; 15 in mbrl-lib's PETS cartpole, 10-30."""
    population_size: int = 350
    """N, candidate sequences per iteration; 350-500 in PETS, 1000+ for random shooting."""
    num_elites: int = 35
    """K, elites refitted to (cem, icem); a tenth of N in PETS; <= population_size."""
    num_iterations: int = 5
    """Optimiser iterations per plan (cem 5, icem 3, mppi 1; random shooting has one)."""
    alpha: float = 0.1
    """Momentum of the refit (cem, icem): weight of the old mean and std, in [0, 1)."""
    num_particles: int = 20
    """P, rollouts per candidate (one ensemble member each); 20 in PETS, 1 deterministic."""
    propagation: Annotated[Propagation, tyro.conf.EnumChoicesFromValues] = Propagation.TS_INF
    """How particles use the members: ts_inf (PETS), ts1, mean or expectation."""
    precision: Annotated[Precision, tyro.conf.EnumChoicesFromValues] = Precision.FLOAT32
    """The learned model's products when planning: float32, or bfloat16 (several times
    faster where the CPU has AVX512-BF16, about 1% error in a prediction)."""
    model: Annotated[WorldKind, tyro.conf.EnumChoicesFromValues] = WorldKind.LEARNED
    """Plan in the learned model, or in the exact MuJoCo simulator (the ceiling)."""
    shaped_reward: bool = False
    """Plan on the env's shaped planning reward (``KnownFunctions.planning_reward``, in
    the manner of PETS's task costs; InvertedPendulum-v5 has one) in place of its reward;
    episodes still score the env's reward."""


def validate_dynamics_fields(config: Any) -> None:
    """The checks of :class:`DynamicsFields` (and the env id); messages name the field."""
    check_env_id(config.env)
    at_least(config, 1, "ensemble_size", "model_elites", "model_batch_size",
             "model_max_epochs", "model_patience", "model_train_every", "buffer_size")  # fmt: skip
    if config.model_elites > config.ensemble_size:
        fail(config, "model_elites", f"be <= ensemble_size ({config.ensemble_size})")
    if not config.model_hidden_sizes or min(config.model_hidden_sizes) < 1:
        fail(config, "model_hidden_sizes", "be positive sizes")
    positive(config, "model_lr")
    at_least(config, 0.0, "model_weight_decay")
    in_range(config, "model_holdout", 0.0, 1.0, open_high=True)


def validate_model_based_config(config: Any) -> None:
    """The checks of :class:`DynamicsFields` and :class:`PlannerFields`; messages name the
    field (``PETSConfig.num_elites must be <= population_size (350), got 400``)."""
    check_run_fields(config)
    validate_dynamics_fields(config)
    at_least(config, 1, "horizon", "population_size", "num_elites", "num_iterations",
             "num_particles")  # fmt: skip
    in_range(config, "alpha", 0.0, 1.0, open_high=True)
    if config.planner in (PlannerKind.CEM, PlannerKind.ICEM):
        if config.num_elites > config.population_size:
            fail(config, "num_elites", f"be <= population_size ({config.population_size})")
    if config.planner is PlannerKind.ICEM and 2 * config.num_elites > config.population_size:
        fail(config, "num_elites", f"be <= population_size / 2 for icem "
             f"({config.population_size / 2:g})")  # fmt: skip
    learned = config.model is WorldKind.LEARNED
    if learned and getattr(config, "initial_random_steps", 2) < 2:
        fail(config, "initial_random_steps", "be >= 2 with a learned model (a fit holds "
             "one transition out)")  # fmt: skip
    if config.shaped_reward:
        known = known_functions(config.env)
        if known is None or known.planning_reward is None:
            fail(config, "shaped_reward", f"be False for {config.env}: shaped planning "
                 f"rewards exist for {', '.join(shaped_envs())}")  # fmt: skip
        if config.learned_reward:
            fail(config, "shaped_reward", "be False with learned_reward (it replaces the "
                 "known reward)")  # fmt: skip
    if config.model is WorldKind.EXACT and config.env not in exact_mujoco.available():
        fail(config, "model", f"be 'learned' for {config.env}: the exact model covers "
             f"{', '.join(exact_mujoco.available())}")  # fmt: skip


def make_planner(config: Any, exact: bool = False):
    """The optimiser the config names; one particle on the exact (deterministic) model."""
    rollouts = {
        "horizon": config.horizon,
        "num_particles": 1 if exact else config.num_particles,
    }
    if config.planner is PlannerKind.RANDOM:
        return RandomShooting(
            RandomShootingConfig(population_size=config.population_size, **rollouts)
        )
    if config.planner is PlannerKind.MPPI:
        return MPPI(
            MPPIConfig(
                population_size=config.population_size,
                num_iterations=config.num_iterations,
                **rollouts,
            )
        )
    population = {
        "population_size": config.population_size,
        "num_elites": config.num_elites,
        "num_iterations": config.num_iterations,
        "alpha": config.alpha,
    }
    if config.planner is PlannerKind.ICEM:
        return ICEM(ICEMConfig(**population, **rollouts))
    return CEM(CEMConfig(**population, **rollouts))


def setup_model_based(
    agent: Any, env: str, config: Any, *, run_dir: str | Path | None, console: Console | None
) -> None:
    """The attributes every MPC agent has (its pseudocode's initialisation): config,
    console, device, RNGs, the replay of real transitions, the collector, counters, run
    folder, the ensemble with its trainer, the world planned in and the planner."""
    obs_space, action_space = check_continuous_env(env, agent.algo.upper())
    config = agent.Config(env=env) if config is None else dataclasses.replace(config, env=env)
    agent.config = config
    agent.console = console or Console(quiet=True)
    agent.device = torch.device(config.device)
    agent.obs_shape = tuple(obs_space.shape)
    if len(agent.obs_shape) != 1:
        raise ValueError(f"{agent.algo.upper()} needs flat observations; {env} has {obs_space}")
    obs_dim, action_dim = agent.obs_shape[0], action_space.shape[0]
    agent.action_low, agent.action_high = action_space.low, action_space.high
    torch.manual_seed(config.seed)
    agent.rng = np.random.default_rng(config.seed)
    agent.generator = torch.Generator(agent.device).manual_seed(config.seed)
    agent.fit_generator = torch.Generator().manual_seed(config.seed + 1)  # splits, bootstraps
    agent.replay = ReplayBuffer(config.buffer_size, agent.obs_shape, action_dim)
    agent.collector = Collector(env, config.seed, agent.replay)
    agent.counters = {"steps": 0, "episodes": 0, "fits": 0, "last_fit": 0}
    agent.run_dir = (
        Path(run_dir) if run_dir else new_run_dir(config.run_dir, agent.algo, config.env)
    )
    agent.ensemble, agent.model_trainer, agent.learned_model = make_dynamics(
        config,
        obs_dim,
        action_space,
        agent.device,
        propagation=config.propagation,
        compute_dtype=getattr(torch, config.precision.value),
    )
    reward_fn = agent.learned_model.reward_fn
    exact = config.model is WorldKind.EXACT
    world = (
        exact_mujoco.MujocoModel(
            exact_mujoco.MujocoConfig(env_id=env),
            reward_fn=reward_fn if config.shaped_reward else None,
        )
        if exact
        else agent.learned_model
    )
    agent.mpc = MPC(world, make_planner(config, exact), agent.generator)


def setup_imagination(
    agent: Any,
    env: str,
    config: Any,
    *,
    run_dir: str | Path | None,
    console: Console | None,
    propagation: Propagation,
    counters: tuple[str, ...] = (),
) -> Any:
    """The attributes the agents that learn in imagined rollouts share (ME-TRPO's and
    MB-MPO's initialisation): config, console, device, the imagined horizon (the
    config's ``imagined_horizon``, 0 for the env's time limit), RNGs, the replay of real
    transitions and its collector, counters (the common ones and ``counters``), the run
    folder, and the ensemble, its trainer and the learned model (``agent.learned_model``)
    with ``propagation``. Returns the env's action space."""
    obs_space, action_space = check_continuous_env(env, agent.title)
    if len(obs_space.shape) != 1:
        raise ValueError(f"{agent.title} needs flat observations; {env} has {obs_space}")
    config = agent.Config(env=env) if config is None else dataclasses.replace(config, env=env)
    agent.config, agent.console = config, console or Console(quiet=True)
    agent.device = torch.device(config.device)
    agent.obs_shape = tuple(obs_space.shape)
    agent.horizon = config.imagined_horizon or gym.spec(env).max_episode_steps or 1000
    torch.manual_seed(config.seed)
    agent.rng = np.random.default_rng(config.seed)
    agent.generator = torch.Generator(agent.device).manual_seed(config.seed)
    agent.fit_generator = torch.Generator().manual_seed(config.seed + 1)
    agent.replay = ReplayBuffer(config.buffer_size, agent.obs_shape, action_space.shape[0])
    agent.collector = Collector(env, config.seed, agent.replay)
    names = ("steps", "episodes", "iterations", "fits", "last_fit", "imagined_steps", *counters)
    agent.counters = dict.fromkeys(names, 0)
    agent.run_dir = (
        Path(run_dir) if run_dir else new_run_dir(config.run_dir, agent.algo, config.env)
    )
    agent.ensemble, agent.model_trainer, agent.learned_model = make_dynamics(
        config, obs_space.shape[0], action_space, agent.device, propagation=propagation
    )
    return action_space


def learn_in_iterations(agent: Any, total_steps: int | None) -> dict[str, float]:
    """The run of an agent that learns in iterations of real data, a fit and imagined
    training (ME-TRPO, MB-MPO): ``agent.iteration(real_steps)`` returns the row to log
    for ``agent.iteration_steps()`` real steps (fewer at the end of the budget); an
    evaluation every ``eval_every`` real steps and at the end, checkpoints between
    iterations. Returns the last metrics."""
    config, counters = agent.config, agent.counters
    total = config.total_steps if total_steps is None else total_steps
    start = counters["steps"]
    spec = RunSpec(agent.algo, config.env, config, agent.run_dir, total, start, start)
    metrics: dict[str, float] = {}
    with Run(spec, agent.checkpoint, agent.console) as run:
        while run.going(counters["steps"]):
            before = counters["steps"]
            row = agent.iteration(min(agent.iteration_steps(), total - before))
            now = counters["steps"]
            final = now >= total
            if crossed(before, now, config.eval_every) or final:
                row |= agent.evaluate()
            row["charts/SPS"] = run.speed(now)
            metrics.update(run.log(now, row))
            if not final:
                run.checkpoint_if_due(crossed(before, now, config.checkpoint_every))
            run.show(now, status_line(metrics))
    return metrics


def make_dynamics(
    config: Any,
    obs_dim: int,
    action_space: Any,
    device: torch.device,
    *,
    propagation: Propagation,
    compute_dtype: torch.dtype = torch.float32,
) -> tuple[Ensemble, EnsembleTrainer, LearnedModel]:
    """The ensemble of a :class:`DynamicsFields` config, its trainer, and the learned
    model over it: the env's known reward and termination where it has them (its shaped
    planning reward under ``shaped_reward``), learned heads otherwise."""
    env = config.env
    known = None if config.learned_reward else known_functions(env)
    reward_fn = None if known is None else known.reward
    if getattr(config, "shaped_reward", False):  # validated: known has a planning reward
        reward_fn = known_functions(env).planning_reward
    action_dim = action_space.shape[0]
    ensemble = Ensemble(
        EnsembleConfig(
            obs_dim=obs_dim,
            action_dim=action_dim,
            kind=EnsembleKind.PROBABILISTIC if config.probabilistic else EnsembleKind.DETERMINISTIC,
            num_members=config.ensemble_size,
            num_elites=config.model_elites,
            hidden_sizes=tuple(config.model_hidden_sizes),
            activation=config.model_activation,
            learn_reward=known is None,
            learn_termination=known is None,
        ),
        generator=torch.Generator().manual_seed(config.seed),
    ).to(device)
    trainer = EnsembleTrainer(
        ensemble,
        TrainerConfig(
            learning_rate=config.model_lr,
            weight_decay=config.model_weight_decay,
            batch_size=config.model_batch_size,
            holdout_fraction=config.model_holdout,
            max_epochs=config.model_max_epochs,
            patience=config.model_patience,
            member_holdouts=config.model_member_holdouts,
        ),
    )
    model = LearnedModel(
        ensemble,
        propagation=propagation,
        reward_fn=reward_fn,
        termination_fn=None if known is None else known.termination,
        action_low=action_space.low,
        action_high=action_space.high,
        name=f"learned:{env}",
        compute_dtype=compute_dtype,
    )
    return ensemble, trainer, model


def fit_dynamics(agent: Any) -> dict[str, float]:
    """Fit the ensemble to every real transition so far (warm start: the weights and Adam
    state of the last fit); returns the fit's metrics for progress.csv."""
    arrays = dict(zip(agent.replay.names, agent.replay.arrays(), strict=True))
    size = len(agent.replay)
    rows = {name: torch.from_numpy(array[:size]) for name, array in arrays.items()}
    data = Transitions(
        obs=rows["obs"],
        action=rows["action"],
        next_obs=rows["next_obs"],
        reward=rows["reward"],
        terminated=rows["terminated"] > 0.5,
    )
    report = agent.model_trainer.fit(data, generator=agent.fit_generator, console=agent.console)
    agent.counters["fits"] += 1
    agent.counters["last_fit"] = agent.counters["steps"]
    best = report.validation_scores[list(report.elites)]
    return {
        "model/validation_score": float(best.mean()),
        "model/epochs": float(report.epochs),
        "model/train_loss": float(report.train_loss_history[-1].mean()),
        "model/transitions": float(size),
    }


def reset_observations(env_id: str, count: int, seed: int) -> Tensor:
    """``[count, D]`` float32 first observations of ``count`` seeded real episodes (the
    start states of imagined rollouts and of validations in a learned model)."""
    env = make_env(env_id)
    rows = [env.reset(seed=seed + i)[0] for i in range(count)]
    env.close()
    return torch.as_tensor(np.stack(rows), dtype=torch.float32)


def mpc_step(agent: Any) -> dict[str, float]:
    """One real environment step of MPC with data aggregation (PETS's and MB-MF's loop
    body): fit the model when due (after ``initial_random_steps``, then every
    ``model_train_every`` steps), act uniformly at random before
    ``initial_random_steps`` and by the planner's first action after, store the
    transition, reset the warm start at an episode's end. Returns the row to log."""
    config, counters, collector = agent.config, agent.counters, agent.collector
    step, row = counters["steps"], {}
    random_phase = step < config.initial_random_steps
    due = counters["fits"] == 0 or step - counters["last_fit"] >= config.model_train_every
    if agent.mpc.world is agent.learned_model and not random_phase and due:
        row |= fit_dynamics(agent)
    if random_phase:
        action = collector.random_action()
    else:
        action = agent.mpc.act_in(collector.env, collector.obs)
    episode = collector.step(action)
    counters["steps"] = step + 1
    if episode:
        counters["episodes"] += 1
        agent.mpc.reset()
        row |= episode
    return row


def model_based_parts(agent: Any, training: bool) -> dict[str, Any]:
    """Checkpoint parts of an MPC agent: the ensemble (with its normaliser and elites) and
    its optimiser; for training also the replay, collector, RNGs and the plan in hand."""
    parts = {"ensemble": agent.ensemble, "model_optimizer": agent.model_trainer}
    if training:
        parts |= {
            "replay": agent.replay,
            "collector": agent.collector,
            "rng": RngStates(agent.rng, agent.generator),
            "fit_rng": GeneratorPart(agent.fit_generator),
            "plan": agent.mpc.planner,
        }
    return parts


def mpc_returns(agent: Any, episodes: int, seed: int) -> dict[str, float]:
    """Returns of ``episodes`` seeded real episodes of MPC with the agent's world and a
    fresh planner of its config (a warm start of its own)."""
    config, exact = agent.config, agent.mpc.exact
    mpc = MPC(agent.mpc.world, make_planner(config, exact), agent.generator)
    env, returns = make_env(config.env), []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        mpc.reset()
        done, total = False, 0.0
        while not done:
            obs, reward, terminated, truncated, _ = env.step(mpc.act_in(env, obs))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return {"eval/mean_return": float(np.mean(returns)), "eval/std_return": float(np.std(returns))}


def checked_obs(agent: Any, obs: np.ndarray) -> np.ndarray:
    """``obs`` as float32 ``[B, O]``, or a ValueError naming the shape expected."""
    obs = np.asarray(obs, dtype=np.float32)
    if obs.ndim != 2 or tuple(obs.shape[1:]) != agent.obs_shape:
        raise ValueError(f"predict expects obs [B, {agent.obs_shape}], got {obs.shape}")
    return obs


def mpc_agent(cls: type) -> type:
    """Class decorator: the class facts of a model-predictive gymnasium agent (PETS,
    MB-MF), ``parts`` (:func:`model_based_parts`) where the class has none, and the file
    verbs (:func:`mbrl.training.checkpoint.agent_files`)."""
    members = {
        "world_field": "env",
        "action_spaces": frozenset({"continuous"}),
        "budget_fields": ("total_steps",),
        "parts": lambda self, training=False: model_based_parts(self, training),
    }
    for name, member in members.items():
        if name not in cls.__dict__:
            setattr(cls, name, member)
    return agent_files(cls)


class GeneratorPart:
    """A torch.Generator as a checkpoint part (its state)."""

    def __init__(self, generator: torch.Generator):
        self.generator = generator

    def state_dict(self) -> dict:
        return {"state": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["state"])


class MPC:
    """Model-predictive control: plan from where the env is, execute the first action.

    ``world`` is a :class:`~mbrl.models.LearnedModel` (start states from observations)
    or an exact :class:`~mbrl.games.mujoco.MujocoModel` (start states from the real
    env's simulator state: :meth:`act_in`)."""

    def __init__(self, world: Any, planner: Any, generator: torch.Generator):
        self.world, self.planner, self.generator = world, planner, generator
        self.exact = isinstance(world, exact_mujoco.MujocoModel)

    def reset(self, rows: Tensor | None = None) -> None:
        """Forget the warm start (a new episode)."""
        self.planner.reset(rows)

    def plan(self, start: Tensor) -> np.ndarray:
        """``[B, D]`` first actions of the plans from start states ``[B, *S]``."""
        plan = self.planner.plan(self.world, start, self.generator)
        return plan[:, 0].cpu().numpy()

    def act(self, obs: np.ndarray) -> np.ndarray:
        """``[B, D]`` actions for observations ``[B, O]`` (the exact model starts from
        :meth:`~mbrl.games.mujoco.MujocoModel.state_from_observation`)."""
        obs_t = torch.as_tensor(np.asarray(obs), dtype=torch.float32)
        if self.exact:
            return self.plan(self.world.state_from_observation(obs_t))
        return self.plan(self.world.initial_state(obs_t, 1, self.generator))

    def act_in(self, env: Any, obs: np.ndarray) -> np.ndarray:
        """``[D]`` the action for one real env whose observation is ``obs``."""
        if self.exact:
            return self.plan(exact_mujoco.state_of(self.world, env))[0]
        return self.act(obs[None])[0]
