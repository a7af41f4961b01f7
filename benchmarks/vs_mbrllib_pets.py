"""One PETS planning step, side by side: this project's CEM against mbrl-lib 0.2.0's agent.

Both sides plan for one cartpole state at mbrl-lib's PETS cartpole settings: an
ensemble of 7 probabilistic 4x200 SiLU members (5 elites), 4 observation + 1 action
dims, the known reward and termination, CEM with population 350, 35 elites (ratio
0.1), 5 iterations, 20 particles, horizon 15, so 75 model steps of 7,000 rows per
plan. The weights are untrained (a plan's cost does not depend on them).

- ours: ``mbrl.planners.trajectory.CEM.plan`` through ``mbrl.models.LearnedModel``,
  TS-inf propagation, built as ``benchmarks/trajectory.py`` builds it;
- mbrl-lib: ``mbrl.planning.TrajectoryOptimizerAgent.act`` over a ``ModelEnv`` of a
  ``OneDTransitionRewardModel``/``GaussianMLP`` ensemble, built from its PETS
  configs (``benchmarks/peers/mbrllib_plan.py``), ``random_model`` propagation as
  its PETS cartpole config has it (TS1; the same model work per step as TS-inf).

mbrl-lib's PyPI package is also called ``mbrl``, so it lives in its own virtualenv,
``.venv-peers/mbrl-lib`` under the repository root, which this script creates when
it is missing (``--setup-only`` to do only that): ``python3.11 -m venv``, the CPU
build ``torch==2.13.0``, then mbrl-lib and what it needs at import with
``--no-deps``. mbrl-lib runs in one long-lived child process of that venv (built and
warmed up once, outside the timing), told over a pipe to time N ``act()`` calls.

Both sides on one torch thread (``OMP_NUM_THREADS=1`` in the child's environment
too). Timed in alternating windows: a few of our plans, then as many of mbrl-lib's,
``--windows`` times; a window's seconds per plan is its mean, and the best window of
each side counts. The matmul work of a plan is the same on both sides (2·rows·in·out
per layer, counted as ``benchmarks/trajectory.py`` counts it); its rate per second is
reported against the machine's fp32 ``torch.matmul`` rate on the same grouped shapes
(``benchmarks/_matmul.py``), measured in the same run, before and after the windows.

    python benchmarks/vs_mbrllib_pets.py                 # about a minute and a half
    python benchmarks/vs_mbrllib_pets.py --setup-only    # create the peer venv only
    python benchmarks/vs_mbrllib_pets.py --windows 8 --plans-per-window 3
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import tyro
from _matmul import matmul_rate
from trajectory import Config as TrajectoryConfig
from trajectory import layer_shapes, make_model

from mbrl.planners.trajectory import CEM, CEMConfig

ROOT = Path(__file__).resolve().parents[1]
PEER_SCRIPT = Path(__file__).resolve().parent / "peers" / "mbrllib_plan.py"
MBRL_LIB = "0.2.0"
# torch first, alone: a plain torch requirement would pull a multi-GB CUDA build.
PEER_TORCH = "torch==2.13.0"
# mbrl-lib pins hydra-core 1.0.3 / omegaconf 2.0 and pulls jupyter, tensorboard,
# matplotlib...; none of that is needed to plan, so --no-deps and what it imports.
PEER_PACKAGES = (
    f"mbrl=={MBRL_LIB}",
    "gymnasium==0.26.3",
    "numpy<2",
    "hydra-core==1.3.2",
    "omegaconf==2.3.0",
    "antlr4-python3-runtime==4.9.3",
    "pyyaml",
    "packaging",
    "termcolor",
    "tqdm",
    "cloudpickle",
    "farama-notifications",
    "typing-extensions",
)


@dataclass(frozen=True, kw_only=True)
class Config:
    windows: int = 5
    """Alternating timing windows per side; the best counts."""
    plans_per_window: int = 2
    """Plans in one window (its seconds per plan is their mean)."""
    population_size: int = 350
    """N (mbrl-lib's PETS cartpole); elites are a tenth of it, rounded up, on both sides."""
    num_particles: int = 20
    """P (PETS)."""
    horizon: int = 15
    """H (mbrl-lib's PETS cartpole)."""
    num_iterations: int = 5
    """CEM iterations (PETS)."""
    propagation: Literal["random_model", "fixed_model"] = "random_model"
    """mbrl-lib's propagation: random_model as its PETS cartpole config, or fixed_model (TS-inf)."""
    precision: Literal["float32", "bfloat16"] = "float32"
    """Our members' products in float32 (as mbrl-lib) or bfloat16 (LearnedModel's
    compute_dtype); the matmul rate is then measured in both."""
    peer_autocast: Literal["float32", "bfloat16"] = "float32"
    """mbrl-lib's act() as it is (float32), or wrapped in torch.autocast(bfloat16) by this
    benchmark (mbrl-lib has no precision option)."""
    threads: int = 1
    """torch threads, each side."""
    peer_venv: str = ".venv-peers/mbrl-lib"
    """mbrl-lib's virtualenv, relative to the repository root."""
    peer_python: str = "python3.11"
    """Interpreter that creates the peer virtualenv."""
    setup_only: bool = False
    """Create the peer virtualenv (when missing) and stop."""
    seed: int = 0


def peer_python(config: Config) -> Path:
    return ROOT / config.peer_venv / "bin" / "python"


def peer_ready(python: Path) -> bool:
    if not python.exists():
        return False
    check = f"import mbrl, mbrl.planning, mbrl.util.common; assert mbrl.__version__ == {MBRL_LIB!r}"
    # -I: the repository's own ``mbrl`` in the working directory must not shadow it.
    done = subprocess.run([python, "-I", "-c", check], cwd=ROOT, capture_output=True)
    return done.returncode == 0


def setup_peer(config: Config) -> Path:
    """Create mbrl-lib's virtualenv when missing (or incomplete); return its python."""
    python = peer_python(config)
    if peer_ready(python):
        print(f"peer venv: {config.peer_venv} (mbrl-lib {MBRL_LIB}) ready", flush=True)
        return python
    venv = ROOT / config.peer_venv
    if not python.exists():
        creator = shutil.which(config.peer_python) or config.peer_python
        print(f"peer venv: creating {config.peer_venv} with {config.peer_python}", flush=True)
        subprocess.run([creator, "-m", "venv", venv], check=True)
    pip = [python, "-I", "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    print(f"peer venv: installing {PEER_TORCH} (CPU build)", flush=True)
    subprocess.run([*pip, PEER_TORCH], check=True)
    print(f"peer venv: installing --no-deps {' '.join(PEER_PACKAGES)}", flush=True)
    subprocess.run([*pip, "--no-deps", *PEER_PACKAGES], check=True)
    if not peer_ready(python):
        raise SystemExit(f"peer venv: mbrl-lib {MBRL_LIB} still does not import in {venv}")
    print("peer venv: ready", flush=True)
    return python


class Peer:
    """mbrl-lib's agent in a long-lived child process of its virtualenv."""

    def __init__(self, python: Path, config: Config):
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        threads = str(config.threads)
        env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
        args = [
            f"--threads={config.threads}",
            f"--population-size={config.population_size}",
            f"--num-particles={config.num_particles}",
            f"--horizon={config.horizon}",
            f"--num-iterations={config.num_iterations}",
            f"--propagation={config.propagation}",
            f"--autocast={config.peer_autocast}",
            f"--seed={config.seed}",
        ]
        self.process = subprocess.Popen(
            [python, "-I", PEER_SCRIPT, "--serve", *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.info = self._read()["ready"]

    def _read(self) -> dict:
        for line in self.process.stdout:
            try:
                reply = json.loads(line)
            except json.JSONDecodeError:
                print(f"mbrl-lib: {line.rstrip()}")
                continue
            if "error" in reply:
                raise RuntimeError(f"mbrl-lib child: {reply['error']}")
            return reply
        raise RuntimeError(f"mbrl-lib child exited ({self.process.wait()})")

    def time(self, n: int) -> list[float]:
        self.process.stdin.write(f"time {n}\n")
        self.process.stdin.flush()
        return self._read()["times"]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.write("quit\n")
            self.process.stdin.close()
            self.process.wait(timeout=30)


def flops_of(ours: TrajectoryConfig, shapes, rows: int) -> float:
    """Matmul work of one plan: every iteration and horizon step, every row and layer."""
    return ours.num_iterations * ours.horizon * rows * sum(2 * i * o for i, o in shapes)


def main(config: Config) -> None:
    python = setup_peer(config)
    if config.setup_only:
        return
    torch.set_num_threads(config.threads)
    g = torch.Generator().manual_seed(config.seed)
    ours = TrajectoryConfig(
        population_size=config.population_size,
        num_elites=math.ceil(0.1 * config.population_size),
        num_particles=config.num_particles,
        horizon=config.horizon,
        num_iterations=config.num_iterations,
        threads=config.threads,
        seed=config.seed,
        precision=config.precision,
    )
    model = make_model(ours, g)
    planner = CEM(
        CEMConfig(
            horizon=ours.horizon,
            num_particles=ours.num_particles,
            population_size=ours.population_size,
            num_elites=ours.num_elites,
            num_iterations=ours.num_iterations,
        )
    )
    state = model.initial_state(0.05 * torch.randn(1, ours.obs_dim, generator=g))

    def plans(n: int) -> list[float]:
        times = []
        for _ in range(n):
            start = time.perf_counter()
            planner.reset()
            planner.plan(model, state, g)
            times.append(time.perf_counter() - start)
        return times

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cpus, torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch thread(s) each side"
    )
    shapes = layer_shapes(ours, model)
    rows = ours.population_size * ours.num_particles
    members = ours.num_elite_members
    low = getattr(torch, config.precision)
    peaks = [matmul_rate(shapes, members, -(-rows // members), g)]
    low_peaks = (
        []
        if low is torch.float32
        else [matmul_rate(shapes, members, -(-rows // members), g, dtype=low)]
    )
    print("starting mbrl-lib's child process (build and warm-up outside the timing)", flush=True)
    peer = Peer(python, config)
    try:
        info = peer.info
        theirs = (info["population_size"], info["num_elites"], info["num_particles"])
        assert theirs == (ours.population_size, ours.num_elites, ours.num_particles), info
        assert (info["horizon"], info["num_iterations"]) == (ours.horizon, ours.num_iterations)
        assert (info["members"], info["elites"]) == (ours.num_members, members), info
        plans(1)  # warm up
        windows: dict[str, list[float]] = {"ours": [], "mbrl-lib": []}
        for w in range(config.windows):
            for side, run in (("ours", plans), ("mbrl-lib", peer.time)):
                times = run(config.plans_per_window)
                windows[side].append(sum(times) / len(times))
            print(
                f"window {w + 1}/{config.windows}: ours {windows['ours'][-1]:.3f} s, "
                f"mbrl-lib {windows['mbrl-lib'][-1]:.3f} s per plan",
                flush=True,
            )
    finally:
        peer.close()
    peaks.append(matmul_rate(shapes, members, -(-rows // members), g))
    peak = max(peaks)
    if low_peaks:
        low_peaks.append(matmul_rate(shapes, members, -(-rows // members), g, dtype=low))
        low_peak = max(low_peaks)
        low_share = flops_of(ours, shapes, rows) / min(windows["ours"]) / low_peak
        print(
            f"{config.precision} matmul rate on the layer shapes: {low_peak / 1e9:.1f} "
            f"GFLOP/s (ours in {config.precision} reaches {low_share:.0%} of it)"
        )
    flops = flops_of(ours, shapes, rows)
    best = {side: min(seconds) for side, seconds in windows.items()}
    ratio = best["mbrl-lib"] / best["ours"]
    hidden = "x".join(map(str, ours.hidden_sizes))
    print(
        f"PETS cartpole plan: N={ours.population_size}, K={ours.num_elites}, "
        f"P={ours.num_particles}, H={ours.horizon}, {ours.num_iterations} iterations; "
        f"E={ours.num_members} ({members} elites), {hidden} SiLU, inputs "
        f"{ours.obs_dim}+{ours.action_dim}; ours TS-inf in {config.precision}, mbrl-lib "
        f"{info['propagation']} in {info['autocast']} "
        f"(mbrl-lib {info['mbrl_lib']}, torch {info['torch']}, {info['threads']} thread)"
    )
    print(
        f"matmul work {flops / 1e9:.1f} GFLOP per plan; torch.matmul on the layer shapes: "
        f"{peak / 1e9:.1f} GFLOP/s (before {peaks[0] / 1e9:.1f}, after {peaks[1] / 1e9:.1f}); "
        f"best of {config.windows} windows of {config.plans_per_window} plans each side"
    )

    def share(seconds: float) -> str:
        return f"{flops / seconds / 1e9:.1f} GFLOP/s ({flops / seconds / peak:.0%})"

    print("| s per plan, ours | s per plan, mbrl-lib | mbrl-lib / ours | ours | mbrl-lib |")
    print("|---|---|---|---|---|")
    print(
        f"| {best['ours']:.3f} | {best['mbrl-lib']:.3f} | {ratio:.2f}x | "
        f"{share(best['ours'])} | {share(best['mbrl-lib'])} |"
    )
    print(f"target (mbrl-lib / ours >= 2.5x): {'met' if ratio >= 2.5 else 'not met'}")


if __name__ == "__main__":
    main(tyro.cli(Config))
