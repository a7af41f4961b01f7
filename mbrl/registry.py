"""Names of the training algorithms, resolved lazily (``mbrl train <name>``, ``mbrl bench``).

Every gymnasium agent class has the same surface (as Stable-Baselines3):
``Agent(env_id, config)``, ``learn(total_steps)``, ``predict(obs)``,
``save(path)`` / ``Agent.load(path)`` and ``Agent.resume(run_dir)``; its
config dataclass is ``Agent.Config`` with at least ``env``, ``total_steps``,
``seed`` and ``run_dir`` fields.
"""

from __future__ import annotations

import importlib

from mbrl.model import UnknownNameError

__all__ = ["AGENTS", "agent_class", "available_agents"]

AGENTS: dict[str, str] = {
    "vpg": "mbrl.algorithms.vpg:VPG",
    "a2c": "mbrl.algorithms.a2c:A2C",
    "ppo": "mbrl.algorithms.ppo:PPO",
    "trpo": "mbrl.algorithms.trpo:TRPO",
    "dqn": "mbrl.algorithms.dqn:DQN",
    "ddpg": "mbrl.algorithms.ddpg:DDPG",
    "td3": "mbrl.algorithms.td3:TD3",
    "sac": "mbrl.algorithms.sac:SAC",
}


def available_agents() -> list[str]:
    """Agents whose module exists in this installation."""
    out = []
    for name, target in AGENTS.items():
        module = target.split(":")[0]
        if importlib.util.find_spec(module) is not None:
            out.append(name)
    return out


def agent_class(name: str):
    if name not in AGENTS:
        raise UnknownNameError(
            f"unknown agent {name!r}; agents: {', '.join(available_agents())}, alphazero",
            name=name,
            known=available_agents(),
        )
    module, cls = AGENTS[name].split(":")
    return getattr(importlib.import_module(module), cls)
