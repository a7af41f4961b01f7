"""The one save/load implementation of every agent: agent files and training checkpoints.

An agent names its state as *parts* (modules, optimisers, tensors, anything with
``state_dict``/``load_state_dict``):

- ``agent.parts(training=False)``: what ``save`` writes and ``load`` reads:
  networks, optimisers, normalisers (enough to predict and to fine-tune);
- ``agent.parts(training=True)``: also the replay buffer, environments and
  RNG states, written to ``<run>/checkpoints/latest.safetensors`` so that ``resume``
  continues the run where it stopped.

A file is ``{"format": "mbrl.<algo>/<version>", "about": {algorithm, env or game,
observation and action spaces}, "config": ..., "counters": ..., "training": bool,
"state": {part: state}}``, written atomically as data only
(:mod:`mbrl.training.datafile`: safetensors tensors, the rest JSON; never unpickled).
Files of earlier versions are upgraded on load by the class's ``upgrade`` (old layouts) and by
:data:`COUNTER_ALIASES` (old step-counter names).
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any, ClassVar, Protocol

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from mbrl.training.datafile import OldFormatError
from mbrl.training.runs import (
    AGENT_FILE,
    LATEST,
    atomic_save,
    config_from_json,
    config_to_json,
    load_checkpoint,
)

__all__ = [
    "COUNTER_ALIASES",
    "Attributes",
    "Checkpointable",
    "RngStates",
    "StateDicts",
    "agent_files",
    "checkpoint_file",
    "describe",
    "load_agent",
    "pack_state",
    "read_agent_file",
    "resume_agent",
    "save_agent",
    "unpack_state",
]

#: Step-counter names of earlier versions; every agent now counts ``steps``.
COUNTER_ALIASES = {"env_steps": "steps", "global_step": "steps", "moves": "steps"}


class Checkpointable(Protocol):
    """What :func:`save_agent` and friends need of an agent class and its instances."""

    FORMAT: ClassVar[str]
    config: Any
    counters: dict

    def parts(self, training: bool = False) -> dict[str, Any]: ...


class RngStates:
    """A numpy Generator, an optional torch Generator and torch's global RNG as one part."""

    def __init__(self, rng: np.random.Generator, generator: torch.Generator | None = None):
        self.rng, self.generator = rng, generator

    def state_dict(self) -> dict:
        state = {"numpy": self.rng.bit_generator.state, "torch": torch.get_rng_state()}
        if self.generator is not None:
            state["generator"] = self.generator.get_state()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["numpy"]
        if self.generator is not None and "generator" in state:  # files of old DQNs have none
            self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch"])


class Attributes:
    """Named attributes of an object (dicts of numbers, lists, numbers) as one part: a
    dict is updated in place on load, anything else set anew."""

    def __init__(self, owner: Any, names: tuple[str, ...]):
        self.owner, self.names = owner, names

    def state_dict(self) -> dict:
        return {name: copy.deepcopy(getattr(self.owner, name)) for name in self.names}

    def load_state_dict(self, state: dict) -> None:
        for name in self.names:
            if name not in state:
                continue  # a file from before the attribute existed keeps the default
            current = getattr(self.owner, name)
            if isinstance(current, dict):
                current.update(state[name])
            else:
                setattr(self.owner, name, copy.deepcopy(state[name]))


class StateDicts:
    """Several parts (e.g. a dict of optimisers) as one part."""

    def __init__(self, parts: dict[str, Any]):
        self.parts = parts

    def state_dict(self) -> dict:
        return {name: part.state_dict() for name, part in self.parts.items()}

    def load_state_dict(self, state: dict) -> None:
        for name, part in self.parts.items():
            part.load_state_dict(state[name])


def pack_state(parts: dict[str, Any]) -> dict:
    """``{name: state}`` of modules, optimisers, buffers (anything with ``state_dict``), tensors."""
    return {
        name: part.detach().clone() if isinstance(part, Tensor) else part.state_dict()
        for name, part in parts.items()
    }


def unpack_state(parts: dict[str, Any], states: dict, where: str) -> None:
    """Load :func:`pack_state`'s output back in place; a missing part names the file."""
    for name, part in parts.items():
        if name not in states:
            raise ValueError(f"checkpoint {where} has no {name!r}")
        if isinstance(part, Tensor):
            with torch.no_grad():
                part.copy_(states[name])
        else:
            part.load_state_dict(states[name])


def checkpoint_file(path: str | Path, training: bool = False) -> Path:
    """The file behind ``path``: a file as it is; for a run folder, its
    ``checkpoints/latest.safetensors`` (the training state), or for the agent alone its
    small ``checkpoints/agent.safetensors`` where the run wrote one (else the latest
    serves). A folder of the old form (``latest.pt``) raises
    :class:`~mbrl.training.datafile.OldFormatError` naming the conversion."""
    path = Path(path)
    if not path.is_dir():
        return path
    folder = path / "checkpoints"
    latest, agent = folder / LATEST, folder / AGENT_FILE
    if not latest.exists() and not agent.exists() and (folder / "latest.pt").exists():
        raise OldFormatError(
            f"{path} holds a checkpoint of the old, pickled form ({folder / 'latest.pt'}), "
            f"which is not opened because unpickling can run code; if you trust it, "
            f"convert the run once with `mbrl convert {path}`"
        )
    return agent if not training and agent.exists() else latest


@functools.lru_cache(maxsize=64)
def _env_spaces(env_id: str) -> dict:
    env = gym.make(env_id)
    try:
        return {"observation": _space(env.observation_space), "action": _space(env.action_space)}
    finally:
        env.close()


def _space(space: gym.Space) -> dict:
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n)}
    if isinstance(space, gym.spaces.Box):
        return {"type": "Box", "shape": list(space.shape), "dtype": str(space.dtype),
                "low": space.low.tolist(), "high": space.high.tolist()}  # fmt: skip
    return {"type": type(space).__name__, "shape": list(space.shape or ())}


def describe(agent: Checkpointable) -> dict:
    """What a reader of the file sees before loading it: the algorithm, its world (env
    or game) and that world's observation and action spaces."""
    world = type(agent).world_of(agent.config)
    out = {"algorithm": type(agent).algo, type(agent).world_field: world}
    game = getattr(agent, "game", None)
    if hasattr(game, "spec"):
        spec = game.spec
        return out | {"observation": {"shape": list(spec.obs_shape)},
                      "action": {"type": "Discrete", "n": spec.num_actions}}  # fmt: skip
    return out | _env_spaces(world)


def save_agent(agent: Checkpointable, path: str | Path, training: bool = False) -> Path:
    """Write ``agent.parts(training)`` with its config and counters, atomically."""
    payload = {
        "format": agent.FORMAT,
        "about": describe(agent),
        "config": config_to_json(agent.config),
        "counters": dict(agent.counters),
        "training": training,
        "state": pack_state(agent.parts(training)),
    }
    return atomic_save(payload, path)


def read_agent_file(cls: type, path: str | Path) -> dict:
    """The payload of an agent file or checkpoint of ``cls``, upgraded to this version."""
    family = cls.FORMAT.rsplit("/", 1)[0]
    payload = load_checkpoint(path, family, prefix=True)
    upgrade = getattr(cls, "upgrade", None)
    if upgrade is not None and payload["format"] != cls.FORMAT:
        payload = upgrade(payload)
    payload["counters"] = {
        COUNTER_ALIASES.get(name, name): value for name, value in payload["counters"].items()
    }
    return payload


def load_agent(cls: type, path: str | Path, **kwargs) -> Any:
    """``cls`` rebuilt from the config in ``path`` (an agent file, a checkpoint or a run
    folder), then its agent parts loaded; keyword arguments go to the constructor."""
    file = checkpoint_file(path)
    payload = read_agent_file(cls, file)
    config = config_from_json(cls.Config, payload["config"])
    agent = cls(cls.world_of(config), config, **kwargs)
    unpack_state(agent.parts(training=False), payload["state"], str(file))
    agent.counters = {**agent.counters, **payload["counters"]}
    return agent


def resume_agent(cls: type, run_dir: str | Path, **kwargs) -> Any:
    """``cls`` with the whole training state of ``run_dir/checkpoints/latest.safetensors``."""
    run_dir = Path(run_dir)
    file = checkpoint_file(run_dir, training=True)
    payload = read_agent_file(cls, file)
    if not payload.get("training", True):
        raise ValueError(f"{file} holds an agent without its training state; it cannot resume")
    config = config_from_json(cls.Config, payload["config"])
    agent = cls(cls.world_of(config), config, run_dir=run_dir, **kwargs)
    unpack_state(agent.parts(training=True), payload["state"], str(file))
    agent.counters = {**agent.counters, **payload["counters"]}
    return agent


def agent_files(cls: type) -> type:
    """Class decorator: the file verbs of the agent surface, the same for every agent.

    Adds ``save(path)``, ``checkpoint(path=None)``, ``checkpoint_path``,
    ``Agent.load(path, **kwargs)``, ``Agent.resume(run_dir, console, **kwargs)``
    and ``Agent.world_of(config)`` where the class does not define them itself; the
    class provides ``FORMAT``, ``world_field``, ``config``, ``counters``,
    ``run_dir`` and ``parts(training)``.
    """

    def save(self, path: str | Path) -> Path:
        """Write the agent (networks, optimisers, normalisers, config, counters) to ``path``."""
        return save_agent(self, path, training=False)

    def checkpoint(self, path: str | Path | None = None) -> Path:
        """Write the whole training state (default ``run_dir/checkpoints/latest.safetensors``)."""
        return save_agent(self, path or self.checkpoint_path, training=True)

    def checkpoint_path(self) -> Path:
        return Path(self.run_dir) / "checkpoints" / LATEST

    def load(cls, path: str | Path, **kwargs):
        """The agent of ``save``'s file, a checkpoint or a run folder (keyword arguments
        go to the constructor)."""
        return load_agent(cls, path, **kwargs)

    def resume(cls, run_dir: str | Path, console=None, **kwargs):
        """The agent of a run folder with its whole training state; ``learn`` continues."""
        return resume_agent(cls, run_dir, console=console, **kwargs)

    def world_of(cls, config) -> str:
        return getattr(config, cls.world_field)

    verbs = {
        "save": save,
        "checkpoint": checkpoint,
        "checkpoint_path": property(checkpoint_path),
        "load": classmethod(load),
        "resume": classmethod(resume),
        "world_of": classmethod(world_of),
    }
    for name, verb in verbs.items():
        if name not in cls.__dict__:
            setattr(cls, name, verb)
    return cls
