"""The batched ensemble against a plain loop over separate member networks, its heads,
its normaliser and its config checks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mbrl.model import ShapeError
from mbrl.models import Activation, Ensemble, EnsembleConfig, EnsembleKind, TrainerConfig

pytestmark = pytest.mark.usefixtures("one_thread")

D, A = 4, 3  # observation and action dims
TORCH_ACTIVATIONS = {Activation.SILU: nn.SiLU, Activation.RELU: nn.ReLU, Activation.TANH: nn.Tanh}


def make_ensemble(seed: int = 0, **fields) -> Ensemble:
    fields = {"obs_dim": D, "action_dim": A, "num_members": 5, "hidden_sizes": (16, 8)} | fields
    ensemble = Ensemble(EnsembleConfig(**fields), generator=torch.Generator().manual_seed(seed))
    # A normaliser that is not the identity, so the reference must apply it too.
    ensemble.input_normalizer.fit(torch.randn(64, D + A) * 3 + 1)
    return ensemble


class Member(nn.Module):
    """One member as a plain network: nn.Sequential, then the PETS heads written out."""

    def __init__(self, ensemble: Ensemble, e: int):
        super().__init__()
        config = ensemble.config
        self.config = config
        layers = []
        for i, (weight, bias) in enumerate(zip(ensemble.weights, ensemble.biases)):
            linear = nn.Linear(weight.shape[1], weight.shape[2])
            with torch.no_grad():
                linear.weight.copy_(weight[e].T)
                linear.bias.copy_(bias[e, 0])
            layers.append(linear)
            if i < len(ensemble.weights) - 1:
                layers.append(TORCH_ACTIVATIONS[config.activation]())
        self.net = nn.Sequential(*layers)
        self.mean = ensemble.input_normalizer.mean.clone()
        self.std = ensemble.input_normalizer.std.clone()
        if config.probabilistic:
            self.max_log_var = nn.Parameter(ensemble.max_log_var[e, 0].detach().clone())
            self.min_log_var = nn.Parameter(ensemble.min_log_var[e, 0].detach().clone())

    def forward(self, x):
        k = self.config.num_targets
        out = self.net((x - self.mean) / self.std)
        mean, log_var, logit = out[:, :k], None, None
        if self.config.probabilistic:
            log_var = self.max_log_var - nn.functional.softplus(
                self.max_log_var - out[:, k : 2 * k]
            )
            log_var = self.min_log_var + nn.functional.softplus(log_var - self.min_log_var)
        if self.config.learn_termination:
            logit = out[:, -1]
        return mean, log_var, logit

    def loss(self, x, target, terminated):
        mean, log_var, logit = self(x)
        if self.config.probabilistic:
            loss = ((mean - target) ** 2 * torch.exp(-log_var) + log_var).mean()
            loss = loss + self.config.log_var_bound_coef * (
                self.max_log_var.sum() - self.min_log_var.sum()
            )
        else:
            loss = ((mean - target) ** 2).mean()
        if logit is not None:
            loss = loss + nn.functional.binary_cross_entropy_with_logits(logit, terminated.float())
        return loss


CONFIGS = {
    "probabilistic": {},
    "probabilistic-termination-relu": {"learn_termination": True, "activation": Activation.RELU},
    "probabilistic-no-reward-tanh": {"learn_reward": False, "activation": Activation.TANH},
    "deterministic": {"kind": EnsembleKind.DETERMINISTIC},
    "deterministic-termination": {"kind": EnsembleKind.DETERMINISTIC, "learn_termination": True},
}


@pytest.mark.parametrize("fields", CONFIGS.values(), ids=CONFIGS.keys())
def test_batched_ensemble_equals_a_loop_over_member_networks(fields):
    ensemble = make_ensemble(**fields)
    config = ensemble.config
    members = [Member(ensemble, e) for e in range(config.num_members)]
    g = torch.Generator().manual_seed(1)
    e, b, k = config.num_members, 9, config.num_targets
    x = torch.randn(e, b, config.num_inputs, generator=g) * 2
    targets = torch.randn(e, b, k, generator=g)
    terminated = torch.rand(e, b, generator=g) < 0.3

    out = ensemble(x)
    for i, member in enumerate(members):
        mean, log_var, logit = member(x[i])
        torch.testing.assert_close(out.mean[i], mean)
        if config.probabilistic:
            torch.testing.assert_close(out.log_var[i], log_var)
        else:
            assert out.log_var is None and log_var is None
        if config.learn_termination:
            torch.testing.assert_close(out.termination_logit[i], logit)
        else:
            assert out.termination_logit is None

    loss = ensemble.loss(x, targets, terminated)
    loop_losses = torch.stack(
        [m.loss(x[i], targets[i], terminated[i]) for i, m in enumerate(members)]
    )
    torch.testing.assert_close(loss, loop_losses)
    loss.sum().backward()
    loop_losses.sum().backward()
    for i, member in enumerate(members):
        linears = [layer for layer in member.net if isinstance(layer, nn.Linear)]
        for weight, bias, linear in zip(ensemble.weights, ensemble.biases, linears):
            torch.testing.assert_close(weight.grad[i], linear.weight.grad.T)
            torch.testing.assert_close(bias.grad[i, 0], linear.bias.grad)
        if config.probabilistic:
            torch.testing.assert_close(ensemble.max_log_var.grad[i, 0], member.max_log_var.grad)
            torch.testing.assert_close(ensemble.min_log_var.grad[i, 0], member.min_log_var.grad)


def test_shared_inputs_and_member_subsets_are_slices_of_the_full_forward():
    ensemble = make_ensemble(learn_termination=True)
    x = torch.randn(6, ensemble.config.num_inputs)
    full = ensemble(x)  # [E, B, ...] every member on the same rows
    each = ensemble(x.expand(5, 6, -1).contiguous())
    subset = ensemble(x, members=torch.tensor([3, 1]))
    for a, b, c in zip(full.tensors(), each.tensors(), subset.tensors()):
        torch.testing.assert_close(a, b)
        torch.testing.assert_close(c, a[[3, 1]])


@pytest.mark.parametrize("member", [[0, 1, 2, 3, 4, 0, 1], [4, 4, 2, 4, 4, 2, 4], [3] * 7])
def test_rows_through_their_own_member(member):
    ensemble = make_ensemble(learn_termination=True)
    x = torch.randn(7, ensemble.config.num_inputs)
    member = torch.tensor(member)
    rows = ensemble.forward_rows(x, member)
    full = ensemble(x)
    for a, b in zip(rows.tensors(), full.tensors()):
        assert a.shape == b.shape[1:]
        torch.testing.assert_close(a, b[member, torch.arange(7)])


def test_log_variance_stays_between_the_learned_bounds():
    ensemble = make_ensemble()
    with torch.no_grad():
        ensemble.max_log_var[2] = 0.3
    out = ensemble(torch.randn(100, ensemble.config.num_inputs) * 1e4)
    # A soft clamp: the lower softplus lifts the top by softplus's tail, e^-(max - min).
    assert (out.log_var <= ensemble.max_log_var + 1e-4).all()
    assert (out.log_var >= ensemble.min_log_var).all()
    assert out.log_var.max() > 0.25  # huge inputs reach the bounds
    assert out.log_var.min() < ensemble.config.init_min_log_var + 0.1


def test_the_state_dict_holds_the_normaliser_and_the_elites():
    ensemble = make_ensemble()
    ensemble.elites.copy_(torch.tensor([4, 0, 2, 1, 3]))
    keys = set(ensemble.state_dict())
    assert {"input_normalizer.mean", "input_normalizer.std", "elites", "epochs_trained"} <= keys
    fresh = make_ensemble(seed=5)
    fresh.input_normalizer.fit(torch.randn(10, D + A))
    x = torch.randn(3, D + A)
    assert not torch.allclose(fresh(x).mean, ensemble(x).mean)
    fresh.load_state_dict(ensemble.state_dict())
    assert torch.equal(fresh(x).mean, ensemble(x).mean)
    assert fresh.elites.tolist() == [4, 0, 2, 1, 3]


def test_a_constant_input_column_keeps_unit_scale():
    ensemble = make_ensemble()
    x = torch.randn(50, D + A)
    x[:, 2] = 7.0
    ensemble.input_normalizer.fit(x)
    assert ensemble.input_normalizer.std[2] == 1.0
    normalised = ensemble.input_normalizer(x)
    assert torch.allclose(normalised[:, 2], torch.zeros(50))
    assert torch.allclose(normalised.mean(0)[[0, 1, 3]], torch.zeros(3), atol=1e-6)


def test_features_encode_discrete_actions_one_hot_and_check_shapes():
    ensemble = make_ensemble(discrete_actions=True)
    obs = torch.randn(2, D)
    x = ensemble.features(obs, torch.tensor([2, 0]))
    assert torch.equal(x[:, D:], torch.tensor([[0.0, 0, 1], [1, 0, 0]]))
    with pytest.raises(ShapeError, match="int64"):
        ensemble.features(obs, torch.tensor([1.0, 0.0]))
    continuous = make_ensemble()
    with pytest.raises(ShapeError, match=r"\[2, 3\]"):
        continuous.features(obs, torch.zeros(2, 2))
    with pytest.raises(ShapeError, match="obs"):
        continuous.features(torch.zeros(2, D + 1), torch.zeros(2, A))


BAD_ENSEMBLE_FIELDS = [
    ("num_members", 0),
    ("num_elites", 0),
    ("num_elites", 6),  # more elites than members (5)
    ("hidden_sizes", ()),
    ("hidden_sizes", (32, 0)),
    ("obs_dim", 0),
    ("action_dim", -1),
    ("kind", "probabilistic"),
    ("activation", "silu"),
    ("init_min_log_var", 1.0),
    ("log_var_bound_coef", -0.1),
]


@pytest.mark.parametrize(("field", "value"), BAD_ENSEMBLE_FIELDS)
def test_bad_ensemble_configs_name_the_field(field, value):
    fields = {"obs_dim": D, "action_dim": A, "num_members": 5, "num_elites": 3} | {field: value}
    with pytest.raises(ValueError, match=rf"EnsembleConfig\.{field} must"):
        EnsembleConfig(**fields)


BAD_TRAINER_FIELDS = [
    ("holdout_fraction", 0.0),
    ("holdout_fraction", 1.0),
    ("holdout_fraction", 1.5),
    ("learning_rate", 0.0),
    ("batch_size", 0),
    ("max_epochs", 0),
    ("patience", 0),
    ("weight_decay", -1e-4),
    ("improvement_threshold", -0.5),
    ("max_holdout", 0),
    ("max_loss", 0.0),
]


@pytest.mark.parametrize(("field", "value"), BAD_TRAINER_FIELDS)
def test_bad_trainer_configs_name_the_field(field, value):
    with pytest.raises(ValueError, match=rf"TrainerConfig\.{field} must"):
        TrainerConfig(**{field: value})
