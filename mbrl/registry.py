"""Names of the training algorithms, resolved lazily (``mbrl train <name>``, ``mbrl bench``).

Every class here has the surface of :class:`mbrl.agent.Agent`: ``Agent(world,
config)``, ``learn``, ``predict``, ``evaluate``, ``save``/``Agent.load``,
``Agent.resume``, and class facts (``world_field``, ``action_spaces``,
``budget_fields``, ``step_cost``) that the command line and the benchmark read.
A new algorithm is one file in ``mbrl/algorithms/`` and one line here.
"""

from __future__ import annotations

import importlib

from mbrl.model import UnknownNameError

__all__ = ["AGENTS", "agent_class", "available_agents", "gym_agents"]

AGENTS: dict[str, str] = {
    "vpg": "mbrl.algorithms.vpg:VPG",
    "a2c": "mbrl.algorithms.a2c:A2C",
    "ppo": "mbrl.algorithms.ppo:PPO",
    "trpo": "mbrl.algorithms.trpo:TRPO",
    "dqn": "mbrl.algorithms.dqn:DQN",
    "ddpg": "mbrl.algorithms.ddpg:DDPG",
    "td3": "mbrl.algorithms.td3:TD3",
    "sac": "mbrl.algorithms.sac:SAC",
    "mbpo": "mbrl.algorithms.mbpo:MBPO",
    "mve-ddpg": "mbrl.algorithms.mve:MVEDDPG",
    "mve-td3": "mbrl.algorithms.mve:MVETD3",
    "mve-sac": "mbrl.algorithms.mve:MVESAC",
    "steve-td3": "mbrl.algorithms.steve:STEVETD3",
    "steve-sac": "mbrl.algorithms.steve:STEVESAC",
    "metrpo": "mbrl.algorithms.metrpo:METRPO",
    "mbmpo": "mbrl.algorithms.mbmpo:MBMPO",
    "pets": "mbrl.algorithms.pets:PETS",
    "mbmf": "mbrl.algorithms.mbmf:MBMF",
    "alphazero": "mbrl.algorithms.alphazero:AlphaZero",
}


def available_agents() -> list[str]:
    """Agents whose module exists in this installation."""
    out = []
    for name, target in AGENTS.items():
        module = target.split(":")[0]
        if importlib.util.find_spec(module) is not None:
            out.append(name)
    return out


def agent_class(name: str) -> type:
    """The class registered as ``name``; UnknownNameError lists the known names."""
    if name not in AGENTS:
        raise UnknownNameError(
            f"unknown algorithm {name!r}; available: {', '.join(available_agents())}",
            name=name,
            known=available_agents(),
        )
    module, cls = AGENTS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def gym_agents(variants: bool = True) -> list[str]:
    """The agents trained on gymnasium environments; without ``variants``, not the
    agents that are another with a model hook built in (``mve-td3``: what ``mbrl bench``
    sweeps when no agents are named)."""
    return [
        name
        for name in available_agents()
        if agent_class(name).world_field == "env"
        and (variants or getattr(agent_class(name), "variant_of", None) is None)
    ]
