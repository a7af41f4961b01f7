"""Sweeps (plan, run, crash, resume without rerunning finished cells) and their report."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from mbrl import registry
from mbrl.evaluation.bench import BenchConfig, Cell, cell_state, plan_cells, run_order, run_sweep
from mbrl.evaluation.report import (
    ReportConfig,
    area_under_curve,
    read_curve,
    return_at,
    steps_to_threshold,
    write_report,
)
from mbrl.model import UnknownNameError
from mbrl.training.logger import Logger
from mbrl.training.runs import atomic_save, load_checkpoint


class FakeAgent:
    """The agent surface without learning: eval/mean_return = seed + 100 * step / budget.

    Each ``learn`` call appends its starting step to ``calls.txt``; with ``crash_at``
    the cell with seed 1 dies (once) at that step, after its last checkpoint.
    """

    world_field = "env"
    action_spaces = frozenset({"discrete", "continuous"})
    step_cost = 1.0

    @dataclass(frozen=True, kw_only=True)
    class Config:
        env: str = "CartPole-v1"
        total_steps: int = 100
        seed: int = 0
        run_dir: str = "runs"
        eval_every: int = 10
        checkpoint_every: int = 50
        crash_at: int = 0

    def __init__(self, env, config=None, *, run_dir=None, console=None):
        self.config = config or self.Config(env=env)
        self.run_dir = Path(run_dir or self.config.run_dir)
        self.step = 0

    def learn(self, total_steps):
        c = self.config
        with (self.run_dir / "calls.txt").open("a") as f:
            f.write(f"{self.step}\n")
        logger = Logger(self.run_dir, tensorboard=False)
        logger.truncate_after(self.step)
        while self.step < total_steps:
            self.step += c.eval_every
            value = c.seed + 100 * self.step / total_steps
            logger.log(self.step, {"eval/mean_return": value, "charts/episodic_return": value})
            if self.step % c.checkpoint_every == 0:
                self.save()
            crashed = self.run_dir / "crashed"
            if c.crash_at and c.seed == 1 and self.step >= c.crash_at and not crashed.exists():
                crashed.touch()
                os._exit(3)  # a kill: no cleanup, no final checkpoint
        self.save()
        return {"eval/mean_return": c.seed + 100.0}

    def save(self, path=None):
        payload = {"format": "fake", "config": dataclasses.asdict(self.config), "step": self.step}
        return atomic_save(payload, path or self.run_dir / "checkpoints" / "latest.safetensors")

    @classmethod
    def resume(cls, run_dir, console=None):
        payload = load_checkpoint(Path(run_dir) / "checkpoints" / "latest.safetensors", "fake")
        agent = cls(payload["config"]["env"], cls.Config(**payload["config"]), run_dir=run_dir)
        agent.step = payload["step"]
        return agent


class ContinuousOnlyAgent(FakeAgent):
    action_spaces = frozenset({"continuous"})


@pytest.fixture
def fake_agents(monkeypatch):
    monkeypatch.setitem(registry.AGENTS, "fake", "tests.test_bench:FakeAgent")
    monkeypatch.setitem(registry.AGENTS, "fakecont", "tests.test_bench:ContinuousOnlyAgent")


pytestmark = pytest.mark.usefixtures("one_thread")


def calls(cell_dir: Path) -> list[int]:
    return [int(line) for line in (cell_dir / "calls.txt").read_text().split()]


def test_plan_cells_skips_agents_that_do_not_fit(fake_agents, tmp_path):
    config = BenchConfig(
        suite="quick",
        agents=("dqn", "fake", "fakecont"),
        seeds=(0, 1),
        overrides=("dqn.learning_starts=100", "fake.crash_at=7"),
    )
    cells, skipped = plan_cells(config)
    pairs = sorted({(c.agent, c.env) for c in cells})
    assert pairs == [
        ("dqn", "CartPole-v1"),
        ("fake", "CartPole-v1"),
        ("fake", "InvertedPendulum-v5"),
        ("fake", "Pendulum-v1"),
        ("fakecont", "InvertedPendulum-v5"),
        ("fakecont", "Pendulum-v1"),
    ]
    assert len(cells) == 2 * len(pairs)
    assert len(skipped) == 3 and any("dqn on Pendulum-v1" in note for note in skipped)
    dqn = next(c for c in cells if c.agent == "dqn")
    assert dqn.total_steps == 50_000 and dqn.target == "mbrl.algorithms.dqn:DQN"
    assert dqn.config == {"eval_every": 2500, "checkpoint_every": 5000, "learning_starts": 100}
    assert dqn.name == "dqn-CartPole-v1-seed0"
    assert next(c for c in cells if c.agent == "fake").config["crash_at"] == 7
    dry = run_sweep(dataclasses.replace(config, dry_run=True, root=str(tmp_path)))
    assert not dry.exists()
    mujoco = BenchConfig(suite="mujoco", total_steps=10_000)
    assert mujoco.env_ids()[0] == "HalfCheetah-v5" and mujoco.budget("Hopper-v5") == 10_000
    quick, _ = plan_cells(BenchConfig(suite="quick", agents=("ppo", "sac", "dqn"), seeds=(0,)))
    order = [(c.agent, c.env) for c in run_order(quick)]
    assert order == [
        ("sac", "Pendulum-v1"),
        ("sac", "InvertedPendulum-v5"),
        ("dqn", "CartPole-v1"),
        ("ppo", "CartPole-v1"),
        ("ppo", "Pendulum-v1"),
        ("ppo", "InvertedPendulum-v5"),
    ]
    # On MuJoCo, on-policy agents normalise observations and rewards unless overridden.
    cells, _ = plan_cells(
        dataclasses.replace(
            mujoco, agents=("ppo", "sac"), seeds=(0,), overrides=("ppo.normalize_obs=false",)
        )
    )
    ppo = next(c for c in cells if c.agent == "ppo")
    assert ppo.config["normalize_reward"] is True and ppo.config["normalize_obs"] is False
    assert "normalize_reward" not in next(c for c in cells if c.agent == "sac").config


def test_a_suite_gives_the_model_based_agents_their_own_budget_and_settings():
    from mbrl.evaluation.bench import SUITE_AGENTS

    agents = ("sac", "mbpo", "mbmpo")
    config = BenchConfig(suite="quick", agents=agents, envs=("Pendulum-v1",), seeds=(0,),
                         overrides=("mbmpo.meta_steps=3", "mbpo.gradient_steps=4"))  # fmt: skip
    cells = {c.agent: c for c in plan_cells(config)[0]}
    assert cells["sac"].total_steps == 20_000 and cells["mbpo"].total_steps == 2_000
    assert (
        cells["mbmpo"].config["meta_batch_size"]
        == SUITE_AGENTS["quick"]["mbmpo"]["meta_batch_size"]
    )
    assert cells["mbmpo"].config["meta_steps"] == 3  # --overrides come after the suite's
    assert cells["mbpo"].config["gradient_steps"] == 4
    assert cells["mbpo"].config["eval_every"] == 2_000 // config.num_evals
    assert "total_steps" not in cells["mbpo"].config
    # --total-steps is every cell's budget; the suite's settings still apply
    fixed = dataclasses.replace(config, agents=("mbpo", "mbmpo"), total_steps=900)
    fixed = {c.agent: c for c in plan_cells(fixed)[0]}
    assert {c.total_steps for c in fixed.values()} == {900}
    assert fixed["mbpo"].config["rollout_batch_size"] == 10_000
    # without a suite, nothing of the suite's
    (plain,) = plan_cells(BenchConfig(agents=("mbpo",), envs=("Pendulum-v1",), seeds=(0,)))[0]
    assert plain.total_steps == 20_000 and "rollout_batch_size" not in plain.config
    for agent, settings in SUITE_AGENTS["quick"].items():  # every field exists
        cls = registry.agent_class(agent)
        names = {f.name for f in dataclasses.fields(cls.Config)}
        assert set(settings) <= names, agent


def test_overrides_of_enum_fields_reach_the_agent_as_members(tmp_path):
    """A value given by --overrides (pets.model=exact) is the Enum member in the cell's
    agent, as in config.json: not a string that compares unequal to every member."""
    from mbrl.evaluation.bench import run_cell
    from mbrl.training.modelbased import WorldKind

    config = BenchConfig(agents=("pets",), envs=("InvertedPendulum-v5",), seeds=(0,),
                         total_steps=3, overrides=("pets.model=exact", "pets.horizon=2",
                         "pets.population_size=4", "pets.num_elites=2",
                         "pets.initial_random_steps=1"))  # fmt: skip
    (cell,) = plan_cells(config)[0]
    cell_dir = tmp_path / cell.name
    cell_dir.mkdir()
    (cell_dir / "cell.json").write_text(json.dumps(dataclasses.asdict(cell)))
    run_cell(cell_dir)
    saved = json.loads((cell_dir / "config.json").read_text())
    assert saved["model"] == WorldKind.EXACT.value and (cell_dir / "done").exists()


def test_config_errors(fake_agents):
    for kwargs, field in [
        ({"suite": "huge"}, "suite"),
        ({"seeds": ()}, "seeds"),
        ({"total_steps": 0}, "total-steps"),
        ({"num_workers": -1}, "num-workers"),
        ({"overrides": ("learning_starts=3",)}, "overrides"),
    ]:
        with pytest.raises(ValueError, match=field):
            BenchConfig(**kwargs)
    with pytest.raises(UnknownNameError):
        plan_cells(BenchConfig(agents=("nope",)))
    with pytest.raises(UnknownNameError):
        plan_cells(BenchConfig(agents=("fake",), envs=("CartPol-v1",)))
    with pytest.raises(ValueError, match="no field nope"):
        plan_cells(BenchConfig(agents=("fake",), overrides=("fake.nope=1",)))
    with pytest.raises(ValueError, match="gamma"):
        plan_cells(BenchConfig(agents=("dqn",), overrides=("dqn.gamma=2",)))
    with pytest.raises(ValueError, match="thresholds"):
        ReportConfig(sweep=".", thresholds=("CartPole-v1:500",))
    with pytest.raises(FileNotFoundError):
        run_sweep(BenchConfig(resume="/nonexistent/sweep"))


def test_killed_sweep_resumes_without_rerunning_finished_cells(fake_agents, tmp_path):
    config = BenchConfig(
        agents=("fake",),
        envs=("CartPole-v1",),
        seeds=(0, 1),
        total_steps=100,
        num_evals=10,
        overrides=("fake.checkpoint_every=50", "fake.crash_at=70"),
        root=str(tmp_path),
        name="tiny",
        num_workers=2,  # separate processes: seed 1's process dies at step 70
    )
    sweep = run_sweep(config)
    first, second = sweep / "fake-CartPole-v1-seed0", sweep / "fake-CartPole-v1-seed1"
    assert sweep.name.startswith("tiny-") and (sweep / "sweep.json").exists()
    assert cell_state(first) == "done" and cell_state(second) == "partial"
    assert (second / "log.txt").exists()
    done_time = (first / "done").stat().st_mtime_ns
    # The report of the half-finished sweep lists the unfinished cell.
    report = write_report(ReportConfig(sweep=str(sweep))).read_text()
    assert "fake-CartPole-v1-seed1" in report.split("## Unfinished cells")[1]

    run_sweep(BenchConfig(resume=str(sweep), num_workers=2))
    assert calls(first) == [0]  # not rerun
    assert (first / "done").stat().st_mtime_ns == done_time
    assert calls(second) == [0, 50]  # resumed from its checkpoint at step 50
    assert cell_state(second) == "done"
    steps, values, _ = read_curve(second / "progress.csv")
    np.testing.assert_array_equal(steps, np.arange(10, 101, 10))  # rows 60, 70 replayed once
    np.testing.assert_allclose(values, 1 + steps)
    assert json.loads((second / "done").read_text())["eval/mean_return"] == 101

    # Removing a done marker is the other kind of interruption: it resumes, nothing else.
    (first / "done").unlink()
    run_sweep(BenchConfig(resume=str(sweep), num_workers=0))
    assert calls(first) == [0, 100] and calls(second) == [0, 50]


def test_report_numbers_by_hand(tmp_path):
    sweep = tmp_path / "by-hand"
    rows = {  # seed -> (global_step, eval/mean_return)
        0: [(100, 0.0), (200, 10.0), (400, 10.0)],
        1: [(100, 20.0), (300, 480.0), (400, 500.0)],
    }
    for seed, points in rows.items():
        cell = Cell(
            agent="a", target="x:y", env="CartPole-v1", seed=seed, total_steps=400, config={}
        )
        cell_dir = sweep / cell.name
        cell_dir.mkdir(parents=True)
        (cell_dir / "cell.json").write_text(json.dumps(dataclasses.asdict(cell)))
        lines = ["global_step,charts/episodic_return,eval/mean_return"]
        lines += [f"{step},,{value}" for step, value in points]
        (cell_dir / "progress.csv").write_text("\n".join(lines) + "\n")
        (cell_dir / "done").write_text("{}")
    steps, _, metric = read_curve(sweep / "a-CartPole-v1-seed1" / "progress.csv")
    assert metric == "eval/mean_return" and steps.tolist() == [100, 300, 400]
    # Seed 0: flat 0 until 100, linear to 10 at 200, then 10: (0 + 500 + 2000) / 400.
    s0 = np.array([100.0, 200, 400]), np.array([0.0, 10, 10])
    assert area_under_curve(*s0, budget=400) == pytest.approx(6.25)
    # Seed 1: 20*100 + (20+480)/2*200 + (480+500)/2*100 = 2000 + 50000 + 49000 -> / 400.
    s1 = np.array([100.0, 300, 400]), np.array([20.0, 480, 500])
    assert area_under_curve(*s1, budget=400) == pytest.approx(252.5)
    assert steps_to_threshold(*s1, threshold=475) == 300
    assert steps_to_threshold(*s0, threshold=475) is None
    assert return_at(*s1, step=200) == 20 and np.isnan(return_at(*s1, step=50))

    report = write_report(ReportConfig(sweep=str(sweep))).read_text()
    assert (sweep / "curves-CartPole-v1.png").stat().st_size > 1000
    row = next(line for line in report.splitlines() if line.startswith("| a |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    # return @ 25% (step 100): 0 and 20; @ 50% (200): 10 and 20; @ 100%: 10 and 500.
    expected = ["a", "2", "10.0 ± 10.0", "15.0 ± 5.0", "255.0 ± 245.0", "300 (1/2 seeds)"]
    assert cells == [*expected, "129.4 ± 123.1"]
    assert "steps to 475" in report and "![CartPole-v1](curves-CartPole-v1.png)" in report
    # A changed threshold.
    report = write_report(ReportConfig(sweep=str(sweep), thresholds=("CartPole-v1=5",)))
    assert "150 (2/2 seeds)" in report.read_text()


def test_cli_bench_and_report_with_dqn(tmp_path):
    from mbrl import cli

    flags = ["--agents", "dqn", "--envs", "CartPole-v1", "Pendulum-v1", "--seeds", "0", "1"]
    flags += ["--total-steps", "200", "--num-evals", "2", "--num-workers", "0"]
    flags += ["--backend", "local"]
    flags += ["--overrides", "dqn.learning_starts=50", "dqn.eval_episodes=1"]
    cli.main(["bench", *flags, "--root", str(tmp_path), "--name", "cli"])
    (sweep,) = tmp_path.iterdir()
    cells = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert cells == ["dqn-CartPole-v1-seed0", "dqn-CartPole-v1-seed1"]
    assert all(cell_state(sweep / name) == "done" for name in cells)
    cli.main(["report", str(sweep)])
    report = (sweep / "report.md").read_text()
    assert "| dqn | 2 |" in report and "dqn on Pendulum-v1" in report
    assert (sweep / "curves-CartPole-v1.png").exists()


@pytest.mark.slow
def test_ray_backend(tmp_path):
    ray = pytest.importorskip("ray")
    config = BenchConfig(
        agents=("dqn",),
        envs=("CartPole-v1",),
        seeds=(0, 1),
        total_steps=200,
        num_evals=2,
        overrides=("dqn.learning_starts=50", "dqn.eval_episodes=1"),
        root=str(tmp_path),
        backend="ray",
    )
    try:
        sweep = run_sweep(config)
    finally:
        ray.shutdown()
    assert all(cell_state(p) == "done" for p in sweep.iterdir() if p.is_dir())


def test_progress_prints_plain_lines_where_there_is_no_terminal():
    import io

    from rich.console import Console
    from rich.progress import MofNCompleteColumn, TextColumn

    from mbrl.training.logger import RunProgress

    buffer = io.StringIO()
    console = Console(file=buffer, width=80)  # a file: not a terminal
    assert not console.is_terminal
    with RunProgress(TextColumn("sac"), MofNCompleteColumn(), console=console, every=0) as bar:
        task = bar.add_task("train", total=10)
        for step in (3, 7):
            bar.update(task, completed=step)
    text = buffer.getvalue()
    assert "3/10" in text and "7/10" in text
    quiet = io.StringIO()
    with RunProgress(TextColumn("sac"), console=Console(file=quiet, quiet=True), every=0) as bar:
        bar.update(bar.add_task("train", total=10), completed=3)
    assert quiet.getvalue() == ""


def test_report_of_plain_run_folders_past_their_budget(tmp_path):
    """`mbrl report runs`: run folders (config.json, no cell.json, no `done`) that reached
    their budget are finished, and their 100% return is the last one, past the budget."""
    for seed, final in [(0, 500.0), (1, 300.0)]:
        run = tmp_path / f"ppo-CartPole-v1-2026010{seed}"
        run.mkdir()
        config = {"env": "CartPole-v1", "seed": seed, "total_steps": 20_000}
        (run / "config.json").write_text(json.dumps(config))
        logger = Logger(run, tensorboard=False)
        for step, value in [(10_240, 100.0), (18_432, 200.0), (20_480, final)]:
            logger.log(step, {"eval/mean_return": value})
        logger.close()
    report = write_report(ReportConfig(sweep=str(tmp_path))).read_text()
    row = next(line for line in report.splitlines() if line.startswith("| ppo |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "2"  # no "(0 done)"
    assert cells[4] == "400.0 ± 100.0"  # @ 100%: the evaluations at 20,480
    assert "Unfinished" not in report
