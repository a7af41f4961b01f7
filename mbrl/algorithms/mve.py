"""Model-based value expansion (MVE) for DDPG, TD3 and SAC.

Feinberg, Wan, Stoica, Jordan, Gonzalez, Levine (2018), "Model-Based Value Estimation
for Efficient Model-Free Reinforcement Learning". The project's own agents run
unchanged; the hook :class:`MVE` only replaces their critic targets by H-step
targets through a learned dynamics ensemble (its mean: one deterministic
prediction, as the paper's one network), and adds the TD-k trick. Variants:
``mve-ddpg``, ``mve-td3``, ``mve-sac``; or any of the three with
``model_hook=MVE(expansion_horizon=3)``.

    1. initialise the agent (actor, critics, targets), the ensemble f and the replay D
    2. for each environment step: act, store in D (the agent's own lines); every
       model_train_every steps from learning_starts: fit f to D
    3. for each critic update on a minibatch (s_0, a_0, r_0, s_1, d_0) from D:
    4.   imagine a_k = pi'(s_k), (s_(k+1), r_k, d_k) = f(s_k, a_k) for k = 1..H (pi': the
         policy of the bootstrap: TD3's smoothed target actor, DDPG's target actor, SAC's
         policy)
    5.   y_(H+1) = V'(s_(H+1)); y_k = r_k + gamma (1 - d_k) y_(k+1) for k = H..0
         (V': the agent's bootstrap value under its target networks; a terminal d_k
         ends the sum)
    6.   critic loss: (Q(s_0, a_0) - y_0)^2, plus with the TD-k trick
         sum_k c_k (Q(s_k, a_k) - y_k)^2 over the imagined pairs, c_k = 1 while no
         step before k was terminal (divided by H with divide_by_horizon)
    7.   the agent's own actor, temperature and target updates

Above, index k counts the real step as 0 (its next state s_1 is the first frame of the
expansion in :mod:`mbrl.training.expansion`). H = 0 is the plain agent.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mbrl.algorithms.ddpg import DDPG
from mbrl.algorithms.sac import SAC
from mbrl.algorithms.td3 import TD3
from mbrl.models import Propagation
from mbrl.training.expansion import (
    Expansion,
    ExpansionFields,
    ValueExpansion,
    expansion_agent,
)
from mbrl.training.replay import Batch, CriticTargets, TargetContext

__all__ = [
    "MVE",
    "MVEDDPG",
    "MVESAC",
    "MVETD3",
    "MVEDDPGConfig",
    "MVEFields",
    "MVESACConfig",
    "MVETD3Config",
    "mve_targets",
]


@dataclass(frozen=True, kw_only=True)
class MVEFields(ExpansionFields):
    """MVE's expansion (defaults: the authors' code, with STEVE's horizon)."""

    td_k: bool = True
    """The TD-k trick: the critic also regresses every imagined pair on its
    remaining-horizon target (off: the authors' ``drop_tdk`` ablation)."""
    divide_by_horizon: bool = False
    """Divide the TD-k loss over the imagined pairs by H (the authors' ``div_by_h``
    loss normaliser)."""


def mve_targets(rewards, dones, values, gamma: float):
    """``y [H + 1, B]`` the remaining-horizon targets of step 5 from ``rewards``,
    ``dones`` ``[H + 1, B]`` (step 0 the real one) and ``values [B]`` at the last frame."""
    y = values
    out = []
    for k in range(rewards.shape[0] - 1, -1, -1):
        y = rewards[k] + gamma * (1.0 - dones[k]) * y
        out.append(y)
    return torch.stack(out[::-1])


class MVE(ValueExpansion):
    """MVE's critic rows (steps 4-6 of the module): the H-step target of the real pair
    and, with the TD-k trick, the imagined pairs with theirs."""

    fields = MVEFields
    propagation = Propagation.MEAN

    def targets_of(self, expansion: Expansion, batch: Batch, context: TargetContext):
        h, b, config = expansion.horizon, len(batch), self.config
        bootstrap = expansion.values[0, :, h].min(0).values  # the agent's own V'(s_(H+1))
        targets = mve_targets(expansion.rewards[0], expansion.dones[0], bootstrap, context.gamma)
        if not config.td_k:
            return CriticTargets(batch.obs, batch.action, targets[0])
        reach = expansion.continues()[0, : h + 1]  # c_k of the pair at step k: [H + 1, B]
        weight = reach / b
        if config.divide_by_horizon and h > 0:
            weight[1:] = weight[1:] / h
        return CriticTargets(
            obs=torch.cat([batch.obs, expansion.frames[0, :h].flatten(0, 1)]),
            action=torch.cat([batch.action, expansion.actions[0].flatten(0, 1)]),
            target=targets.flatten(),
            weight=weight.flatten(),
        )


_DOC = "{} with model-based value expansion (the surface of :class:`mbrl.Agent`)."
MVEDDPG = expansion_agent(
    DDPG, MVE, algo="mve-ddpg", name="MVEDDPG",
    doc=_DOC.format("DDPG"), step_cost=150.0,
)  # fmt: skip
MVETD3 = expansion_agent(
    TD3, MVE, algo="mve-td3", name="MVETD3",
    doc=_DOC.format("TD3"), step_cost=160.0,
)  # fmt: skip
MVESAC = expansion_agent(
    SAC, MVE, algo="mve-sac", name="MVESAC",
    doc=_DOC.format("SAC"), step_cost=200.0,
)  # fmt: skip
MVEDDPGConfig, MVETD3Config, MVESACConfig = MVEDDPG.Config, MVETD3.Config, MVESAC.Config
