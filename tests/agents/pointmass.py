"""A tiny 1-D point mass for the model-based agents' learning tests: position and
velocity, a force in [-1, 1], reward ``-x**2 - 0.01 a**2`` per step, 30 steps an episode.

Its dynamics are linear, ``x' = x + 0.1 v``, ``v' = v + 0.1 a`` (what an ensemble fits in
a few hundred transitions); a PD controller is the reference a planner should approach.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

ENV_ID = "mbrl-tests/PointMass-v0"


class PointMass(gym.Env):
    """Starts at x ~ U(-1, 1), v = 0; never terminates; truncated by the TimeLimit."""

    def __init__(self):
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.state = np.zeros(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.state = np.array([self.np_random.uniform(-1.0, 1.0), 0.0])
        return self.state.astype(np.float32), {}

    def step(self, action):
        force = float(np.clip(np.asarray(action).reshape(-1)[0], -1.0, 1.0))
        x, v = self.state
        reward = -(x**2) - 0.01 * force**2
        self.state = np.array([x + 0.1 * v, v + 0.1 * force])
        return self.state.astype(np.float32), reward, False, False, {}


def pd_action(obs: np.ndarray) -> np.ndarray:
    """``[B, 1]`` the reference controller's force for observations ``[B, 2]``."""
    return np.clip(-2.0 * obs[:, :1] - 2.0 * obs[:, 1:], -1.0, 1.0)


if ENV_ID not in gym.registry:
    gym.register(ENV_ID, entry_point=PointMass, max_episode_steps=30)
