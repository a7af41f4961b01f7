"""Benchmark sweeps: agents x environments x seeds, each cell one run folder.

    sweeps/<name>-<time>/
        sweep.json                       the sweep config, the cells and the skipped pairs
        <agent>-<env>-seed<k>/           one run folder per cell (config.json, progress.csv,
            cell.json                    TensorBoard events, checkpoints/latest.safetensors) plus
            log.txt                      what the cell printed (local backend)
            done                         written when the cell finished (its last evaluation)

How a sweep runs:

    1. expand the config (or a named suite) into cells; drop the pairs whose action
       space the agent cannot handle (DQN: discrete only; SAC/TD3/DDPG: continuous only)
    2. for every cell without a ``done`` file, in up to ``num_workers`` at once:
    3.   a cell with ``checkpoints/latest.safetensors`` continues via ``Agent.resume``; any other
         starts fresh via ``Agent(env, Agent.Config(...), run_dir=cell)``
    4.   ``agent.learn(total_steps)``, then write ``done``

so a killed sweep, run again with ``--resume <sweep folder>``, reruns no finished cell.
The local backend runs each cell in its own process
(``python -m mbrl.evaluation.bench cell <dir>``), so a crash or an out-of-memory kill
loses one cell, never the sweep; ``num_workers=0`` runs the cells one by one in this
process. The Ray backend runs each cell as a
``ray.remote`` task (a local Ray, or the cluster of ``RAY_ADDRESS``; the sweep folder
must then be on a file system every node sees).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import tyro
from rich.console import Console

from mbrl.training.config import at_least
from mbrl.training.runs import LATEST, config_from_json

__all__ = [
    "ENV_DEFAULTS",
    "SUITES",
    "SUITE_AGENTS",
    "Backend",
    "BenchConfig",
    "Cell",
    "plan_cells",
    "run_cell",
    "run_order",
    "run_sweep",
]

#: Named suites: the environments and a budget (environment steps) for each.
SUITES: dict[str, dict[str, int]] = {
    "quick": {"Pendulum-v1": 20_000, "InvertedPendulum-v5": 20_000, "CartPole-v1": 50_000},
    "mujoco": {
        "HalfCheetah-v5": 1_000_000,
        "Hopper-v5": 1_000_000,
        "Walker2d-v5": 1_000_000,
        "Ant-v5": 1_000_000,
    },
}
#: Config fields given, per environment, to the agents whose configs have them (before
#: --overrides): on MuJoCo the on-policy agents normalise observations and rewards,
#: as CleanRL's and the RL Zoo's MuJoCo settings do.
ENV_DEFAULTS: dict[str, dict[str, Any]] = {
    env: {"normalize_obs": True, "normalize_reward": True} for env in SUITES["mujoco"]
}
#: Per suite, the settings of the agents that a suite's default budget does not fit:
#: ``total_steps`` (this agent's budget on every env of the suite) and config fields
#: (before --overrides). The model-based agents of the quick suite learn the pendulums in
#: far fewer real steps than the model-free ones but cost far more per step, so they
#: run 2,000 real steps with their models and imaginations scaled to 2 cores (smaller
#: members, fewer imagined rollouts, shorter imagined episodes). MB-MF keeps the
#: model-free budget: its MPC stage is short and its fine-tuning is PPO.
SUITE_AGENTS: dict[str, dict[str, dict[str, Any]]] = {
    "quick": {
        "pets": {
            "total_steps": 2_000,
            "population_size": 100,
            "num_elites": 10,
            "num_particles": 5,
            "ensemble_size": 5,
            "model_elites": 5,
            "model_hidden_sizes": [200, 200, 200],
        },
        "mbpo": {
            "total_steps": 2_000,
            "learning_starts": 500,
            "gradient_steps": 10,
            "rollout_batch_size": 10_000,
            "ensemble_size": 5,
            "model_elites": 5,
            "model_hidden_sizes": [200, 200, 200],
        },
        "metrpo": {
            "total_steps": 2_000,
            "model_train_every": 500,
            "model_hidden_sizes": [200, 200],
            "imagined_envs": 50,
            "imagined_horizon": 100,
            "max_policy_iterations": 100,
            "policy_patience": 15,
            "start_pool": 200,
            "validation_starts": 20,
        },
        "mbmpo": {
            "total_steps": 2_000,
            "initial_random_steps": 500,
            "model_train_every": 500,
            "model_hidden_sizes": [200, 200],
            "meta_batch_size": 10,
            "imagined_rollouts": 10,
            "imagined_horizon": 100,
            "start_pool": 200,
        },
        "mbmf": {"mpc_steps": 1_000, "initial_random_steps": 300, "dagger_steps": 300},
        # the value-expansion variants (when named): 10k steps, learning from 1,000
        **{
            name: {"total_steps": 10_000, "learning_starts": 1_000}
            for name in ("mve-ddpg", "mve-td3", "mve-sac", "steve-td3", "steve-sac")
        },
    },
}
#: Budget of an environment that no suite names.
DEFAULT_STEPS = 100_000


class Backend(Enum):
    LOCAL = "local"
    """Cells as separate local processes (num_workers at once)."""
    RAY = "ray"
    """Cells as Ray tasks (``pip install 'mbrl[ray]'``; RAY_ADDRESS for a cluster)."""


@dataclass(frozen=True, kw_only=True)
class BenchConfig:
    """Run agents x environments x seeds, one run folder per cell; a killed sweep resumes."""

    suite: str | None = None
    """Named suite: quick (Pendulum, InvertedPendulum, CartPole) or mujoco (HalfCheetah,
    Hopper, Walker2d, Ant); gives envs and budgets unless --envs is set."""
    agents: tuple[str, ...] = ()
    """Agents to run (empty: every agent of this installation but the value-expansion
    variants mve-*, steve-*, which run when named; see `mbrl train --help`)."""
    envs: tuple[str, ...] = ()
    """Gymnasium ids (empty: the suite's, or CartPole-v1)."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Seeds; every agent runs every env once per seed (3-10)."""
    total_steps: int | None = None
    """Environment steps per cell (None: the suite's budget for the env, else 100k)."""
    num_evals: int = 20
    """Evaluations per cell (sets the agent's eval_every to total_steps / num_evals)."""
    overrides: tuple[str, ...] = ()
    """Agent config fields, as agent.field=value (e.g. dqn.learning_starts=1000)."""
    name: str | None = None
    """Sweep name, the folder prefix (None: the suite's name, else 'sweep')."""
    root: str = "sweeps"
    """Folder under which the sweep folder <name>-<time> is made."""
    resume: str | None = None
    """A sweep folder to continue: its own config is used, finished cells are kept."""
    backend: Annotated[Backend, tyro.conf.EnumChoicesFromValues] = Backend.LOCAL
    """local (separate processes on this machine) or ray (ray.remote tasks)."""
    num_workers: int = 2
    """Cells run at once (0: one by one inside this process); about cores / threads."""
    threads_per_cell: int = 1
    """Torch threads of each cell (small MLPs: 1)."""
    dry_run: bool = False
    """Only list the cells (and the skipped pairs); run nothing, write nothing."""

    flag_names = True  # errors name the flags (--num-evals)

    def __post_init__(self):
        if self.suite is not None and self.suite not in SUITES:
            raise ValueError(f"--suite must be one of {', '.join(SUITES)}, got {self.suite!r}")
        if not self.seeds:
            raise ValueError("--seeds needs at least one seed")
        at_least(self, 1, "total_steps", "num_evals", "threads_per_cell")
        at_least(self, 0, "num_workers")
        for item in self.overrides:
            _, dot, rest = item.partition(".")
            if not dot or "=" not in rest:
                raise ValueError(f"--overrides wants agent.field=value, got {item!r}")
        if isinstance(self.backend, str):  # from JSON
            object.__setattr__(self, "backend", Backend(self.backend))
        for name in ("agents", "envs", "seeds", "overrides"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    def budget(self, env: str, agent: str | None = None) -> int:
        if self.total_steps is not None:
            return self.total_steps
        if agent is not None and "total_steps" in self.suite_settings(agent):
            return self.suite_settings(agent)["total_steps"]
        for suite in SUITES.values():
            if env in suite:
                return suite[env]
        return DEFAULT_STEPS

    def suite_settings(self, agent: str) -> dict[str, Any]:
        """The suite's own settings of ``agent`` (:data:`SUITE_AGENTS`), or none."""
        return SUITE_AGENTS.get(self.suite or "", {}).get(agent, {})

    def env_ids(self) -> tuple[str, ...]:
        if self.envs:
            return self.envs
        return tuple(SUITES[self.suite]) if self.suite else ("CartPole-v1",)

    def agent_overrides(self, agent: str) -> dict[str, Any]:
        out = {}
        for item in self.overrides:
            name, _, rest = item.partition(".")
            field, _, text = rest.partition("=")
            if name == agent:
                try:
                    out[field] = json.loads(text)
                except json.JSONDecodeError:
                    out[field] = text
        return out


@dataclass(frozen=True, kw_only=True)
class Cell:
    """One run of the sweep: ``agent`` (``target`` = "module:Class") on ``env`` with ``seed``."""

    agent: str
    target: str
    env: str
    seed: int
    total_steps: int
    config: dict
    """Agent.Config fields besides env, seed and total_steps."""

    @property
    def name(self) -> str:
        env = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.env.replace(":", "-"))
        return f"{self.agent}-{env}-seed{self.seed}"


# ------------------------------------------------------------------ planning


def action_kind(env_id: str) -> str:
    """'discrete' or 'continuous' (Box) for a gymnasium id."""
    import gymnasium as gym

    from mbrl.training.envs import check_env_id

    check_env_id(env_id)
    env = gym.make(env_id)
    space = env.action_space
    env.close()
    if isinstance(space, gym.spaces.Discrete):
        return "discrete"
    if isinstance(space, gym.spaces.Box):
        return "continuous"
    return type(space).__name__


def plan_cells(config: BenchConfig) -> tuple[list[Cell], list[str]]:
    """The cells of a sweep and a note for every (agent, env) pair that is skipped."""
    from mbrl.registry import AGENTS, agent_class, gym_agents

    agents = config.agents or tuple(gym_agents(variants=False))
    classes = {agent: agent_class(agent) for agent in agents}  # unknown names raise here
    kinds = {env: action_kind(env) for env in config.env_ids()}
    cells, skipped = [], []
    for env in config.env_ids():
        for agent in agents:
            cls = classes[agent]
            budget = config.budget(env, agent)
            if kinds[env] not in cls.action_spaces:
                skipped.append(f"{agent} on {env}: {agent} does not handle {kinds[env]} actions")
                continue
            fields = {f.name for f in dataclasses.fields(cls.Config)}
            extra: dict[str, Any] = {}
            if "eval_every" in fields:
                extra["eval_every"] = max(1, budget // config.num_evals)
            if "checkpoint_every" in fields:
                extra["checkpoint_every"] = max(1, budget // 10)
            defaults = ENV_DEFAULTS.get(env, {})
            extra.update({k: v for k, v in defaults.items() if k in fields})
            suite = {k: v for k, v in config.suite_settings(agent).items() if k != "total_steps"}
            extra.update(suite)
            overrides = config.agent_overrides(agent)
            unknown = set(overrides) - fields
            if unknown:
                raise ValueError(
                    f"--overrides: {agent}'s config has no field {', '.join(sorted(unknown))}"
                )
            extra.update(overrides)
            # A bad value fails now, naming its field, not hours into the sweep.
            config_from_json(
                cls.Config, {"env": env, "seed": config.seeds[0], "total_steps": budget, **extra}
            )
            for seed in config.seeds:
                cells.append(
                    Cell(
                        agent=agent,
                        target=AGENTS[agent],
                        env=env,
                        seed=seed,
                        total_steps=budget,
                        config=extra,
                    )
                )
    return cells, skipped


def run_order(cells: list[Cell]) -> list[Cell]:
    """Longest cells first (steps x the agent class's ``step_cost``), so that the workers
    run out of work at about the same time; ties keep their planned order."""
    from mbrl.registry import agent_class

    return sorted(cells, key=lambda c: -c.total_steps * agent_class(c.agent).step_cost)


def cell_state(cell_dir: Path) -> str:
    """'done', 'partial' (a checkpoint to resume; one of the old, pickled form too, which
    resuming refuses with the conversion command) or 'new'."""
    if (cell_dir / "done").exists():
        return "done"
    if any((cell_dir / "checkpoints" / name).exists() for name in (LATEST, "latest.pt")):
        return "partial"
    return "new"


# ------------------------------------------------------------------ one cell


def run_cell(cell_dir: str | Path, threads: int = 1) -> dict[str, float]:
    """Run (or continue) the cell described by ``cell_dir/cell.json``; write ``done``."""
    import importlib

    import torch

    torch.set_num_threads(threads)
    cell_dir = Path(cell_dir)
    cell = Cell(**json.loads((cell_dir / "cell.json").read_text()))
    module, name = cell.target.split(":")
    cls = getattr(importlib.import_module(module), name)
    started = time.perf_counter()
    if cell_state(cell_dir) == "partial":
        agent = cls.resume(cell_dir)
    else:
        fields = {"env": cell.env, "seed": cell.seed, "total_steps": cell.total_steps}
        config = config_from_json(cls.Config, fields | cell.config)  # enums from their values
        agent = cls(cell.env, config, run_dir=cell_dir)
    result = {k: float(v) for k, v in (agent.learn(cell.total_steps) or {}).items()}
    result["seconds"] = time.perf_counter() - started
    tmp = cell_dir / "done.tmp"
    tmp.write_text(json.dumps(result, indent=2))
    os.replace(tmp, cell_dir / "done")
    return result


# ------------------------------------------------------------------ the sweep


def new_sweep_dir(config: BenchConfig) -> Path:
    name = config.name or config.suite or "sweep"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path(config.root) / f"{name}-{stamp}"
    suffix = 1
    while path.exists():
        suffix += 1
        path = Path(config.root) / f"{name}-{stamp}-{suffix}"
    return path


def _config_json(config: BenchConfig) -> dict:
    out = dataclasses.asdict(config)
    out["backend"] = config.backend.value
    out["resume"] = None
    return out


def load_sweep(sweep_dir: str | Path) -> tuple[BenchConfig, list[Cell], list[str]]:
    """The config, cells and skipped pairs recorded in ``sweep_dir/sweep.json``."""
    path = Path(sweep_dir) / "sweep.json"
    if not path.exists():
        raise FileNotFoundError(f"no sweep at {sweep_dir} (no sweep.json)")
    data = json.loads(path.read_text())
    cells = [Cell(**cell) for cell in data["cells"]]
    return BenchConfig(**data["config"]), cells, data["skipped"]


def run_sweep(
    config: BenchConfig, console: Console | None = None, sweep_dir: str | Path | None = None
) -> Path:
    """Run every unfinished cell of a new sweep (or of ``config.resume``); the sweep folder."""
    console = console or Console(quiet=True)
    if config.resume or sweep_dir:
        sweep_dir = Path(sweep_dir or config.resume)
        saved, cells, skipped = load_sweep(sweep_dir)
        # The saved sweep decides what runs; this call decides how.
        config = dataclasses.replace(
            saved,
            backend=config.backend,
            num_workers=config.num_workers,
            threads_per_cell=config.threads_per_cell,
        )
    else:
        cells, skipped = plan_cells(config)
        if config.dry_run:
            for cell in cells:
                console.print(f"{cell.name}: {cell.total_steps:,} steps {cell.config}")
            for note in skipped:
                console.print(f"skipped {note}")
            return new_sweep_dir(config)
        sweep_dir = new_sweep_dir(config)
        sweep_dir.mkdir(parents=True)
        data = {
            "config": _config_json(config),
            "cells": [dataclasses.asdict(c) for c in cells],
            "skipped": skipped,
        }
        (sweep_dir / "sweep.json").write_text(json.dumps(data, indent=2))
    sweep_dir = sweep_dir.resolve()
    for note in skipped:
        console.print(f"skipped {note}")
    todo = []
    for cell in run_order(cells):
        cell_dir = sweep_dir / cell.name
        cell_dir.mkdir(exist_ok=True)
        (cell_dir / "cell.json").write_text(json.dumps(dataclasses.asdict(cell), indent=2))
        if cell_state(cell_dir) != "done":
            todo.append(cell_dir)
    console.print(
        f"sweep {sweep_dir}: {len(cells)} cells, {len(cells) - len(todo)} already done, "
        f"{len(todo)} to run ({config.backend.value}, {config.num_workers} at once)"
    )
    if config.backend is Backend.RAY:
        failed = _run_ray(todo, config, console)
    elif config.num_workers == 0:
        failed = _run_inline(todo, config, console)
    else:
        failed = _run_processes(todo, config, console)
    if failed:
        console.print(f"[red]{len(failed)} cells failed[/red]: " + ", ".join(failed))
    console.print(f"report: mbrl report {sweep_dir}")
    return sweep_dir


def _run_inline(todo: list[Path], config: BenchConfig, console: Console) -> list[str]:
    import torch

    threads, failed = torch.get_num_threads(), []
    try:
        for cell_dir in todo:
            try:
                result = run_cell(cell_dir, config.threads_per_cell)
                console.print(f"done {cell_dir.name}: {_summary(result)}")
            except Exception as error:  # one broken cell must not end the sweep
                console.print(f"[red]failed[/red] {cell_dir.name}: {error!r}")
                failed.append(cell_dir.name)
    finally:
        torch.set_num_threads(threads)
    return failed


def _child_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    # The child imports what this process can (a test's agent, an uninstalled checkout).
    paths = [p for p in [os.getcwd(), *sys.path] if p and os.path.isdir(p)]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = str(threads)
    return env


def _run_processes(todo: list[Path], config: BenchConfig, console: Console) -> list[str]:
    """Each cell a child process; at most ``num_workers`` alive at once."""
    env = _child_env(config.threads_per_cell)
    pending = list(todo)
    running: dict[Path, tuple[subprocess.Popen, Any]] = {}
    failed = []
    try:
        while pending or running:
            while pending and len(running) < config.num_workers:
                cell_dir = pending.pop(0)
                log = (cell_dir / "log.txt").open("a")
                command = [sys.executable, "-m", "mbrl.evaluation.bench", "cell", str(cell_dir)]
                command.append(str(config.threads_per_cell))
                process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
                running[cell_dir] = (process, log)
                console.print(f"started {cell_dir.name} (pid {process.pid})")
            time.sleep(0.2)
            for cell_dir, (process, log) in list(running.items()):
                if process.poll() is None:
                    continue
                log.close()
                del running[cell_dir]
                if process.returncode == 0 and cell_state(cell_dir) == "done":
                    result = json.loads((cell_dir / "done").read_text())
                    console.print(f"done {cell_dir.name}: {_summary(result)}")
                else:
                    console.print(
                        f"[red]failed[/red] {cell_dir.name} (exit {process.returncode}), "
                        f"see {cell_dir / 'log.txt'}"
                    )
                    failed.append(cell_dir.name)
    finally:  # interrupted: stop the children we started; their checkpoints remain
        for process, _ in running.values():
            process.terminate()
        for process, log in running.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
            log.close()
    return failed


def _run_ray(todo: list[Path], config: BenchConfig, console: Console) -> list[str]:
    try:
        import ray
    except ImportError as error:
        raise ImportError("--backend ray needs Ray: pip install 'mbrl[ray]'") from error
    if not ray.is_initialized():
        if os.environ.get("RAY_ADDRESS"):
            ray.init()
        else:
            num_cpus = max(1, config.num_workers) * config.threads_per_cell
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    remote = ray.remote(num_cpus=config.threads_per_cell, max_retries=0)(run_cell)
    futures = {remote.remote(str(d), config.threads_per_cell): d for d in todo}
    failed = []
    while futures:
        ready, _ = ray.wait(list(futures), num_returns=1)
        cell_dir = futures.pop(ready[0])
        try:
            console.print(f"done {cell_dir.name}: {_summary(ray.get(ready[0]))}")
        except Exception as error:
            console.print(f"[red]failed[/red] {cell_dir.name}: {error}")
            failed.append(cell_dir.name)
    return failed


def _summary(result: dict) -> str:
    return "  ".join(f"{k.split('/')[-1]} {v:.4g}" for k, v in result.items())


def main(argv: list[str]) -> None:
    """``python -m mbrl.evaluation.bench cell <cell dir> [threads]``: one cell, in this process."""
    if len(argv) < 2 or argv[0] != "cell":
        raise SystemExit("usage: python -m mbrl.evaluation.bench cell <cell dir> [threads]")
    run_cell(argv[1], int(argv[2]) if len(argv) > 2 else 1)


if __name__ == "__main__":
    main(sys.argv[1:])
