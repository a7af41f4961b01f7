"""The off-policy loop of DDPG, TD3, SAC and DQN: environment checks, the collector
and :func:`train_off_policy`, inside the one :class:`~mbrl.training.run.Run`.

The loop takes an :class:`OffPolicyLearner` (a typed protocol, not an agent with
attributes listed in prose); :class:`Collector` steps one gymnasium environment
and fills the replay ring.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar, Protocol

import gymnasium as gym
import numpy as np
import torch
from rich.console import Console
from torch import Tensor

from mbrl.training.checkpoint import RngStates, agent_files
from mbrl.training.config import at_least, check_run_fields, fail, in_range, positive
from mbrl.training.envs import check_env_id, evaluate, make_env
from mbrl.training.envstate import EnvStateError, env_state, restore_env_state
from mbrl.training.replay import Batch, ModelHook, ReplayBuffer, ReplayOnly, Ring
from mbrl.training.run import Run, RunSpec, crossed, status_line
from mbrl.training.runs import new_run_dir

__all__ = [
    "Collector",
    "OffPolicyLearner",
    "check_continuous_env",
    "explore",
    "hook_parts",
    "off_policy_agent",
    "setup_continuous",
    "setup_off_policy",
    "train_off_policy",
    "training_parts",
    "validate_offpolicy_config",
]


# ------------------------------------------------------------- env and config checks
def check_continuous_env(env_id: str, algo: str) -> tuple[gym.spaces.Box, gym.spaces.Box]:
    """(observation space, action space) of ``env_id``; clear errors for unusable spaces."""
    check_env_id(env_id)
    env = gym.make(env_id)
    obs_space, action_space = env.observation_space, env.action_space
    env.close()
    if not isinstance(action_space, gym.spaces.Box):
        raise ValueError(
            f"{algo} needs a continuous (Box) action space; {env_id} has {action_space}"
        )
    if len(action_space.shape) != 1:
        raise ValueError(f"{algo} needs a 1-D Box action space; {env_id} has {action_space}")
    if not (np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high))):
        raise ValueError(f"{algo} needs finite action bounds; {env_id} has {action_space}")
    if not isinstance(obs_space, gym.spaces.Box):
        raise ValueError(f"{algo} needs a Box observation space; {env_id} has {obs_space}")
    return obs_space, action_space


def validate_offpolicy_config(config: Any, min_eval_every: int = 1) -> None:
    """The checks every off-policy config shares; messages name the config and field."""
    check_run_fields(config)
    at_least(config, min_eval_every, "eval_every")
    at_least(config, 1, "buffer_size", "batch_size", "gradient_steps", "train_frequency")
    at_least(config, 0, "learning_starts")
    if config.learning_starts >= config.total_steps:
        fail(config, "learning_starts", f"be < total_steps ({config.total_steps}): "
             "no update would happen")  # fmt: skip
    if config.batch_size > config.buffer_size:
        fail(config, "batch_size", f"be <= buffer_size ({config.buffer_size})")
    in_range(config, "gamma", 0.0, 1.0)
    in_range(config, "tau", 0.0, 1.0, open_low=True)
    positive(config, *[name for name in vars(config) if name.endswith(("_lr", "learning_rate"))])
    check_env_id(config.env)


# ---------------------------------------------------------------- env interaction
class Collector:
    """One environment feeding a replay buffer (the acting steps of every off-policy loop).

    ``step(action)`` stores ``(obs, action, reward, next_obs, terminated)`` with the
    true final observation, calls the hook, resets at the end of an episode and
    returns the finished episode's return and length (else an empty dict).
    """

    def __init__(
        self,
        env_id: str,
        seed: int,
        replay: Ring,
        hook: ModelHook | None = None,
        reset_seed: int | None = None,
    ):
        self.env = make_env(env_id)
        self.replay, self.hook = replay, hook or ReplayOnly()
        self.obs, _ = self.env.reset(seed=seed if reset_seed is None else reset_seed)
        self.env.action_space.seed(seed)

    def random_action(self) -> np.ndarray:
        return self.env.action_space.sample()

    def step(self, action: np.ndarray) -> dict[str, float]:
        next_obs, reward, terminated, truncated, info = self.env.step(action)
        action = np.asarray(action)
        row = (self.obs[None], action[None], np.array([reward]), next_obs[None], [terminated])
        self.replay.add(*row)
        if type(self.hook) is not ReplayOnly:  # the default hook ignores them: skip the copies
            self.hook.on_transitions(
                Batch(*(torch.as_tensor(np.asarray(x), dtype=torch.float32) for x in row))
            )
        if terminated or truncated:
            self.obs, _ = self.env.reset()
            return {
                "charts/episodic_return": float(info["episode"]["r"]),
                "charts/episodic_length": float(info["episode"]["l"]),
            }
        self.obs = next_obs
        return {}

    def state_dict(self) -> dict:
        """The environment with its episode in progress as plain data
        (:mod:`mbrl.training.envstate`), or where it keeps something that is not data
        the RNG states of the environment and its action space, from which a resumed
        run starts a fresh episode."""
        try:
            env = env_state(self.env)
        except EnvStateError:
            env = None
        return {
            "env": env,
            "obs": self.obs,
            "env_rng": self.env.unwrapped.np_random.bit_generator.state,
            "action_rng": self.env.action_space.np_random.bit_generator.state,
        }

    def load_state_dict(self, state: dict) -> None:
        if state.get("env") is not None:
            restore_env_state(self.env, state["env"])
            self.obs = state["obs"]
            return
        if "env_rng" in state:
            self.env.unwrapped.np_random.bit_generator.state = state["env_rng"]
        self.obs, _ = self.env.reset()
        if "action_rng" in state:
            self.env.action_space.np_random.bit_generator.state = state["action_rng"]

    def close(self) -> None:
        self.env.close()


class OffPolicyLearner(Protocol):
    """What :func:`train_off_policy` needs of an agent (DDPG, TD3, SAC, DQN)."""

    algo: ClassVar[str]
    config: Any  # fields: env, total_steps, learning_starts, train_frequency,
    #              gradient_steps, batch_size, log_every, eval_every, checkpoint_every
    counters: dict  # steps, updates, episodes
    collector: Collector
    replay: Ring
    hook: ModelHook
    rng: np.random.Generator
    device: torch.device
    run_dir: Path
    console: Console

    def act(self, obs: np.ndarray) -> np.ndarray:
        """The exploring action for one observation (step 3 of the pseudocode)."""
        ...

    def update(self, batch: Any) -> dict[str, Tensor | float]:
        """One gradient step on a minibatch; returns the loss metrics."""
        ...

    def after_step(self, step: int) -> None:
        """Anything due after environment step ``step`` (DQN's target copy)."""
        ...

    def evaluate(self) -> dict[str, float]: ...

    def checkpoint(self, path: str | Path | None = None) -> Path: ...


def explore(learner: Any, obs: np.ndarray) -> np.ndarray:
    """Uniformly random actions before ``learning_starts``, then the stochastic policy."""
    if learner.counters["steps"] < learner.config.learning_starts:
        return learner.collector.random_action()
    return learner.predict(obs[None], deterministic=False)[0]


def train_off_policy(learner: OffPolicyLearner, total_steps: int | None = None) -> dict:
    """The training loop of the off-policy agents (their pseudocode's acting and
    learning lines), inside the one :class:`Run`.

    Trains until ``total_steps`` environment steps (default: the config's),
    counting steps already done; returns the last value of every metric.
    """
    config, counters = learner.config, learner.counters
    total = config.total_steps if total_steps is None else total_steps
    spec = RunSpec(learner.algo, config.env, config, learner.run_dir, total, counters["steps"],
                   counters["steps"])  # fmt: skip
    metrics: dict[str, float] = {}
    losses: dict[str, Any] = {}
    with Run(spec, learner.checkpoint, learner.console) as run:
        while run.going(counters["steps"]):
            # act, step, store, reset at episode ends
            episode = learner.collector.step(learner.act(learner.collector.obs))
            counters["steps"] = step = counters["steps"] + 1
            row = dict(episode)  # one progress.csv row per step at most
            counters["episodes"] += bool(episode)
            # learn from replay (or from what the model hook mixes in)
            if step > config.learning_starts and step % config.train_frequency == 0:
                for _ in range(config.gradient_steps):
                    batch = learner.hook.sample(learner.replay, config.batch_size, learner.rng)
                    if isinstance(batch, Batch):
                        batch = batch.to(learner.device)
                    losses = learner.update(batch)
            learner.after_step(step)
            if step % config.log_every == 0 and losses:
                row |= {**losses, "charts/SPS": run.speed(step)}
            # evaluate, checkpoint
            if crossed(step - 1, step, config.eval_every) or step == total:
                row |= learner.evaluate()
            if row:
                metrics.update(run.log(step, row))
            run.checkpoint_if_due(crossed(step - 1, step, config.checkpoint_every))
            if step % 100 == 0 or step == total:
                run.show(step, status_line(metrics))
    return metrics


def setup_off_policy(
    agent: Any,
    config: Any,
    replay: Ring,
    *,
    run_dir: str | Path | None,
    console: Console | None,
    model_hook: ModelHook | None = None,
    draw_reset_seed: bool = False,
) -> None:
    """The attributes every off-policy learner has besides its networks: config, console,
    device, RNGs, replay, hook, collector, counters, run folder (pseudocode line 1)."""
    agent.config = config
    agent.console = console or Console(quiet=True)
    agent.device = torch.device(config.device)
    agent.rng = np.random.default_rng(config.seed)
    agent.generator = torch.Generator(agent.device).manual_seed(config.seed)
    agent.replay, agent.hook = replay, model_hook or ReplayOnly()
    # DQN seeds its first episode from its generator (as it always has)
    reset_seed = int(agent.rng.integers(2**31)) if draw_reset_seed else None
    agent.collector = Collector(config.env, config.seed, replay, agent.hook, reset_seed)
    agent.counters = {"steps": 0, "updates": 0, "episodes": 0}
    agent.run_dir = (
        Path(run_dir) if run_dir else new_run_dir(config.run_dir, agent.algo, config.env)
    )


def training_parts(agent: Any) -> dict[str, Any]:
    """The checkpoint parts of an off-policy run besides the agent's own."""
    return {
        "replay": agent.replay,
        "rng": RngStates(agent.rng, agent.generator),
        "collector": agent.collector,
    }


def hook_parts(agent: Any, training: bool) -> dict[str, Any]:
    """The checkpoint parts of the agent's model hook (its model, and for training its
    optimiser, counters and RNGs), where it has any."""
    parts = getattr(agent.hook, "parts", None)
    return {} if parts is None else parts(training)


def setup_continuous(
    agent: Any,
    env: str,
    config: Any,
    *,
    run_dir: str | Path | None,
    console: Console | None,
    model_hook: ModelHook | None,
) -> tuple[int, int, np.ndarray, np.ndarray]:
    """:func:`setup_off_policy` for a continuous-action agent (DDPG, TD3, SAC): checks the
    spaces, seeds torch, makes the replay; returns (obs_dim, action_dim, low, high)."""
    obs_space, action_space = check_continuous_env(env, agent.algo.upper())
    config = agent.Config(env=env) if config is None else dataclasses.replace(config, env=env)
    agent.obs_shape = tuple(obs_space.shape)
    obs_dim, action_dim = int(np.prod(agent.obs_shape)), action_space.shape[0]
    torch.manual_seed(config.seed)
    replay = ReplayBuffer(config.buffer_size, agent.obs_shape, action_dim)
    setup_off_policy(agent, config, replay, run_dir=run_dir, console=console, model_hook=model_hook)
    attach = getattr(agent.hook, "attach", None)
    if attach is not None:  # a hook with a model of its own makes it for this env
        attach(agent, action_space)
    return obs_dim, action_dim, action_space.low, action_space.high


def off_policy_agent(cls: type) -> type:
    """Class decorator: the members the off-policy agents share, where the class does not
    define them itself: ``learn`` (:func:`train_off_policy`), ``evaluate``, ``act``
    (:func:`explore`), ``after_step`` (nothing), the class facts of a gymnasium agent,
    and the file verbs (:func:`mbrl.training.checkpoint.agent_files`)."""

    def learn(self, total_steps: int | None = None) -> dict[str, float]:
        """Train until ``total_steps`` environment steps (counting steps already done);
        the acting and learning lines are :func:`mbrl.training.offpolicy.train_off_policy`."""
        return train_off_policy(self, total_steps)

    def evaluate_agent(self) -> dict[str, float]:
        """Returns of the deterministic policy on fresh, seeded episodes (none where
        ``eval_episodes`` is 0)."""
        config = self.config
        if config.eval_episodes == 0:
            return {}
        returns = evaluate(config.env, self.predict, config.eval_episodes, config.seed + 10_000)
        return {"eval/mean_return": float(returns.mean()), "eval/std_return": float(returns.std())}

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Uniformly random before learning_starts, then the exploring policy."""
        return explore(self, obs)

    def after_step(self, step: int) -> None:
        pass

    members = {
        "learn": learn,
        "evaluate": evaluate_agent,
        "act": act,
        "after_step": after_step,
        "world_field": "env",
        "budget_fields": ("total_steps",),
    }
    for name, member in members.items():
        if name not in cls.__dict__:
            setattr(cls, name, member)
    return agent_files(cls)
