"""The report of a benchmark sweep: learning curves and a table of sample efficiency.

For every environment of ``sweeps/<name>-<time>/`` (see :mod:`mbrl.evaluation.bench`):

    1. read each cell's ``progress.csv``: the curve (global_step, eval/mean_return),
       or charts/episodic_return where a cell has no evaluation
    2. plot ``curves-<env>.png``: per agent the mean over seeds (curves interpolated
       on a common step grid) and the min-max band
    3. per agent, mean ± std over seeds of
       - the return at 25/50/100% of the budget (the last point logged by then),
       - the steps until the curve first reaches the env's threshold (seeds that
         never reach it are counted, not averaged),
       - the area under the curve divided by the budget (the curve piecewise linear
         between points, flat before the first and after the last): the return
         averaged over training, in return units
    4. write ``report.md`` with the tables, the plots and the skipped/unfinished cells
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import numpy as np
import tyro

__all__ = [
    "THRESHOLDS",
    "Curve",
    "ReportConfig",
    "area_under_curve",
    "read_curve",
    "return_at",
    "steps_to_threshold",
    "write_report",
]

#: Returns that count as solved (steps-to-threshold), per environment.
THRESHOLDS: dict[str, float] = {
    "CartPole-v1": 475.0,
    "Pendulum-v1": -200.0,
    "InvertedPendulum-v5": 950.0,
    "HalfCheetah-v5": 4800.0,
    "Hopper-v5": 3000.0,
    "Walker2d-v5": 3000.0,
    "Ant-v5": 3000.0,
}
EVAL_METRIC = "eval/mean_return"
TRAIN_METRIC = "charts/episodic_return"


@dataclass(frozen=True, kw_only=True)
class ReportConfig:
    """Learning curves (PNG) and report.md for a sweep folder made by `mbrl bench`."""

    sweep: Annotated[str, tyro.conf.Positional]
    """The sweep folder (sweeps/<name>-<time>)."""
    thresholds: tuple[str, ...] = ()
    """Extra or changed thresholds as env=return (e.g. CartPole-v1=500)."""
    fractions: tuple[float, ...] = (0.25, 0.5, 1.0)
    """Budget fractions at which the return is tabulated, in (0, 1]."""
    metric: str = EVAL_METRIC
    """Column of progress.csv to report (falls back to charts/episodic_return)."""

    def __post_init__(self):
        for item in self.thresholds:
            _, eq, value = item.partition("=")
            try:
                float(value)
            except ValueError:
                eq = ""
            if not eq:
                raise ValueError(f"--thresholds wants env=return, got {item!r}")
        if not self.fractions or not all(0 < f <= 1 for f in self.fractions):
            raise ValueError(f"--fractions must be in (0, 1], got {self.fractions}")
        object.__setattr__(self, "thresholds", tuple(self.thresholds))
        object.__setattr__(self, "fractions", tuple(self.fractions))

    def threshold(self, env: str) -> float | None:
        for item in self.thresholds:
            name, _, value = item.partition("=")
            if name == env:
                return float(value)
        return THRESHOLDS.get(env)


@dataclass
class Curve:
    """One cell's learning curve: ``steps`` [T] ascending and ``returns`` [T]."""

    agent: str
    env: str
    seed: int
    budget: int
    steps: np.ndarray
    returns: np.ndarray
    metric: str
    done: bool = True
    notes: list[str] = field(default_factory=list)

    def at(self, fraction: float) -> float:
        """The step of a budget fraction; 100% is the end of a finished run, which may
        lie past the budget (an on-policy run stops at a whole rollout)."""
        step = fraction * self.budget
        if fraction >= 1 and self.done and len(self.steps):
            step = max(step, float(self.steps[-1]))
        return step


# ------------------------------------------------------------------ measures


def read_curve(path: str | Path, metric: str = EVAL_METRIC) -> tuple[np.ndarray, np.ndarray, str]:
    """(steps [T], values [T], metric used) from a progress.csv; empty cells are skipped."""
    with Path(path).open() as f:
        rows = list(csv.DictReader(f))
    for name in dict.fromkeys([metric, EVAL_METRIC, TRAIN_METRIC]):
        points = [
            (float(row["global_step"]), float(row[name]))
            for row in rows
            if row.get(name) not in (None, "") and not math.isnan(float(row[name]))
        ]
        if points:
            steps, values = np.array(points).T
            order = np.argsort(steps, kind="stable")
            return steps[order], values[order], name
    return np.zeros(0), np.zeros(0), metric


def _last_step(progress: Path) -> float:
    """The last ``global_step`` of a progress.csv, whichever metrics its row holds."""
    with progress.open() as f:
        rows = list(csv.DictReader(f))
    return max((float(row["global_step"]) for row in rows), default=0.0)


def return_at(steps: np.ndarray, returns: np.ndarray, step: float) -> float:
    """The last value logged at or before ``step`` (NaN if none yet)."""
    index = np.searchsorted(steps, step, side="right") - 1
    return float(returns[index]) if index >= 0 else math.nan


def steps_to_threshold(steps: np.ndarray, returns: np.ndarray, threshold: float) -> float | None:
    """The first step whose value is >= ``threshold`` (None if never)."""
    reached = np.flatnonzero(returns >= threshold)
    return float(steps[reached[0]]) if len(reached) else None


def area_under_curve(steps: np.ndarray, returns: np.ndarray, budget: float) -> float:
    """(1 / budget) * integral over [0, budget] of the curve (linear between points,
    flat before the first and after the last): the return averaged over training."""
    if len(steps) == 0:
        return math.nan
    inside = steps < budget
    xs = np.concatenate([[0.0], steps[inside], [budget]])
    ys = np.interp(xs, steps, returns)
    return float(np.sum((xs[1:] - xs[:-1]) * (ys[1:] + ys[:-1]) / 2) / budget)


# ------------------------------------------------------------------ reading a sweep


def read_sweep(sweep_dir: Path, metric: str = EVAL_METRIC) -> tuple[list[Curve], list[str]]:
    """Every cell's curve, and the skipped pairs noted in sweep.json."""
    skipped = []
    if (sweep_dir / "sweep.json").exists():
        skipped = json.loads((sweep_dir / "sweep.json").read_text()).get("skipped", [])
    curves = []
    for cell_dir in sorted(p for p in sweep_dir.iterdir() if p.is_dir()):
        if (cell_dir / "cell.json").exists():
            cell = json.loads((cell_dir / "cell.json").read_text())
        elif (cell_dir / "config.json").exists():
            cell = json.loads((cell_dir / "config.json").read_text())
            cell["agent"] = cell_dir.name.split("-")[0]
        else:
            continue
        progress = cell_dir / "progress.csv"
        steps, values, used = (
            read_curve(progress, metric) if progress.exists() else (np.zeros(0),) * 2 + (metric,)
        )
        curves.append(
            Curve(
                agent=cell["agent"],
                env=cell["env"],
                seed=int(cell["seed"]),
                budget=int(cell["total_steps"]),
                steps=steps,
                returns=values,
                metric=used,
                # a sweep cell writes `done`; a plain run folder is done at its budget
                done=(cell_dir / "done").exists()
                or (bool(len(steps)) and _last_step(progress) >= int(cell["total_steps"])),
            )
        )
    return curves, skipped


# ------------------------------------------------------------------ plots and tables


def plot_env(env: str, curves: list[Curve], path: Path, threshold: float | None) -> Path:
    """Mean over seeds and min-max band, one line per agent; saved as PNG (Agg). Where the
    agents' budgets differ tenfold or more (the model-based agents' in a suite), the step
    axis is logarithmic."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    agents = sorted({c.agent for c in curves})
    fig, ax = plt.subplots(figsize=(7.6 if len(agents) > 6 else 6.4, 4.2))
    budgets = [c.budget for c in curves] or [1]
    log_steps = max(budgets) >= 10 * min(budgets)
    # tab10's colours repeat past ten agents (a full suite has twelve): dashed lines then.
    palette = plt.get_cmap("tab10").colors
    for index, agent in enumerate(agents):
        mine = [c for c in curves if c.agent == agent and len(c.steps)]
        if not mine:
            continue
        budget = max(c.budget for c in mine)
        first = max(1.0, min(float(c.steps[0]) for c in mine))
        grid = np.geomspace(first, budget, 101) if log_steps else np.linspace(0, budget, 101)
        # A seed's curve covers only what it logged: beyond its last point it is not drawn.
        ys = np.array(
            [
                np.where(grid <= c.steps[-1], np.interp(grid, c.steps, c.returns), np.nan)
                for c in mine
            ]
        )
        keep = ~np.all(np.isnan(ys), axis=0) & (grid >= min(c.steps[0] for c in mine))
        ys = ys[:, keep]
        mean, low, high = (f(ys, axis=0) for f in (np.nanmean, np.nanmin, np.nanmax))
        color = palette[index % len(palette)]
        style = "-" if index < len(palette) else "--"
        label = f"{agent} ({len(mine)} seeds)"
        ax.plot(grid[keep], mean, color=color, linestyle=style, label=label)
        ax.fill_between(grid[keep], low, high, color=color, alpha=0.2)
    if threshold is not None:
        ax.axhline(threshold, color="grey", linestyle="--", linewidth=1, label="threshold")
    ax.set_title(env)
    ax.set_xlabel("environment steps" + (" (log scale)" if log_steps else ""))
    if log_steps:
        ax.set_xscale("log")
    ax.set_ylabel(curves[0].metric if curves else "return")
    ax.grid(alpha=0.3)
    if len(agents) > 6:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    else:
        ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _mean_std(values: list[float]) -> str:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{np.mean(values):.1f} ± {np.std(values):.1f}"


def env_table(env: str, curves: list[Curve], config: ReportConfig) -> list[str]:
    """Markdown rows: per agent, returns at the budget fractions, steps to threshold, AUC."""
    threshold = config.threshold(env)
    head = ["agent", "seeds"]
    head += [f"return @ {f:.0%}" for f in config.fractions]
    head += [f"steps to {threshold:g}" if threshold is not None else "steps to threshold"]
    head += ["AUC / budget"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for agent in sorted({c.agent for c in curves}):
        mine = [c for c in curves if c.agent == agent]
        finished = sum(c.done for c in mine)
        row = [agent, f"{len(mine)}" + ("" if finished == len(mine) else f" ({finished} done)")]
        for fraction in config.fractions:
            row.append(_mean_std([return_at(c.steps, c.returns, c.at(fraction)) for c in mine]))
        if threshold is None:
            row.append("–")
        else:
            reached = [steps_to_threshold(c.steps, c.returns, threshold) for c in mine]
            hits = [s for s in reached if s is not None]
            text = f"{np.mean(hits):,.0f}" if hits else "never"
            row.append(f"{text} ({len(hits)}/{len(mine)} seeds)")
        row.append(_mean_std([area_under_curve(c.steps, c.returns, c.budget) for c in mine]))
        lines.append("| " + " | ".join(row) + " |")
    return lines


def write_report(config: ReportConfig) -> Path:
    """Write ``curves-<env>.png`` and ``report.md`` into the sweep folder; the report path."""
    sweep_dir = Path(config.sweep)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"no sweep folder at {sweep_dir}")
    curves, skipped = read_sweep(sweep_dir, config.metric)
    if not curves:
        raise ValueError(f"{sweep_dir} has no cells (folders with cell.json or config.json)")
    lines = [f"# Sweep {sweep_dir.name}", ""]
    metrics = sorted({c.metric for c in curves if len(c.steps)})
    lines += [
        f"Metric: {', '.join(metrics) or config.metric}; mean ± std over seeds. "
        "Return @ x% is the last value logged by x% of the budget; steps to the threshold "
        "are averaged over the seeds that reach it; AUC / budget is the return averaged "
        "over training.",
        "",
    ]
    for env in sorted({c.env for c in curves}):
        mine = [c for c in curves if c.env == env]
        budgets = sorted({c.budget for c in mine})
        png = plot_env(env, mine, sweep_dir / f"curves-{_safe(env)}.png", config.threshold(env))
        lines += [f"## {env}", "", f"Budget: {', '.join(f'{b:,}' for b in budgets)} steps.", ""]
        lines += env_table(env, mine, config)
        lines += ["", f"![{env}]({png.name})", ""]
    unfinished = [f"{c.agent}-{c.env}-seed{c.seed}" for c in curves if not c.done]
    if unfinished:
        lines += ["## Unfinished cells", "", *[f"- {name}" for name in unfinished], ""]
    if skipped:
        lines += ["## Skipped", "", *[f"- {note}" for note in skipped], ""]
    path = sweep_dir / "report.md"
    path.write_text("\n".join(lines))
    return path


def _safe(env: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in env.replace(":", "-"))
