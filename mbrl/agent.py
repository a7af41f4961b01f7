"""The one surface of every trainable agent (as Stable-Baselines3's verbs).

    agent = PPO("CartPole-v1", PPO.Config(total_steps=100_000))   # Agent(world, config)
    agent.learn()                       # or learn(total_steps): train, or continue
    agent.predict(obs)                  # actions for a batch of observations (game states)
    agent.evaluate()                    # {"eval/...": value}
    agent.save("ppo.pt"); PPO.load("ppo.pt")    # the agent: networks and config
    PPO.resume("runs/ppo-CartPole-v1-...")      # the whole training state of a run

The class says what it is, so the registry, the command line and ``mbrl bench``
read these facts instead of special-casing names: :attr:`Agent.algo`,
:attr:`Agent.world_field` (``"env"`` or ``"game"``), :attr:`Agent.action_spaces`,
:attr:`Agent.budget_fields` (what ``--resume`` may extend) and
:attr:`Agent.step_cost`. Every agent counts its steps in ``counters["steps"]``
(environment steps; moves for self-play) and defaults to seed 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

__all__ = ["DEFAULT_SEED", "Agent", "agent_variant"]

DEFAULT_SEED = 0


@runtime_checkable
class Agent(Protocol):
    """What every class of :data:`mbrl.registry.AGENTS` provides."""

    algo: ClassVar[str]
    """The name ``mbrl train`` takes (``sac``)."""
    Config: ClassVar[type]
    """The frozen config dataclass; its fields are the command-line flags."""
    FORMAT: ClassVar[str]
    """The format tag of its files (``mbrl.sac/1``)."""
    world_field: ClassVar[str]
    """The config field naming the world: ``env`` (gymnasium id) or ``game``."""
    action_spaces: ClassVar[frozenset[str]]
    """Action spaces it handles: ``discrete`` and/or ``continuous``."""
    budget_fields: ClassVar[tuple[str, ...]]
    """Config fields a resumed run may change (its budget); every other is the experiment."""
    step_cost: ClassVar[float]
    """Rough cost of a step against an on-policy agent's (orders the cells of a sweep)."""

    config: Any
    counters: dict
    run_dir: Path

    def learn(self, total_steps: int | None = None) -> dict[str, float]:
        """Train until ``total_steps`` steps (default: the config's), counting steps done."""
        ...

    def predict(self, obs: Any, deterministic: bool = True) -> np.ndarray:
        """Actions ``[B, ...]`` for a batch of observations (a game agent: of game states)."""
        ...

    def evaluate(self) -> dict[str, float]:
        """An evaluation as ``{"eval/<metric>": value}``."""
        ...

    def save(self, path: str | Path) -> Path:
        """Write the agent (networks, normalisers, config, counters) to ``path``."""
        ...

    def checkpoint(self, path: str | Path | None = None) -> Path:
        """Write the whole training state (default: ``run_dir/checkpoints/latest.safetensors``)."""
        ...

    def parts(self, training: bool = False) -> dict[str, Any]:
        """The named state of the agent (and with ``training``, of its run)."""
        ...

    @classmethod
    def world_of(cls, config: Any) -> str: ...

    @classmethod
    def load(cls, path: str | Path, **kwargs) -> Agent:
        """The agent of ``save``'s file, a checkpoint or a run folder."""
        ...

    @classmethod
    def resume(cls, run_dir: str | Path, console: Any = None, **kwargs) -> Agent:
        """The agent of a run folder with its training state; ``learn`` continues it."""
        ...


def agent_variant(base: type, name: str, module: str, doc: str, **facts: Any) -> type:
    """A new agent class with ``base``'s methods and other class facts (``algo``,
    ``Config``, ``FORMAT``, ...): a preset, not a subclass."""
    skip = {"__dict__", "__weakref__"}
    namespace = {k: v for k, v in base.__dict__.items() if k not in skip}
    namespace.update(facts, __doc__=doc, __qualname__=name, __module__=module)
    return type(name, (), namespace)
