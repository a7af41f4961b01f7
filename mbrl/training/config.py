"""The one config validator: rules that every algorithm's ``__post_init__`` composes.

Each check raises ``ValueError("<Config>.<field> must ..., got <value>")``, naming
the field, so a bad flag fails at start with a message that says which.
:func:`check_run_fields` checks the fields that configs share (budget, seed,
evaluation, checkpoint and log cadences, device) wherever a config has them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ActorCriticFields",
    "DeviceFields",
    "EnvFields",
    "OnPolicyFields",
    "ReplayFields",
    "RunFields",
    "at_least",
    "check_device",
    "check_run_fields",
    "fail",
    "in_range",
    "positive",
]


def fail(config: Any, field: str, requirement: str) -> None:
    """Raise the ValueError of a bad field: ``<Config>.<field> must ...`` (a command's
    config, one that sets ``flag_names = True``, names the flag: ``--<field> must ...``)."""
    value = getattr(config, field)
    if getattr(type(config), "flag_names", False):
        name = "--" + field.replace("_", "-")
    else:
        name = f"{type(config).__qualname__}.{field}"
    raise ValueError(f"{name} must {requirement}, got {value!r}")


def at_least(config: Any, minimum: float, *fields: str) -> None:
    """Each of ``fields`` is >= ``minimum`` (None is allowed: an optional field)."""
    for field in fields:
        value = getattr(config, field)
        if value is not None and value < minimum:
            fail(config, field, f"be >= {minimum}")


def positive(config: Any, *fields: str) -> None:
    """Each of ``fields`` is > 0 (None is allowed)."""
    for field in fields:
        value = getattr(config, field)
        if value is not None and not value > 0:
            fail(config, field, "be > 0")


def in_range(
    config: Any, field: str, low: float, high: float, *, open_low=False, open_high=False
) -> None:
    value = getattr(config, field)
    ok_low = value > low if open_low else value >= low
    ok_high = value < high if open_high else value <= high
    if not (ok_low and ok_high):
        brackets = ("(" if open_low else "[", ")" if open_high else "]")
        fail(config, field, f"be in {brackets[0]}{low}, {high}{brackets[1]}")


def check_device(config: Any, field: str = "device") -> None:
    """A torch device this installation has (``cpu``, ``cuda``, ``cuda:1``, ``mps``)."""
    import torch

    name = getattr(config, field)
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        fail(config, field, "be a torch device such as cpu or cuda")
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available(),
        "mps": torch.backends.mps.is_available(),
    }.get(device.type, False)
    if not available:
        fail(config, field, f"name a device this installation has ({device.type} is not here)")
    if device.type == "cuda" and device.index is not None:
        if device.index >= torch.cuda.device_count():
            fail(config, field, f"name one of the {torch.cuda.device_count()} cuda devices")


def check_run_fields(config: Any) -> None:
    """The shared fields, where the config has them."""
    fields = {f.name for f in dataclasses.fields(config)}
    have = lambda *names: [name for name in names if name in fields]  # noqa: E731
    at_least(config, 1, *have("total_steps", "checkpoint_every", "log_every"))
    at_least(config, 0, *have("seed", "eval_every", "eval_episodes"))
    if "hidden_sizes" in fields and (not config.hidden_sizes or min(config.hidden_sizes) < 1):
        fail(config, "hidden_sizes", "be positive sizes")
    if "env" in fields and not config.env:
        fail(config, "env", "name a gymnasium environment")
    if "device" in fields:
        check_device(config)


# ------------------------------------------------------------------------ sections
# Fields that several algorithms share, each defined (and documented) once. An
# algorithm's config lists the sections it has as bases: the flags (``--seed``),
# config.json and ``config.seed`` stay flat. A config may redeclare a field to give
# it another default. Fields come in the order of the bases read from the last
# (list EnvFields last: --env and the budget come first in --help), and a base
# listed earlier overrides a later one's default (ActorCriticFields' env). All of
# them are validated by :func:`check_run_fields` or the family's validator.


@dataclass(frozen=True, kw_only=True)
class RunFields:
    """Every run: its seed and where its folder goes."""

    seed: int = 0
    """Seed of everything in the run (network init, sampling, environments)."""
    run_dir: str = "runs"
    """Folder under which the run folder ``<algo>-<world>-<time>`` is made."""


@dataclass(frozen=True, kw_only=True)
class DeviceFields:
    """Agents whose networks may live on an accelerator."""

    device: str = "cpu"
    """Torch device of the networks (cpu, cuda, cuda:1, mps); checked at start."""


@dataclass(frozen=True, kw_only=True)
class EnvFields:
    """Agents trained on a gymnasium environment: budget and cadences, in env steps."""

    env: str = "CartPole-v1"
    """Gymnasium environment id."""
    total_steps: int = 1_000_000
    """Environment steps to train for (all environments together); 1e4-1e7."""
    eval_every: int = 5_000
    """Environment steps between deterministic evaluations (0: only at the end)."""
    eval_episodes: int = 10
    """Episodes per evaluation (seeded, deterministic policy); 5-100, 0 disables."""
    checkpoint_every: int = 10_000
    """Environment steps between checkpoints (also every few minutes and at the end)."""
    log_every: int = 1_000
    """Environment steps between rows of losses and SPS in progress.csv."""


@dataclass(frozen=True, kw_only=True)
class ReplayFields:
    """Off-policy agents: the replay buffer and when to learn from it."""

    buffer_size: int = 1_000_000
    """Transitions kept in the replay buffer (oldest dropped first); 1e4-1e6."""
    learning_starts: int = 5_000
    """Environment steps (uniformly random for continuous agents) before the first update."""
    batch_size: int = 256
    """Transitions per gradient step; 32-512."""
    gamma: float = 0.99
    """Discount factor; 0.9-0.999."""
    tau: float = 0.005
    """Polyak coefficient of the target networks (1 = hard copy); 0.001-0.02."""
    train_frequency: int = 1
    """Environment steps between training phases; 1 (continuous control) to 256."""
    gradient_steps: int = 1
    """Gradient steps per training phase (the update-to-data ratio); 1-20."""


@dataclass(frozen=True, kw_only=True)
class ActorCriticFields:
    """Off-policy actor-critics (DDPG, TD3, SAC): a continuous default environment,
    network sizes and learning rates (listed before EnvFields, its ``env`` wins)."""

    env: str = "Pendulum-v1"
    """Gymnasium id of an environment with a Box action space (Pendulum-v1, HalfCheetah-v5)."""
    hidden_sizes: tuple[int, ...] = (256, 256)
    """Hidden layer widths of the actor and of each critic."""
    policy_lr: float = 3e-4
    """Adam learning rate of the actor; 1e-4-1e-3."""
    q_lr: float = 3e-4
    """Adam learning rate of the critics (CleanRL: 1e-3); 1e-4-1e-3."""


@dataclass(frozen=True, kw_only=True)
class OnPolicyFields:
    """On-policy agents (VPG, A2C, PPO, TRPO): rollouts, returns and observations."""

    num_envs: int = 1
    """Environments stepped in parallel (N); 1-64."""
    num_steps: int = 2048
    """Steps per environment per rollout (T); the batch is T * N; 5-4096."""
    gamma: float = 0.99
    """Discount factor; 0.9-0.999."""
    gae_lambda: float = 0.95
    """GAE lambda: 0 is one-step TD, 1 is Monte Carlo; 0.8-0.99."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of the policy and of the value MLP (tanh)."""
    log_std_init: float = 0.0
    """Initial log-std of a Box action space's Gaussian (SB3's log_std_init); -2 to 1."""
    normalize_obs: bool = False
    """Normalise observations with running mean and std (saved with the agent)."""
    normalize_reward: bool = False
    """Divide rewards by the running std of the discounted return, clipped to +-10
    (SB3 VecNormalize, CleanRL's MuJoCo PPO); evaluation returns stay raw."""
