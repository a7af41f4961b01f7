"""One training run, owned by one object: every algorithm's loop runs inside it.

    with Run(RunSpec(algo, world, config, run_dir, total, start), agent.checkpoint,
             console) as run:
        while run.going(counters["steps"]):
            ...                              # the algorithm's own collection and update
            run.log(step, metrics)           # a row of progress.csv and TensorBoard
            run.checkpoint_if_due(step, due) # its own cadence, a wall-clock one, the first
            run.show(step, status)           # the progress bar (a plain line in logs)

:class:`Run` owns the folder (``config.json``, ``progress.csv`` with one row
per ``log`` and ``global_step`` as the step column, TensorBoard events), the
progress display, when to checkpoint (the algorithm's own cadence, every
``checkpoint_minutes`` of wall clock, and after the first iteration) and the
signals: SIGINT or SIGTERM lets the current iteration finish, then the run
writes its checkpoint, says where, and raises :class:`RunInterrupted` (exit
status 130 or 143 on the command line); a second signal stops at once. A run
that ends normally writes its checkpoint and a closing summary.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

from mbrl.training.logger import Logger, RunProgress
from mbrl.training.runs import config_to_json

__all__ = ["CHECKPOINT_MINUTES", "Run", "RunInterrupted", "RunSpec", "crossed", "status_line"]

#: Wall-clock minutes between checkpoints, whatever the algorithm's own cadence.
CHECKPOINT_MINUTES = 5.0


class RunInterrupted(Exception):
    """A run stopped by a signal after writing its checkpoint; ``exit_code`` is 128 + signal."""

    def __init__(self, signum: int, checkpoint: Path | None, run_dir: Path):
        self.signum, self.checkpoint, self.run_dir = signum, checkpoint, run_dir
        self.exit_code = 128 + signum
        name = signal.Signals(signum).name
        super().__init__(f"{name}: stopped; checkpoint {checkpoint}")


def crossed(before: int, now: int, every: int) -> bool:
    """True when a multiple of ``every`` lies in ``(before, now]``."""
    return every > 0 and now // every > before // every


def status_line(metrics: dict[str, float], keys: tuple[str, ...] | None = None) -> str:
    """The progress bar's text: the last training return and evaluation (or ``keys``)."""
    keys = keys or ("charts/episodic_return", "eval/mean_return")
    return "  ".join(
        f"{k.split('/')[-1]} {float(v):.4g}" for k, v in metrics.items() if k.startswith(keys)
    )


@dataclass(frozen=True)
class RunSpec:
    """What a run is: the algorithm, its world, config, folder and step budget."""

    algo: str
    """Algorithm name (``sac``), as ``mbrl train`` takes it."""
    world: str
    """The environment id or game name."""
    config: Any
    """The frozen config dataclass (written to config.json)."""
    run_dir: Path
    """The run folder."""
    total: float
    """Where the progress bar ends (steps, or iterations / seconds for AlphaZero)."""
    start: float = 0
    """Where a resumed run starts (the checkpoint's count)."""
    step: int = 0
    """The step counter at the start (rows of progress.csv after it are dropped)."""
    unit: str = "steps"
    """What ``total`` counts."""


class Run:
    """The folder, logger, progress, checkpoint cadence and signals of one ``learn`` call.

    ``checkpoint()`` writes the full training state and returns its path; the run
    calls it when due, at the end, and when a signal stops the run.
    """

    def __init__(
        self,
        spec: RunSpec,
        checkpoint: Callable[[], Path],
        console: Console | None = None,
        checkpoint_minutes: float = CHECKPOINT_MINUTES,
    ):
        self.spec, self._checkpoint = spec, checkpoint
        self.console = console or Console(quiet=True)
        self.checkpoint_minutes = checkpoint_minutes
        self.run_dir = Path(spec.run_dir)
        self.signum: int | None = None
        self.last_checkpoint: Path | None = None
        # the first iteration writes one unless the run already has one (a resumed run)
        self._has_checkpoint = (self.run_dir / "checkpoints" / "latest.safetensors").exists()
        self._last_checkpoint_time = time.monotonic()
        self._handlers: dict[int, Any] = {}
        self._window = (spec.step, time.perf_counter())
        self._started = time.perf_counter()
        self.last: dict[str, float] = {}  # the last value of every metric logged
        self.step = spec.step

    # ------------------------------------------------------------ the context
    def __enter__(self) -> Run:
        spec = self.spec
        self.run_dir.mkdir(parents=True, exist_ok=True)
        config = json.dumps(config_to_json(spec.config), indent=2)
        (self.run_dir / "config.json").write_text(config)
        self.logger = Logger(self.run_dir, self.console)
        self.logger.truncate_after(spec.step)
        self.console.print(
            f"{spec.algo} {spec.world}: run folder {self.run_dir} "
            f"({'resuming at ' if spec.start else ''}{spec.start:g} of {spec.total:g} {spec.unit})"
        )
        self.progress = RunProgress(
            TextColumn(f"[bold]{spec.algo} {spec.world}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(spec.unit),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
            console=self.console,
        )
        self.progress.__enter__()
        self.task = self.progress.add_task(
            "train", total=spec.total, completed=spec.start, status=""
        )
        self._install_signals()
        return self

    def __exit__(self, kind, error, traceback) -> None:
        self._restore_signals()
        try:
            if kind is None:  # after an error mid-iteration the state may be half updated
                self.last_checkpoint = self._checkpoint()
        finally:
            self.progress.__exit__(kind, error, traceback)
            self.logger.close()
        if kind is None and self.signum is None:
            self._summary()
        if kind is None and self.signum is not None:
            self.console.print(
                f"[yellow]stopped by {signal.Signals(self.signum).name}[/yellow]: "
                f"checkpoint {self.last_checkpoint}; continue with "
                f"`mbrl train {self.spec.algo} --resume {self.run_dir}`"
            )
            raise RunInterrupted(self.signum, self.last_checkpoint, self.run_dir)

    # --------------------------------------------------------------- the loop
    @property
    def stopped(self) -> bool:
        """True once SIGINT or SIGTERM has arrived: finish the iteration and leave."""
        return self.signum is not None

    def going(self, done: float, total: float | None = None) -> bool:
        """True while ``done < total`` (default: the spec's) and no signal has arrived."""
        return self.signum is None and done < (self.spec.total if total is None else total)

    def log(self, step: int, metrics: dict[str, Any]) -> dict[str, float]:
        """One row at ``step`` (tensors become floats here, not in the hot loop)."""
        values = {k: float(v) for k, v in metrics.items()}
        self.logger.log(step, values, show=False)
        self.last.update(values)
        self.step = step
        return values

    def speed(self, step: int) -> float:
        """Steps per second (updates included) since the last call."""
        last_step, last_time = self._window
        now = time.perf_counter()
        self._window = (step, now)
        return (step - last_step) / max(now - last_time, 1e-9)

    def show(self, completed: float, status: str = "") -> None:
        self.progress.update(self.task, completed=min(completed, self.spec.total), status=status)

    def checkpoint_if_due(self, due: bool = False) -> Path | None:
        """Checkpoint when ``due`` (the algorithm's cadence), when the run has none yet
        (after its first iteration), or when ``checkpoint_minutes`` have passed since the
        last one (or since this ``learn`` call began)."""
        minutes = (time.monotonic() - self._last_checkpoint_time) / 60
        if due or not self._has_checkpoint or minutes >= self.checkpoint_minutes:
            self.last_checkpoint = self._checkpoint()
            self._has_checkpoint = True
            self._last_checkpoint_time = time.monotonic()
            return self.last_checkpoint
        return None

    def _summary(self) -> None:
        """The closing lines: where the run is and what its last evaluation said."""
        seconds = time.perf_counter() - self._started
        took = f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
        evaluation = "  ".join(
            f"{k.split('/', 1)[1]} {v:.4g}" for k, v in self.last.items() if k.startswith("eval/")
        )
        self.console.print(
            f"[bold]done[/bold]: {self.spec.algo} {self.spec.world} at step {self.step:,} "
            f"after {took}; checkpoint {self.last_checkpoint}"
        )
        if evaluation:
            self.console.print(f"  last evaluation: {evaluation}")

    # ---------------------------------------------------------------- signals
    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._handlers[signum] = signal.signal(signum, self._on_signal)

    def _restore_signals(self) -> None:
        for signum, handler in self._handlers.items():
            signal.signal(signum, handler)
        self._handlers = {}

    def _on_signal(self, signum: int, frame) -> None:
        if self.signum is not None:  # the second signal: stop now, no checkpoint
            self._restore_signals()
            raise KeyboardInterrupt
        self.signum = signum
        self.console.print(
            f"\n[yellow]{signal.Signals(signum).name}[/yellow]: finishing this iteration, then "
            "writing a checkpoint (send it again to stop at once)"
        )
