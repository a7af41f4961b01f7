"""The ensemble trainer: fitting a known system, early stopping, elites, warm starts,
bootstraps, progress, and the clear error of a diverging fit."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from rich.console import Console

from mbrl.models import (
    Ensemble,
    EnsembleConfig,
    EnsembleKind,
    EnsembleTrainer,
    ModelDivergedError,
    TrainerConfig,
    Transitions,
)
from mbrl.models.trainer import bootstrap_rows, epoch_batches

pytestmark = pytest.mark.usefixtures("one_thread")

D, A = 3, 2
#: A stable linear system: next_obs = obs + obs @ DYNAMICS.T + action @ CONTROL + noise.
DYNAMICS = torch.tensor([[0.9, 0.1, 0.0], [-0.1, 0.95, 0.05], [0.0, 0.2, 0.8]]) - torch.eye(D)
CONTROL = torch.tensor([[0.5, 0.0, 0.1], [0.0, 0.3, -0.2]])


def linear_system(n: int, seed: int, *, scale: float = 1.0, noise: float = 0.01) -> Transitions:
    """Transitions of the linear system from inputs of std ``scale``; reward -|obs|^2."""
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(n, D, generator=g) * scale
    action = (torch.rand(n, A, generator=g) * 2 - 1) * scale
    next_obs = obs + obs @ DYNAMICS.T + action @ CONTROL + noise * torch.randn(n, D, generator=g)
    reward = -(obs**2).sum(1)
    return Transitions(
        obs=obs,
        action=action,
        next_obs=next_obs,
        reward=reward,
        terminated=torch.zeros(n, dtype=torch.bool),
    )


def make(kind=EnsembleKind.PROBABILISTIC, *, seed=0, hidden=(64, 64), **trainer_fields):
    config = EnsembleConfig(
        obs_dim=D,
        action_dim=A,
        kind=kind,
        num_members=5,
        num_elites=3,
        hidden_sizes=hidden,
        learn_reward=False,
    )
    ensemble = Ensemble(config, generator=torch.Generator().manual_seed(seed))
    return ensemble, EnsembleTrainer(ensemble, TrainerConfig(**trainer_fields))


def total_variance(ensemble: Ensemble, data: Transitions) -> torch.Tensor:
    """The moment-matched predictive variance, averaged over rows and dims."""
    with torch.no_grad():
        out = ensemble(ensemble.features(data.obs, data.action))
    variance = out.mean.var(0, unbiased=False)
    if out.log_var is not None:
        variance = variance + out.log_var.exp().mean(0)
    return variance.mean()


@pytest.mark.parametrize("kind", list(EnsembleKind))
def test_fits_a_linear_system_and_is_unsure_off_the_data(kind):
    ensemble, trainer = make(kind, max_epochs=100, patience=10)
    report = trainer.fit(linear_system(2000, seed=1), generator=torch.Generator().manual_seed(2))
    test = linear_system(1000, seed=3, noise=0.0)
    with torch.no_grad():
        mean = ensemble(ensemble.features(test.obs, test.action)).mean.mean(0)
    error = ((mean - (test.next_obs - test.obs)) ** 2).mean()
    assert error < 1e-4  # the targets' variance is about 0.2, the noise's 1e-4
    assert report.validation_scores.max() < 5e-4
    far = linear_system(1000, seed=4, scale=5.0, noise=0.0)
    assert total_variance(ensemble, far) > 10 * total_variance(ensemble, test)
    if kind is EnsembleKind.PROBABILISTIC:  # the learned noise level, std 0.01
        with torch.no_grad():
            log_var = ensemble(ensemble.features(test.obs, test.action)).log_var
        assert 3e-5 < log_var.exp().mean() < 3e-4


def test_early_stopping_keeps_each_members_best_weights_and_picks_elites():
    ensemble, trainer = make(
        hidden=(32,), max_epochs=60, patience=3, improvement_threshold=0.0, batch_size=16
    )
    data = linear_system(200, seed=5, noise=0.3)  # small and noisy: it overfits soon
    report = trainer.fit(data, generator=torch.Generator().manual_seed(6))
    assert report.stopped_early and report.epochs < 60
    assert report.validation_history.shape == (report.epochs + 1, 5)
    assert report.train_loss_history.shape == (report.epochs, 5)
    best = report.validation_history.min(0).values
    assert torch.equal(report.validation_scores, best)
    assert report.elites == tuple(torch.argsort(best)[:3].tolist())
    assert ensemble.elites.tolist() == list(report.elites)
    assert int(ensemble.epochs_trained) == report.epochs
    assert (report.num_train, report.num_holdout) == (160, 40)
    # The weights kept score their best: the same split again, and no learning to speak of.
    again = EnsembleTrainer(ensemble, TrainerConfig(learning_rate=1e-12, max_epochs=1))
    second = again.fit(data, generator=torch.Generator().manual_seed(6))
    torch.testing.assert_close(second.validation_history[0], best)


def test_a_second_fit_starts_from_the_current_weights():
    ensemble, trainer = make(max_epochs=15)
    first = trainer.fit(linear_system(1000, seed=7), generator=torch.Generator().manual_seed(8))
    assert first.validation_history[0].min() > 10 * first.validation_scores.max()
    second = trainer.fit(linear_system(1000, seed=9), generator=torch.Generator().manual_seed(10))
    # New data and a new split, but the starting point is the first fit's result.
    assert second.validation_history[0].max() < 3 * first.validation_scores.max()
    assert int(ensemble.epochs_trained) == first.epochs + second.epochs
    assert trainer.optimizer.state_dict()["state"]  # the Adam moments carried over


def test_the_same_generator_gives_the_same_fit():
    reports = []
    for _ in range(2):
        ensemble, trainer = make(hidden=(16,), max_epochs=3)
        reports.append(
            trainer.fit(linear_system(300, 11), generator=torch.Generator().manual_seed(1))
        )
        reports[-1] = (reports[-1], [p.detach().clone() for p in ensemble.parameters()])
    (first, weights), (second, weights_again) = reports
    assert torch.equal(first.validation_history, second.validation_history)
    assert all(torch.equal(a, b) for a, b in zip(weights, weights_again))


def test_member_holdouts_score_each_member_on_its_own_split():
    data = linear_system(200, seed=12)
    ensemble, trainer = make(hidden=(16,), max_epochs=1, member_holdouts=True)
    untrained = copy.deepcopy(ensemble)
    report = trainer.fit(data, generator=torch.Generator().manual_seed(13))
    assert (report.num_train, report.num_holdout) == (160, 40)
    # the oracle: member e's 40 held-out rows are the head of the e-th permutation drawn
    g = torch.Generator().manual_seed(13)
    held = [torch.randperm(200, generator=g)[:40] for _ in range(5)]
    inputs = untrained.features(data.obs, data.action)
    untrained.input_normalizer.fit(inputs)  # on every row: each trains some member
    targets = data.next_obs - data.obs
    want = torch.stack(
        [untrained.score(inputs[rows], targets[rows])[e] for e, rows in enumerate(held)]
    )
    torch.testing.assert_close(report.validation_history[0], want)
    shared = torch.stack([untrained.score(inputs[held[0]], targets[held[0]])])[0]
    assert not torch.allclose(want[1:], shared[1:])  # the splits differ between members


def test_bootstraps_and_epoch_batches_per_member():
    train_rows = torch.arange(10, 60)
    g = torch.Generator().manual_seed(0)
    plain = bootstrap_rows(train_rows, 4, False, g)
    assert plain.shape == (4, 50) and (plain == train_rows).all()
    resampled = bootstrap_rows(train_rows, 4, True, g)
    assert resampled.shape == (4, 50)
    assert torch.isin(resampled, train_rows).all()
    for member in resampled:
        assert len(member.unique()) < 50  # drawn with replacement: some rows twice
    assert not torch.equal(resampled[0], resampled[1])
    batches = epoch_batches(resampled, 16, g)
    assert [b.shape for b in batches] == [(4, 16)] * 3 + [(4, 2)]
    epoch = torch.cat(batches, dim=1)
    for member in range(4):  # each member's epoch is a shuffle of its own resample
        assert torch.equal(epoch[member].sort().values, resampled[member].sort().values)
    assert not torch.equal(epoch[0].sort().values, epoch[1].sort().values)
    plain_epoch = torch.cat(epoch_batches(plain, 16, g), dim=1)
    assert not torch.equal(plain_epoch[0], plain_epoch[1])  # the same rows, own orders


def test_progress_on_a_console_and_quiet_without_one(capsys):
    _, trainer = make(hidden=(8,), max_epochs=2)
    trainer.fit(linear_system(100, 12), generator=torch.Generator().manual_seed(0))
    assert capsys.readouterr() == ("", "")
    out = io.StringIO()
    trainer.fit(linear_system(100, 12), console=Console(file=out, width=150))
    text = out.getvalue()
    assert "ensemble fit" in text and "epochs" in text and "elites" in text


def snapshot(ensemble: Ensemble, trainer: EnsembleTrainer):
    return (
        {k: v.clone() for k, v in ensemble.state_dict().items()},
        repr(trainer.optimizer.state_dict()),
    )


def assert_unchanged(ensemble, trainer, before):
    weights, optimizer = before
    after = ensemble.state_dict()
    assert all(torch.equal(after[k], v) for k, v in weights.items())
    assert repr(trainer.optimizer.state_dict()) == optimizer


def test_a_poisoned_target_batch_raises_and_leaves_model_and_checkpoint_intact(tmp_path):
    ensemble, trainer = make(hidden=(16,), max_epochs=3)
    trainer.fit(linear_system(300, 13), generator=torch.Generator().manual_seed(0))
    checkpoint = tmp_path / "model.pt"
    torch.save({"ensemble": ensemble.state_dict(), "trainer": trainer.state_dict()}, checkpoint)
    saved = checkpoint.read_bytes()
    before = snapshot(ensemble, trainer)
    data = linear_system(300, 14)
    data.next_obs[17, 1] = 1e30  # finite, but its squared error overflows
    with pytest.raises(ModelDivergedError) as info:
        trainer.fit(data, generator=torch.Generator().manual_seed(0))
    error = info.value
    assert 0 <= error.member < 5 and error.epoch == 1
    assert f"member {error.member}" in str(error) and f"epoch {error.epoch}" in str(error)
    assert_unchanged(ensemble, trainer, before)
    assert checkpoint.read_bytes() == saved
    assert list(tmp_path.iterdir()) == [checkpoint]
    trainer.fit(linear_system(300, 15), generator=torch.Generator().manual_seed(0))  # fit on


def test_an_exploding_learning_rate_raises_naming_member_and_epoch():
    ensemble, trainer = make(hidden=(16,), max_epochs=3)
    trainer.fit(linear_system(300, 16), generator=torch.Generator().manual_seed(0))
    before = snapshot(ensemble, trainer)
    wild = EnsembleTrainer(ensemble, TrainerConfig(learning_rate=1e6, max_epochs=20))
    with pytest.raises(ModelDivergedError, match=r"member \d+ diverged in epoch \d+") as info:
        wild.fit(linear_system(300, 17), generator=torch.Generator().manual_seed(0))
    assert 1 <= info.value.epoch <= 20
    assert_unchanged(ensemble, trainer, before)


def test_a_nan_prediction_in_validation_names_the_member():
    ensemble, trainer = make(hidden=(16,), max_epochs=3)
    with torch.no_grad():
        ensemble.weights[1][3, 0, 0] = float("nan")
    before = snapshot(ensemble, trainer)
    with pytest.raises(ModelDivergedError, match="member 3 diverged in epoch 0") as info:
        trainer.fit(linear_system(300, 18), generator=torch.Generator().manual_seed(0))
    assert (info.value.member, info.value.epoch) == (3, 0)
    weights, optimizer = before
    after = ensemble.state_dict()
    assert all(torch.equal(after[k].nan_to_num(), v.nan_to_num()) for k, v in weights.items())
    assert torch.isnan(ensemble.weights[1][3, 0, 0])  # the same (poisoned) weights as given
    assert repr(trainer.optimizer.state_dict()) == optimizer


def test_bad_transitions_are_refused():
    data = linear_system(10, 0)
    with pytest.raises(ValueError, match=r"Transitions.next_obs is not finite in row 4"):
        next_obs = data.next_obs.clone()
        next_obs[4, 0] = float("nan")
        Transitions(
            obs=data.obs,
            action=data.action,
            next_obs=next_obs,
            reward=data.reward,
            terminated=data.terminated,
        )
    with pytest.raises(ValueError, match="reward"):
        Transitions(
            obs=data.obs,
            action=data.action,
            next_obs=data.next_obs,
            reward=data.reward[:5],
            terminated=data.terminated,
        )
    _, trainer = make(hidden=(8,))
    with pytest.raises(ValueError, match="at least 2 transitions"):
        trainer.fit(linear_system(1, 0))
