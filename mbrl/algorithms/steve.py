"""Stochastic ensemble value expansion (STEVE) for TD3 and SAC.

Buckman, Hafner, Tucker, Brevdo, Lee (2018), "Sample-Efficient Reinforcement Learning
with Stochastic Ensemble Value Expansion", NeurIPS. The project's own agents run
unchanged; the hook :class:`STEVE` replaces their critic target by a mix of the
targets of every horizon 0..H, each weighted by the inverse of its variance over the
ensembles, so that the model is used only where its members agree. Variants:
``steve-td3``, ``steve-sac``.

    1. initialise the agent, the dynamics ensemble (L members, each with its reward
       head or the env's known reward) and the replay D
    2. for each environment step: act, store in D; every model_train_every steps from
       learning_starts: fit the ensemble to D
    3. for each critic update on a minibatch (s_0, a_0, r_0, s_1, d_0) from D:
    4.   from s_1, roll the policy of the bootstrap (TD3: the smoothed target actor; SAC: the
         policy) H steps in each of the L elite members
    5.   for every horizon j = 0..H, member l and critic m, the candidate
         T_j^(l,m) = sum_(i<=j) gamma^i c_i r_i^l + gamma^(j+1) c_(j+1) V_m(s_(j+1)^l)
         (c: 1 while no step before was terminal; V_m: critic m's bootstrap value)
    6.   mean mu_j and variance sigma_j^2 of T_j over the L x M candidates;
         w_j = sigma_j^-2 / sum_i sigma_i^-2; target y = sum_j w_j mu_j
    7.   the agent's own critic, actor, temperature and target updates on y

The critics' values are centred on the agent's own bootstrap value, ``V_m =
min_m' V_m' + (V_m - mean_m' V_m')``, so that TD3's and SAC's clipped double-Q estimate
stays the candidates' mean while the critics' disagreement is their Q-variance (STEVE
had an ensemble of Q functions; these agents have two critics, and DDPG's one critic
has no variance to weigh, so STEVE needs TD3 or SAC). Progress rows log the weight each
horizon gets (``steve/weight_h<j>``, a moving mean over updates).
"""

from __future__ import annotations

import torch

from mbrl.algorithms.sac import SAC
from mbrl.algorithms.td3 import TD3
from mbrl.models import Propagation
from mbrl.training.expansion import Expansion, ValueExpansion, expansion_agent
from mbrl.training.replay import Batch, CriticTargets, TargetContext

__all__ = ["STEVE", "STEVESAC", "STEVETD3", "STEVESACConfig", "STEVETD3Config", "steve_weights"]

EPSILON = 1e-8
"""Added to each variance before it is inverted (the authors' code)."""
WEIGHT_MEMORY = 0.99
"""The moving mean of the logged horizon weights keeps this share of its last value."""


def steve_weights(candidates: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(means [H + 1, B], weights [H + 1, B])`` of candidates ``[N, H + 1, B]``
    (N samples of each horizon's target): step 6 of the module."""
    means = candidates.mean(0)
    variances = candidates.var(0, unbiased=False)
    confidence = 1.0 / (variances + EPSILON)
    return means, confidence / confidence.sum(0, keepdim=True)


class STEVE(ValueExpansion):
    """STEVE's critic target (steps 4-6 of the module)."""

    propagation = Propagation.TS_INF
    state_names = (*ValueExpansion.state_names, "weight_mean")

    def attach(self, agent, action_space) -> None:
        super().attach(agent, action_space)
        self.weight_mean = torch.zeros(self.config.expansion_horizon + 1)
        self.weight_mean[0] = 1.0  # before the first fit: the one-step target only
        self.last_weights = self.weight_mean.clone()  # of the last minibatch, mean over rows

    @property
    def num_rollouts(self) -> int:
        """L, one rollout per elite member (:meth:`LearnedModel.initial_state` spreads a
        transition's rollouts evenly over the elites)."""
        return self.config.model_elites

    def targets_of(self, expansion: Expansion, batch: Batch, context: TargetContext):
        values = expansion.values  # [L, M, H + 1, B]
        if values.shape[1] < 2:
            raise ValueError("STEVE needs two or more critics for its Q-variance (TD3, SAC)")
        own = values.min(1, keepdim=True).values
        centred = own + (values - values.mean(1, keepdim=True))
        candidates = expansion.candidates(context.gamma, centred)  # [L, M, H + 1, B]
        means, weights = steve_weights(candidates.flatten(0, 1))
        self.last_weights = weights.mean(1).cpu()
        self.weight_mean.mul_(WEIGHT_MEMORY).add_((1 - WEIGHT_MEMORY) * self.last_weights)
        return CriticTargets(batch.obs, batch.action, (weights * means).sum(0))

    def target_metrics(self) -> dict[str, float]:
        return {f"steve/weight_h{j}": float(w) for j, w in enumerate(self.weight_mean)}


_DOC = "{} with stochastic ensemble value expansion (the surface of :class:`mbrl.Agent`)."
STEVETD3 = expansion_agent(
    TD3, STEVE, algo="steve-td3", name="STEVETD3",
    doc=_DOC.format("TD3"), step_cost=200.0,
)  # fmt: skip
STEVESAC = expansion_agent(
    SAC, STEVE, algo="steve-sac", name="STEVESAC",
    doc=_DOC.format("SAC"), step_cost=240.0,
)  # fmt: skip
STEVETD3Config, STEVESACConfig = STEVETD3.Config, STEVESAC.Config
