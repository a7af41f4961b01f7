"""One logger for every run: a row per log call to ``progress.csv``, TensorBoard scalars,
and a short table on the terminal. Metric names are shared across algorithms
(``charts/SPS``, ``losses/value_loss``, ``eval/win_rate_vs_random`` ...).
"""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path

from rich.console import Console
from rich.progress import Progress, TaskID
from rich.table import Table

__all__ = ["Logger", "RunProgress"]


class RunProgress(Progress):
    """rich's progress bar; where the console is not a terminal (a log file, ``nohup``,
    CI) it prints the bar's line every ``every`` seconds instead, so that long runs
    show their progress there too."""

    def __init__(self, *columns, console: Console, every: float = 60.0, **kwargs):
        super().__init__(*columns, console=console, **kwargs)
        self._plain = not console.is_terminal and not console.quiet
        self._every, self._last = every, time.monotonic()

    def update(self, task_id: TaskID, **kwargs) -> None:
        super().update(task_id, **kwargs)
        if self._plain and time.monotonic() - self._last >= self._every:
            self._last = time.monotonic()
            tasks = [task for task in self.tasks if task.id == task_id]
            self.console.print(self.make_tasks_table(tasks))


class Logger:
    def __init__(self, run_dir: Path, console: Console | None = None, tensorboard: bool = True):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.console = console
        self._csv_path = self.run_dir / "progress.csv"
        self._fields: list[str] = []
        if self._csv_path.exists():
            with self._csv_path.open() as f:
                self._fields = next(csv.reader(f), [])
        self._writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.run_dir))

    def log(self, step: int, metrics: dict[str, float], show: bool = True) -> None:
        """Append one row (``global_step`` plus ``metrics``) and show it."""
        row = {"global_step": step, **{k: float(v) for k, v in metrics.items()}}
        new_fields = [k for k in row if k not in self._fields]
        if new_fields:
            self._rewrite_header(self._fields + new_fields)
        with self._csv_path.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=self._fields).writerow(row)
        if self._writer is not None:
            for key, value in metrics.items():
                if not math.isnan(float(value)):
                    self._writer.add_scalar(key, float(value), step)
            self._writer.flush()
        if show and self.console is not None:
            table = Table(show_header=False, box=None, pad_edge=False)
            for key, value in row.items():
                table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
            self.console.print(table)

    def _rewrite_header(self, fields: list[str]) -> None:
        rows = []
        if self._csv_path.exists():
            with self._csv_path.open() as f:
                rows = list(csv.DictReader(f))
        self._fields = fields
        tmp = self._csv_path.with_suffix(".tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
        tmp.replace(self._csv_path)

    def truncate_after(self, step: int) -> None:
        """Drop rows logged after ``step`` (a resumed run replays from its checkpoint)."""
        if not self._csv_path.exists():
            return
        with self._csv_path.open() as f:
            rows = [r for r in csv.DictReader(f) if float(r["global_step"]) <= step]
        tmp = self._csv_path.with_suffix(".tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self._fields)
            writer.writeheader()
            writer.writerows(rows)
        tmp.replace(self._csv_path)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
