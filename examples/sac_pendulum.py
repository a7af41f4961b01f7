"""Train SAC on Pendulum-v1 through the Python API, then save, load and act.

python examples/sac_pendulum.py               # 20k steps, about 3 minutes on one core
python examples/sac_pendulum.py --steps 3000  # the API only (too short to learn)
"""

import argparse
import tempfile

import gymnasium as gym
import torch

from mbrl.algorithms.sac import SAC


def main(steps: int = 20_000, seed: int = 1) -> None:
    torch.set_num_threads(1)  # small MLPs: one thread is about as fast as several
    with tempfile.TemporaryDirectory() as runs:
        config = SAC.Config(env="Pendulum-v1", total_steps=steps, seed=seed, run_dir=runs)
        agent = SAC("Pendulum-v1", config)
        result = agent.learn()  # logs to <run_dir>/progress.csv and TensorBoard
        print(f"evaluation return after {steps} steps: {result['eval/mean_return']:.1f}")
        path = agent.save(f"{runs}/sac.safetensors")
        agent = SAC.load(path)

    env = gym.make("Pendulum-v1")
    obs, _ = env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        action = agent.predict(obs[None])[0]  # batched: [B, obs] -> [B, action]
        obs, reward, terminated, truncated, _ = env.step(action)
        total, done = total + float(reward), terminated or truncated
    print(f"one episode with the loaded agent: {total:.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    main(args.steps, args.seed)
