"""Deep Deterministic Policy Gradient (DDPG): TD3's class with its three changes off.

Lillicrap et al. (2016), "Continuous control with deep reinforcement learning",
ICLR; the deterministic policy gradient of Silver et al. (2014). This is the
"OurDDPG" variant of Fujimoto et al. (2018) that CleanRL and Stable-Baselines3
also use: Gaussian instead of Ornstein-Uhlenbeck exploration noise, no batch
norm or weight decay, 256x256 networks, Adam 3e-4, uniform random actions
before learning starts.

    1. initialise actor mu_phi, critic Q, targets mu', Q' <- mu, Q,
       an empty replay buffer D
    2. for each environment step:
    3.   a = clip(mu_phi(s) + eps, low, high), eps ~ N(0, sigma) (uniform random
         before learning_starts)
    4.   step the env: r, s', terminated, truncated; store (s, a, r, s', terminated) in D
         (s' is the true final observation, so time limits bootstrap)
    5.   on terminated or truncated: log the episode and reset
    6.   after learning_starts, `gradient_steps` times:
    7.     sample a minibatch (s, a, r, s', d) from D
    8.     a' = mu'(s')
    9.     y = r + gamma (1 - d) Q'(s', a')
   10.     critic: minimise mean (Q(s, a) - y)^2
   11.     actor: maximise mean Q(s, mu_phi(s)) (the deterministic policy gradient)
   12.     Polyak-average mu' and Q': theta' <- (1 - tau) theta' + tau theta
   13.   every eval_every steps: evaluate mu_phi; every checkpoint_every steps: checkpoint
"""

from __future__ import annotations

from dataclasses import dataclass

from mbrl.agent import agent_variant
from mbrl.algorithms.td3 import TD3
from mbrl.training.config import (
    ActorCriticFields,
    DeviceFields,
    EnvFields,
    ReplayFields,
    RunFields,
    at_least,
)
from mbrl.training.offpolicy import validate_offpolicy_config

__all__ = ["DDPG", "DDPGConfig"]


@dataclass(frozen=True, kw_only=True)
class DDPGConfig(ActorCriticFields, ReplayFields, DeviceFields, RunFields, EnvFields):
    """DDPG (defaults: Fujimoto et al.'s OurDDPG / CleanRL for MuJoCo)."""

    exploration_noise: float = 0.1
    """Std of the Gaussian exploration noise, in units of the action scale; 0.05-0.3."""

    # TD3 without its three changes: one critic, no target smoothing, no delay.
    num_critics = 1
    policy_noise = 0.0
    noise_clip = 0.0
    policy_delay = 1

    def __post_init__(self):
        validate_offpolicy_config(self)
        at_least(self, 0, "exploration_noise")


DDPG = agent_variant(
    TD3,
    "DDPG",
    __name__,
    "DDPG on one gymnasium environment (the surface of :class:`mbrl.Agent`).",
    algo="ddpg",
    Config=DDPGConfig,
    FORMAT="mbrl.ddpg/1",
    step_cost=22.0,
)
