"""Gymnasium environments for the agents: vector envs, observation normalisation, evaluation."""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np

from mbrl.model import UnknownNameError

__all__ = ["RunningMeanStd", "check_env_id", "evaluate", "make_env", "make_vector_env"]


def check_env_id(env_id: str) -> None:
    """Raise UnknownNameError (with close matches) for an id gymnasium does not know."""
    if env_id in gym.registry:
        return
    import difflib

    close = difflib.get_close_matches(env_id, list(gym.registry), n=5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise UnknownNameError(f"unknown environment {env_id!r}{hint}", name=env_id, known=close)


def make_env(env_id: str, seed: int | None = None, **kwargs) -> gym.Env:
    """One environment with episode statistics recorded (``info['episode']``)."""
    check_env_id(env_id)
    env = gym.wrappers.RecordEpisodeStatistics(gym.make(env_id, **kwargs))
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


def make_vector_env(env_id: str, num_envs: int, seed: int, **kwargs) -> gym.vector.VectorEnv:
    """``num_envs`` copies in one process (SyncVectorEnv), auto-reset on the next step."""
    check_env_id(env_id)
    fns: list[Callable[[], gym.Env]] = [lambda: gym.make(env_id, **kwargs) for _ in range(num_envs)]
    env = gym.vector.SyncVectorEnv(fns, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    env = gym.wrappers.vector.RecordEpisodeStatistics(env)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    return env


class RunningMeanStd:
    """Running mean and variance (parallel Welford / Chan et al.), for observation normalisation."""

    def __init__(self, shape: tuple[int, ...], epsilon: float = 1e-4):
        self.mean = np.zeros(shape, np.float64)
        self.var = np.ones(shape, np.float64)
        self.count = epsilon

    def update(self, batch: np.ndarray) -> None:
        mean, var, n = batch.mean(axis=0), batch.var(axis=0), batch.shape[0]
        delta = mean - self.mean
        total = self.count + n
        self.mean = self.mean + delta * n / total
        m2 = self.var * self.count + var * n + delta**2 * self.count * n / total
        self.var, self.count = m2 / total, total

    def normalize(self, x: np.ndarray, clip: float = 10.0) -> np.ndarray:
        return np.clip((x - self.mean) / np.sqrt(self.var + 1e-8), -clip, clip).astype(np.float32)

    def state_dict(self) -> dict:
        return {"mean": self.mean, "var": self.var, "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.mean, self.var, self.count = state["mean"], state["var"], state["count"]


def evaluate(
    env_id: str, act: Callable[[np.ndarray], np.ndarray], num_episodes: int, seed: int
) -> np.ndarray:
    """Returns of ``num_episodes`` episodes with the deterministic policy ``act(obs [1, ...])``."""
    env = make_env(env_id)
    returns = []
    for episode in range(num_episodes):
        obs, _ = env.reset(seed=seed + episode)
        done, total = False, 0.0
        while not done:
            action = act(obs[None])[0]
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return np.array(returns)
