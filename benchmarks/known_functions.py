"""Error of the known reward and termination functions against the envs' own.

For every env of :func:`mbrl.models.known.covered_envs`, records N transitions of
``gymnasium.make(id)`` under uniformly random actions (``action_space.seed(seed)``,
``reset(seed=seed)``, reset after every terminated or truncated episode; Pendulum's
actions drawn from 1.5 times its box, to exercise the clip), then compares
``known.reward`` with the env's reward and ``known.termination`` with ``terminated``
on every transition. For the locomotion envs it also gives the error of the forward
velocity taken from ``next_obs`` alone (the x velocity at the end of the step), the
estimate the functions improve on, and the mean absolute forward velocity (the scale
of the forward reward). Prints a markdown table.

    python benchmarks/known_functions.py                     # N=5000, seed 0
    python benchmarks/known_functions.py --num-steps 20000 --seed 1
"""

from __future__ import annotations

import platform
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
import tyro

from mbrl.models.known import covered_envs, known_functions

_X_VELOCITY_COLUMN = {"HalfCheetah-v5": 8, "Hopper-v5": 5, "Walker2d-v5": 8, "Ant-v5": 13}
"""Where the observation holds the x velocity qvel[0]."""


@dataclass(frozen=True, kw_only=True)
class Config:
    num_steps: int = 5000
    """Transitions recorded per env."""
    seed: int = 0
    """Seed of the env's reset and of its action space."""


def record(env_id: str, num_steps: int, seed: int) -> dict[str, np.ndarray]:
    """N transitions of random actions: obs, action, reward, next_obs, terminated and
    the env's ``info["x_velocity"]`` (NaN where it gives none)."""
    env = gym.make(env_id)
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    rows: dict[str, list] = {
        k: [] for k in ("obs", "action", "reward", "next_obs", "terminated", "x_velocity")
    }
    for _ in range(num_steps):
        action = env.action_space.sample()
        if env_id == "Pendulum-v1":
            action = 1.5 * action
        next_obs, reward, terminated, truncated, info = env.step(action)
        for key, value in zip(
            rows,
            (obs, action, reward, next_obs, terminated, info.get("x_velocity", np.nan)),
            strict=True,
        ):
            rows[key].append(value)
        obs = next_obs
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()
    return {key: np.asarray(value) for key, value in rows.items()}


def measure(env_id: str, num_steps: int, seed: int) -> dict[str, float | int | str]:
    data = record(env_id, num_steps, seed)
    known = known_functions(env_id)
    obs, next_obs = torch.from_numpy(data["obs"]), torch.from_numpy(data["next_obs"])
    action = torch.from_numpy(data["action"])
    reward = known.reward(obs, action, next_obs).double().numpy()
    terminated = known.termination(obs, action, next_obs).numpy()
    error = np.abs(reward - data["reward"])
    row = {
        "env": env_id,
        "reward": "exact" if known.exact_reward else "approximate",
        "mean": float(error.mean()),
        "max": float(error.max()),
        "agree": int((terminated == data["terminated"]).sum()),
        "terminations": int(data["terminated"].sum()),
        "end_mean": "",
        "end_max": "",
        "speed": "",
    }
    column = _X_VELOCITY_COLUMN.get(env_id)
    if column is not None:
        end_error = np.abs(data["next_obs"][:, column] - data["x_velocity"])
        row["end_mean"], row["end_max"] = f"{end_error.mean():.3g}", f"{end_error.max():.3g}"
        row["speed"] = f"{np.abs(data['x_velocity']).mean():.3g}"
    return row


def main(config: Config) -> None:
    print(f"{platform.machine()}, gymnasium {gym.__version__}, torch {torch.__version__}")
    print(f"N={config.num_steps} transitions per env, seed {config.seed}\n")
    print(
        "| env | reward | mean abs error | max abs error | end velocity only: mean / max "
        "| mean abs forward velocity | termination agrees | terminations |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for env_id in covered_envs():
        r = measure(env_id, config.num_steps, config.seed)
        end = f"{r['end_mean']} / {r['end_max']}" if r["end_mean"] else "-"
        print(
            f"| {r['env']} | {r['reward']} | {r['mean']:.3g} | {r['max']:.3g} | {end} "
            f"| {r['speed'] or '-'} | {r['agree']}/{config.num_steps} | {r['terminations']} |"
        )


if __name__ == "__main__":
    main(tyro.cli(Config))
