"""Fitting an :class:`~mbrl.models.ensemble.Ensemble` to transitions.

One fit (the loop of MBPO's and mbrl-lib's model trainers):

1. turn the transitions into input rows ``(obs, action)`` and targets
   ``(next_obs - obs, reward)``; hold out a random fraction for validation (one split
   shared by the members, or each member its own: ``member_holdouts``);
2. fit the input normaliser to the training rows;
3. give each member its own bootstrap resample of the training rows (drawn with
   replacement, once per fit), shuffled afresh every epoch;
4. each epoch: one pass of Adam steps over ``[E, batch]`` batches, one batch per
   member, all members in one batched forward and backward;
5. after each epoch score every member on the held-out rows; a member whose score
   improves by more than ``improvement_threshold`` (relative) keeps a copy of its
   weights; stop after ``patience`` epochs in which no member improved;
6. give each member back its best weights and make the ``num_elites`` best-scoring
   members the elites.

The trainer keeps its Adam state, so a second fit (a new round of data) continues
from the current weights and moments: a warm start. A loss or a prediction that
becomes NaN, infinite or larger than ``max_loss`` raises
:class:`~mbrl.models.ensemble.ModelDivergedError` naming the member and the epoch,
after putting the ensemble and the optimiser back as they were before the fit; the
trainer writes nothing else (no file), so a checkpoint the caller saved stays valid.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch import Tensor

from mbrl.model import ShapeError

from ._checks import at_least, open_interval, positive
from .ensemble import Ensemble, ModelDivergedError

__all__ = ["EnsembleTrainer", "FitReport", "TrainerConfig", "Transitions", "bootstrap_rows"]

#: Held-out rows scored per forward pass (bounds the memory of a validation pass).
_SCORE_CHUNK = 8192


@dataclass(frozen=True, kw_only=True)
class TrainerConfig:
    """How an :class:`EnsembleTrainer` fits."""

    learning_rate: float = 1e-3
    """Adam step size; 1e-3 in PETS and MBPO (typical 1e-4 to 3e-3)."""
    weight_decay: float = 5e-5
    """L2 penalty on the weight matrices (not biases or log-variance bounds); MBPO uses
    2.5e-5 to 1e-4 by layer (typical 0 to 1e-4)."""
    batch_size: int = 256
    """Rows per member per Adam step; 256 in MBPO, 32 in PETS."""
    holdout_fraction: float = 0.2
    """Fraction of the transitions held out for validation (early stopping and elites);
    0.2 in MBPO."""
    max_holdout: int = 5000
    """At most this many held-out rows; 5000 in MBPO."""
    max_epochs: int = 200
    """Upper bound on the epochs of one fit; early stopping usually ends it first."""
    patience: int = 5
    """Stop after this many epochs in which no member improved; 5 in MBPO."""
    improvement_threshold: float = 0.01
    """Relative decrease of a member's validation score that counts as an improvement;
    0.01 in MBPO."""
    bootstrap: bool = True
    """Each member trains on its own resample (with replacement) of the training rows; off:
    every member sees every row, in its own order."""
    member_holdouts: bool = False
    """Each member holds out its own random ``holdout_fraction`` of the rows (MB-MPO's
    per-model 80/20 splits) and trains on the rest; off: one split shared by all."""
    max_loss: float = 1e8
    """A training loss or validation score above this counts as diverged (as do NaN and
    infinity)."""

    def __post_init__(self):
        positive(self, "learning_rate", "batch_size", "max_holdout", "max_epochs", "max_loss")
        at_least(self, 0.0, "weight_decay", "improvement_threshold")
        at_least(self, 1, "patience")
        open_interval(self, "holdout_fraction", 0.0, 1.0)


@dataclass(frozen=True, kw_only=True)
class Transitions:
    """N transitions of one world, as tensors with leading dimension N."""

    obs: Tensor
    """[N, D] float32 observations."""
    action: Tensor
    """[N, A] float32 continuous actions, or [N] int64 discrete ones."""
    next_obs: Tensor
    """[N, D] float32 observations after the action."""
    reward: Tensor
    """[N] float32."""
    terminated: Tensor
    """[N] bool, True where ``next_obs`` is terminal (not where the episode was truncated)."""

    def __post_init__(self):
        n = self.obs.shape[0]
        if self.obs.ndim != 2 or self.next_obs.shape != self.obs.shape:
            raise ShapeError(
                f"Transitions.obs and next_obs must both be [N, D], got "
                f"{list(self.obs.shape)} and {list(self.next_obs.shape)}"
            )
        for name in ("action", "reward", "terminated"):
            value = getattr(self, name)
            if value.ndim == 0 or value.shape[0] != n:
                raise ShapeError(
                    f"Transitions.{name} must have N={n} rows, got {list(value.shape)}"
                )
        if self.reward.shape != (n,) or self.terminated.shape != (n,):
            raise ShapeError(
                f"Transitions.reward and terminated must be [{n}], got "
                f"{list(self.reward.shape)} and {list(self.terminated.shape)}"
            )
        if self.terminated.dtype != torch.bool:
            raise ShapeError(f"Transitions.terminated must be bool, got {self.terminated.dtype}")
        for name in ("obs", "action", "next_obs", "reward"):
            value = getattr(self, name)
            if value.is_floating_point() and not torch.isfinite(value).all():
                row = int(torch.nonzero(~torch.isfinite(value.reshape(n, -1)).all(1))[0])
                raise ValueError(f"Transitions.{name} is not finite in row {row}")

    def __len__(self) -> int:
        return self.obs.shape[0]


@dataclass(frozen=True, kw_only=True)
class FitReport:
    """What one :meth:`EnsembleTrainer.fit` did."""

    epochs: int
    """Epochs run."""
    stopped_early: bool
    """True when ``patience`` epochs passed without an improvement before ``max_epochs``."""
    validation_history: Tensor
    """[epochs + 1, E] every member's validation score before training (row 0) and after
    each epoch."""
    train_loss_history: Tensor
    """[epochs, E] every member's mean training loss in each epoch."""
    validation_scores: Tensor
    """[E] the score of the weights each member kept (its best)."""
    elites: tuple[int, ...]
    """The elite members, best first."""
    num_train: int
    """Training rows (before the bootstrap)."""
    num_holdout: int
    """Held-out rows."""

    def summary(self) -> str:
        """One line: epochs, rows, elites and the members' validation scores."""
        scores = ", ".join(f"{s:.4g}" for s in self.validation_scores.tolist())
        early = " (stopped early)" if self.stopped_early else ""
        return (
            f"ensemble fit: {self.epochs} epochs{early}, {self.num_train} training and "
            f"{self.num_holdout} held-out rows, elites {list(self.elites)}, validation "
            f"scores {scores}"
        )


def bootstrap_rows(
    train_rows: Tensor, num_members: int, bootstrap: bool, generator: torch.Generator | None
) -> Tensor:
    """``[E, N]`` the training rows of each member: a resample with replacement of
    ``train_rows [N]`` per member, or ``train_rows`` itself for every member."""
    n = len(train_rows)
    if not bootstrap:
        return train_rows.expand(num_members, n)
    picks = torch.randint(n, (num_members, n), generator=generator)
    return train_rows[picks]


def epoch_batches(
    member_rows: Tensor, batch_size: int, generator: torch.Generator | None
) -> list[Tensor]:
    """One epoch of ``[E, batch]`` index batches: each member's rows ``member_rows [E, N]``
    in its own random order, cut into batches (the last one may be shorter)."""
    keys = torch.rand(member_rows.shape, generator=generator)
    shuffled = member_rows.gather(1, torch.argsort(keys, dim=1))
    return list(shuffled.split(batch_size, dim=1))


class EnsembleTrainer:
    """Fits an ensemble; keeps the Adam state between fits (warm starts).

    ``state_dict``/``load_state_dict`` hold the optimiser, to checkpoint beside the
    ensemble's own ``state_dict``.
    """

    def __init__(self, ensemble: Ensemble, config: TrainerConfig | None = None):
        self.ensemble = ensemble
        self.config = config or TrainerConfig()
        decayed = list(ensemble.weights)
        rest = [p for p in ensemble.parameters() if all(p is not w for w in decayed)]

        def adam(**kernel) -> torch.optim.Adam:
            groups = [
                {"params": decayed, "weight_decay": self.config.weight_decay},
                {"params": rest, "weight_decay": 0.0},
            ]
            return torch.optim.Adam(groups, lr=self.config.learning_rate, **kernel)

        try:  # the fused kernel where this torch build has it for the device
            self.optimizer = adam(fused=True)
        except (RuntimeError, TypeError):
            self.optimizer = adam(foreach=True)

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])

    def fit(
        self,
        data: Transitions,
        *,
        generator: torch.Generator | None = None,
        console: Console | None = None,
    ) -> FitReport:
        """Fit the ensemble to ``data``; a progress bar on ``console`` (quiet without one).

        ``generator`` (a CPU ``torch.Generator``) draws the split, the bootstraps and the
        shuffles. Raises :class:`ModelDivergedError` with the ensemble and the optimiser
        as they were before the call (as any other error or an interrupt leaves them).
        """
        ensemble_state = copy.deepcopy(self.ensemble.state_dict())
        optimizer_state = copy.deepcopy(self.optimizer.state_dict())
        try:
            return self._fit(data, generator, console)
        except BaseException:
            self.ensemble.load_state_dict(ensemble_state)
            self.optimizer.load_state_dict(optimizer_state)
            raise

    # ------------------------------------------------------------------ one fit
    def _fit(self, data: Transitions, generator, console: Console | None) -> FitReport:
        ensemble, config = self.ensemble, self.config
        inputs, targets, terminated = self._rows(data)  # 1.
        num_members = ensemble.num_members
        if config.member_holdouts:  # [E, N - H] and [E, H]: every row trains some member
            splits = [self._split(len(data), generator) for _ in range(num_members)]
            train_rows = torch.stack([train for train, _ in splits])
            holdout_rows = torch.stack([held for _, held in splits])
            ensemble.input_normalizer.fit(inputs)  # 2.
            picks = bootstrap_rows(
                torch.arange(train_rows.shape[1]), num_members, config.bootstrap, generator
            )
            member_rows = train_rows.gather(1, picks)
        else:
            train_rows, holdout_rows = self._split(len(data), generator)  # on the CPU
            ensemble.input_normalizer.fit(inputs[train_rows.to(inputs.device)])  # 2.
            member_rows = bootstrap_rows(train_rows, num_members, config.bootstrap, generator)
        holdout_rows = holdout_rows.to(inputs.device)
        holdout = (inputs[holdout_rows], targets[holdout_rows], terminated[holdout_rows])
        best_score = self._validate(*holdout, epoch=0)  # the starting weights' scores
        best_weights = [p.detach().clone() for p in ensemble.parameters()]
        scores, losses = [best_score], []
        since_improvement, epoch = 0, 0
        with _progress(console) as progress:
            task = progress.add_task("ensemble fit", total=config.max_epochs, info="")
            for epoch in range(1, config.max_epochs + 1):
                losses.append(  # 3., 4.
                    self._train_epoch(inputs, targets, terminated, member_rows, epoch, generator)
                )
                score = self._validate(*holdout, epoch=epoch)  # 5.
                improved = score < best_score - config.improvement_threshold * best_score.abs()
                best_score = torch.where(improved, score, best_score)
                for best, param in zip(best_weights, ensemble.parameters()):
                    best[improved] = param.detach()[improved]
                ensemble.epochs_trained += 1
                scores.append(score)
                since_improvement = 0 if improved.any() else since_improvement + 1
                info = f"best validation {best_score.min():.4g}, members improved {improved.sum()}"
                progress.update(task, advance=1, info=info)
                if since_improvement >= config.patience:
                    break
        with torch.no_grad():  # 6.
            for best, param in zip(best_weights, ensemble.parameters()):
                param.copy_(best)
        elites = torch.argsort(best_score)[: ensemble.config.num_elites]
        ensemble.elites.copy_(elites)
        report = FitReport(
            epochs=epoch,
            stopped_early=since_improvement >= config.patience,
            validation_history=torch.stack(scores).cpu(),
            train_loss_history=torch.stack(losses).cpu(),
            validation_scores=best_score.cpu(),
            elites=tuple(elites.tolist()),
            num_train=train_rows.shape[-1],
            num_holdout=holdout_rows.shape[-1],
        )
        if console is not None:
            console.print(report.summary())
        return report

    def _rows(self, data: Transitions) -> tuple[Tensor, Tensor, Tensor]:
        """Inputs ``[N, in]``, targets ``[N, K]`` and terminations ``[N]`` on the device."""
        ensemble = self.ensemble
        device = ensemble.device
        obs, next_obs = data.obs.to(device), data.next_obs.to(device)
        inputs = ensemble.features(obs, data.action.to(device))
        targets = [next_obs - obs]
        if ensemble.config.learn_reward:
            targets.append(data.reward.to(device, obs.dtype)[:, None])
        return inputs, torch.cat(targets, dim=1), data.terminated.to(device)

    def _split(self, n: int, generator) -> tuple[Tensor, Tensor]:
        """``(train rows, held-out rows)``: a random split of ``range(n)``."""
        config = self.config
        num_holdout = min(config.max_holdout, max(1, round(n * config.holdout_fraction)))
        if n - num_holdout < 1:
            raise ValueError(
                f"an ensemble fit needs at least 2 transitions (one to train on, one held "
                f"out), got {n}"
            )
        order = torch.randperm(n, generator=generator)
        return order[num_holdout:], order[:num_holdout]

    def _train_epoch(self, inputs, targets, terminated, member_rows, epoch, generator) -> Tensor:
        """One pass of Adam steps; the mean training loss of each member ``[E]``."""
        total, count = 0.0, 0
        for rows in epoch_batches(member_rows, self.config.batch_size, generator):
            rows = rows.to(inputs.device)
            loss = self.ensemble.loss(inputs[rows], targets[rows], terminated[rows])  # [E]
            self._check(loss, epoch, "training loss")
            self.optimizer.zero_grad(set_to_none=True)
            loss.sum().backward()
            self.optimizer.step()
            total = total + loss.detach() * rows.shape[1]
            count += rows.shape[1]
        return total / count

    def _validate(self, inputs, targets, terminated, *, epoch: int) -> Tensor:
        """Every member's validation score ``[E]`` on the held-out rows (``[H, ...]``
        shared, or ``[E, H, ...]`` a set per member)."""
        total, rows = 0.0, inputs.shape[-2]
        for start in range(0, rows, _SCORE_CHUNK):
            part = slice(start, start + _SCORE_CHUNK)
            size = len(range(rows)[part])
            score = self.ensemble.score(
                inputs[..., part, :], targets[..., part, :], terminated[..., part]
            )
            total = total + score * size
        score = total / rows
        self._check(score, epoch, "validation score")
        return score

    def _check(self, values: Tensor, epoch: int, what: str) -> None:
        """Raise :class:`ModelDivergedError` for the first member whose value is bad."""
        bad = ~torch.isfinite(values) | (values > self.config.max_loss)
        if bool(bad.any()):
            member = int(torch.nonzero(bad)[0])
            raise ModelDivergedError(
                f"ensemble member {member} diverged in epoch {epoch} of this fit: its {what} "
                f"is {float(values[member].detach()):.4g} (NaN, infinite or above "
                f"TrainerConfig.max_loss={self.config.max_loss:g}); the ensemble and the "
                "optimiser are left as they were before the fit",
                member=member,
                epoch=epoch,
            )


def _progress(console: Console | None) -> Progress:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("epochs"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"),
    )
    return Progress(*columns, console=console, disable=console is None, transient=False)
