"""One PETS planning step of mbrl-lib 0.2.0, timed: runs inside mbrl-lib's own virtualenv.

This file imports mbrl-lib's ``mbrl`` package (PyPI ``mbrl==0.2.0``), not this
project's, so it must run with the peer virtualenv's interpreter in isolated mode
(``python -I``, so that a ``mbrl`` folder in the working directory does not shadow
the installed one). ``benchmarks/vs_mbrllib_pets.py`` creates that virtualenv and
drives this script; it can also be run by hand::

    .venv-peers/mbrl-lib/bin/python -I benchmarks/peers/mbrllib_plan.py --repeats 3

The agent is built the way mbrl-lib's PETS example builds it: an omegaconf config
composed from its ``algorithm/pets.yaml``, ``dynamics_model/gaussian_mlp_ensemble.yaml``,
``action_optimizer/cem.yaml`` and ``overrides/pets_cartpole.yaml`` (device set to
the CPU), then ``create_one_dim_tr_model``, a ``ModelEnv`` over its continuous
cartpole with the known ``reward_fns.cartpole`` / ``termination_fns.cartpole``, and
``create_trajectory_optim_agent_for_model``. So: a ``GaussianMLP`` ensemble of 7
probabilistic members, 4 hidden layers of 200, SiLU, 5 elites (set as training
would set them), ``random_model`` propagation (what the PETS cartpole config uses;
``--propagation fixed_model`` is TS-inf proper), CEM with population 350, elite
ratio 0.1, 5 iterations, alpha 0.1, horizon 15, 20 particles. The weights are
untrained: the cost of a plan does not depend on them.

One planning step is ``agent.act(obs)`` (``replan_freq`` 1, so every call plans).

With ``--repeats N`` it times N calls, prints one JSON line and exits. With
``--serve`` it prints ``{"ready": ...}`` once built and warmed up, then answers each
line ``time N`` on stdin with one JSON line ``{"times": [...], "best": ...}`` (N
calls, seconds each), until ``quit`` or end of input.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def build_agent(args):
    import numpy as np
    import omegaconf
    import torch

    import mbrl
    import mbrl.env.cartpole_continuous as cartpole_env
    import mbrl.env.reward_fns as reward_fns
    import mbrl.env.termination_fns as termination_fns
    import mbrl.models
    import mbrl.planning
    import mbrl.util.common

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)  # random_model's randperm draws from the global generator
    cfg = omegaconf.OmegaConf.create(
        {
            "seed": args.seed,
            "device": "cpu",
            "debug_mode": False,
            # dynamics_model/gaussian_mlp_ensemble.yaml
            "dynamics_model": {
                "_target_": "mbrl.models.GaussianMLP",
                "_recursive_": False,  # hydra 1.0's instantiate, which mbrl-lib expects
                "device": "${device}",
                "num_layers": 4,
                "in_size": "???",
                "out_size": "???",
                "ensemble_size": 7,
                "hid_size": 200,
                "deterministic": False,
                "propagation_method": args.propagation,
                "learn_logvar_bounds": False,
                "activation_fn_cfg": {"_target_": "torch.nn.SiLU"},
            },
            # algorithm/pets.yaml
            "algorithm": {
                "name": "pets",
                "agent": {
                    "_target_": "mbrl.planning.TrajectoryOptimizerAgent",
                    "_recursive_": False,
                    "action_lb": "???",
                    "action_ub": "???",
                    "planning_horizon": "${overrides.planning_horizon}",
                    "optimizer_cfg": "${action_optimizer}",
                    "replan_freq": 1,
                    "verbose": "${debug_mode}",
                },
                "normalize": True,
                "normalize_double_precision": True,
                "target_is_delta": True,
                "initial_exploration_steps": "${overrides.trial_length}",
                "freq_train_model": "${overrides.freq_train_model}",
                "learned_rewards": "${overrides.learned_rewards}",
                "num_particles": args.num_particles,
            },
            # overrides/pets_cartpole.yaml
            "overrides": {
                "env": "cartpole_continuous",
                "learned_rewards": False,
                "trial_length": 200,
                "num_steps": 5000,
                "num_elites": 5,
                "model_lr": 7.5e-4,
                "model_wd": 3e-5,
                "model_batch_size": 256,
                "validation_ratio": 0,
                "freq_train_model": 50,
                "patience": 25,
                "num_epochs_train_model": 25,
                "planning_horizon": args.horizon,
                "cem_num_iters": args.num_iterations,
                "cem_elite_ratio": 0.1,
                "cem_population_size": args.population_size,
                "cem_alpha": 0.1,
                "cem_clipped_normal": False,
            },
            # action_optimizer/cem.yaml
            "action_optimizer": {
                "_target_": "mbrl.planning.CEMOptimizer",
                "num_iterations": "${overrides.cem_num_iters}",
                "elite_ratio": "${overrides.cem_elite_ratio}",
                "population_size": "${overrides.cem_population_size}",
                "alpha": "${overrides.cem_alpha}",
                "lower_bound": "???",
                "upper_bound": "???",
                "return_mean_elites": True,
                "device": "${device}",
                "clipped_normal": "${overrides.cem_clipped_normal}",
            },
        }
    )
    env = cartpole_env.CartPoleEnv()
    env.reset(seed=args.seed)
    obs_shape, act_shape = env.observation_space.shape, env.action_space.shape
    generator = torch.Generator(device=cfg.device).manual_seed(args.seed)
    dynamics_model = mbrl.util.common.create_one_dim_tr_model(cfg, obs_shape, act_shape)
    # Training would pick the elites (ModelTrainer calls set_elite with num_elites of
    # them); untrained, all 7 members would be propagated.
    dynamics_model.set_elite(list(range(cfg.overrides.num_elites)))
    model_env = mbrl.models.ModelEnv(
        env, dynamics_model, termination_fns.cartpole, reward_fns.cartpole, generator=generator
    )
    agent = mbrl.planning.create_trajectory_optim_agent_for_model(
        model_env, cfg.algorithm.agent, num_particles=cfg.algorithm.num_particles
    )
    obs = (0.05 * np.random.default_rng(args.seed).standard_normal(obs_shape[0])).astype(np.float32)
    info = {
        "mbrl_lib": getattr(mbrl, "__version__", "?"),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "propagation": args.propagation,
        "elites": len(dynamics_model.model.elite_models),
        "members": len(dynamics_model.model),
        "optimizer": cfg.action_optimizer._target_,
        "population_size": agent.optimizer.optimizer.population_size,
        "num_elites": int(agent.optimizer.optimizer.elite_num),
        "num_iterations": agent.optimizer.optimizer.num_iterations,
        "horizon": agent.optimizer.horizon,
        "num_particles": cfg.algorithm.num_particles,
    }
    return agent, obs, info


def time_acts(agent, obs, n: int, autocast: str = "float32") -> dict:
    """Seconds of ``n`` act() calls; ``autocast=bfloat16`` wraps them in
    ``torch.autocast`` (mbrl-lib has no precision option of its own)."""
    import torch

    low = autocast != "float32"
    times = []
    for _ in range(n):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=getattr(torch, autocast), enabled=low):
            agent.act(obs)
        times.append(time.perf_counter() - start)
    return {"times": times, "best": min(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed act() calls")
    parser.add_argument("--serve", action="store_true", help='answer "time N" lines on stdin')
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--population-size", type=int, default=350)
    parser.add_argument("--num-particles", type=int, default=20)
    parser.add_argument("--horizon", type=int, default=15)
    parser.add_argument("--num-iterations", type=int, default=5)
    parser.add_argument(
        "--propagation", choices=("random_model", "fixed_model"), default="random_model"
    )
    parser.add_argument("--autocast", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    agent, obs, info = build_agent(args)
    time_acts(agent, obs, 1, args.autocast)  # warm up
    info["autocast"] = args.autocast
    if not args.serve:
        print(
            json.dumps({**info, **time_acts(agent, obs, args.repeats, args.autocast)}), flush=True
        )
        return
    print(json.dumps({"ready": info}), flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "quit":
            break
        if words[0] == "time" and len(words) == 2 and words[1].isdigit():
            print(json.dumps(time_acts(agent, obs, int(words[1]), args.autocast)), flush=True)
        else:
            print(json.dumps({"error": f"unknown command {line.strip()!r}"}), flush=True)


if __name__ == "__main__":
    main()
