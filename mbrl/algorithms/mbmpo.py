"""Model-based meta-policy optimisation (MB-MPO).

Clavera, Rothfuss, Schulman, Fujita, Asfour, Abbeel (2018), "Model-Based Reinforcement
Learning via Meta-Policy Optimization", CoRL (arXiv:1809.05214). Every member of a
learned ensemble is a task: one policy-gradient step adapts the meta-policy pi_theta to
a member, and a trust-region step on theta improves the return of the adapted policies
across the members, differentiating through the adaptation (second-order gradients, as
MAML). The trust-region step is the project's TRPO step
(:func:`~mbrl.algorithms.trpo.natural_gradient_step`) on the meta-objective; this file
holds no second TRPO. Defaults follow the authors' run script: 5 members of 2x512 ReLU
with their own 80/20 validation splits, 20 tasks of 50 imagined rollouts each, inner
step 1e-3, KL 0.01, 30 meta-steps per iteration, a 32x32 tanh policy (initial std 1),
rllab's linear feature baseline, discount 0.99, 5,000 initial random steps.

    1. initialise pi_theta, the members f_1..f_K and the real data D (random actions)
    2. for each iteration:
    3.   fit every member to D (its own held-out split; early stopping; warm start)
    4.   repeat meta_steps times:
    5.     for each task i (member f_{i mod K}): imagined rollouts T_i of pi_theta in f_i
           from real start observations
    6.     advantages A by discounted returns minus a linear baseline fitted per task
    7.     adapt: theta'_i = theta + inner_lr * grad_theta mean(log pi_theta(a|s) A) on T_i
    8.     imagined rollouts T'_i of pi_theta'_i in f_i; their advantages A'
    9.     TRPO step on theta: maximise mean_i mean(pi_theta'_i(a|s) / pi_old'_i(a|s) A')
           on T'_i subject to mean_i KL(pi_old'_i || pi_theta'_i) <= max_kl, theta'_i a
           function of theta through step 7 (conjugate gradient on its Hessian-vector
           products, backtracking line search)
   10.   run the adapted policies pi_theta'_i of the last meta-step in the real env (one
         episode each, in turn) for model_train_every steps; add them to D
   11.   every eval_every real steps: evaluate the deterministic meta-policy pi_theta

``inner_lr = 0`` makes theta'_i = theta: the paper's ablation, ensemble TRPO (one TRPO
step on imagined rollouts from every member, no adaptation). The progress log carries
the imagined-step count beside the real one and the seconds spent on real steps, model
fitting, imagination and policy updates.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
import tyro
from rich.console import Console
from torch import Tensor, nn
from torch.func import functional_call, vmap

from mbrl.algorithms.trpo import natural_gradient_step
from mbrl.models import Activation, Propagation
from mbrl.training.checkpoint import RngStates, agent_files
from mbrl.training.config import DeviceFields, EnvFields, RunFields, at_least, fail, in_range
from mbrl.training.envs import evaluate
from mbrl.training.modelbased import (
    DynamicsFields,
    GeneratorPart,
    checked_obs,
    fit_dynamics,
    learn_in_iterations,
    reset_observations,
    setup_imagination,
    validate_dynamics_fields,
)
from mbrl.training.nets import ActorCritic, mlp
from mbrl.training.returns import linear_baseline

__all__ = ["MBMPO", "MBMPOConfig", "MetaPolicy"]


@dataclass(frozen=True, kw_only=True)
class MBMPOConfig(DynamicsFields, DeviceFields, RunFields, EnvFields):
    """MB-MPO (defaults: Clavera et al. 2018's run script; rllab's TRPO otherwise)."""

    env: str = "Pendulum-v1"
    """Gymnasium id with flat Box observations and a Box action space."""
    total_steps: int = 100_000
    """Real environment steps to train for."""
    eval_every: int = 4_000
    """Real steps between evaluations of the deterministic meta-policy (real env)."""
    eval_episodes: int = 5
    """Episodes per evaluation; 0: the training episodes' returns only."""
    checkpoint_every: int = 4_000
    """Real steps between checkpoints (taken between iterations; also every few minutes
    and at the end)."""
    log_every: int = 4_000
    """Real steps between rows of progress.csv (one row per iteration at most)."""
    initial_random_steps: int = 5_000
    """Real steps of uniformly random actions before the first fit (the authors' 5,000)."""
    ensemble_size: int = 5
    """K, deterministic members, each a task; 5 in the paper."""
    model_elites: int = 5
    """Every member is a task: all of them."""
    probabilistic: bool = False
    """Deterministic members trained by squared error on the change of state."""
    model_hidden_sizes: tuple[int, ...] = (512, 512)
    """Hidden widths of each member; 2x512 in the authors' script."""
    model_activation: Annotated[Activation, tyro.conf.EnumChoicesFromValues] = Activation.RELU
    """ReLU, as the authors'."""
    model_batch_size: int = 500
    """Transitions per member per gradient step; 500 as the authors'."""
    model_weight_decay: float = 0.0
    """No L2, as the authors'."""
    model_max_epochs: int = 500
    """Most epochs of one fit (the authors' 500; early stopping ends it first)."""
    model_member_holdouts: bool = True
    """Each member its own 80/20 split, as the authors'."""
    model_train_every: int = 4_000
    """Real steps per iteration after the first, collected with the adapted policies
    (the authors' 20 tasks x one 200-step episode)."""
    meta_batch_size: int = 20
    """Tasks per meta-step; task i adapts to member i mod K (20 in the script)."""
    imagined_rollouts: int = 50
    """Imagined episodes per task and meta-step, before and after the adaptation (the
    authors' batch_size_dynamics_samples)."""
    imagined_horizon: int = 0
    """Steps of an imagined episode; 0: the env's time limit (200 in the paper)."""
    meta_steps: int = 30
    """Meta-steps (adaptation and TRPO step) per iteration (num_maml_steps_per_iter)."""
    inner_lr: float = 1e-3
    """Step size of the adaptation (fast_lr); 0: no adaptation (ensemble TRPO)."""
    policy_hidden_sizes: tuple[int, ...] = (32, 32)
    """Hidden widths of the tanh policy; () a linear policy."""
    log_std_init: float = 0.0
    """Initial log-std of the Gaussian policy (std 1), adapted with the mean."""
    max_kl: float = 0.01
    """The meta-step's trust region (meta_step_size 0.01)."""
    cg_iters: int = 10
    """Conjugate gradient iterations (rllab's 10)."""
    cg_damping: float = 1e-5
    """Damping of the Hessian-vector products (rllab's reg_coeff)."""
    line_search_shrink: float = 0.8
    """Backtracking factor (rllab's 0.8)."""
    line_search_iters: int = 15
    """Backtracking steps before the meta-step is rejected (rllab's 15)."""
    gamma: float = 0.99
    """Discount of the imagined returns."""
    start_pool: int = 1_000
    """Real start observations (env resets, drawn once) the imagined episodes start from."""

    def __post_init__(self):
        validate_dynamics_fields(self)
        at_least(self, 1, "meta_batch_size", "imagined_rollouts", "meta_steps", "start_pool",
                 "cg_iters", "line_search_iters")  # fmt: skip
        at_least(self, 0, "imagined_horizon")
        at_least(self, 2, "initial_random_steps")
        at_least(self, 0.0, "inner_lr", "cg_damping")
        if any(size < 1 for size in self.policy_hidden_sizes):
            fail(self, "policy_hidden_sizes", "be positive sizes")
        in_range(self, "gamma", 0.0, 1.0)
        in_range(self, "line_search_shrink", 0.0, 1.0, open_low=True, open_high=True)
        if not self.max_kl > 0:
            fail(self, "max_kl", "be > 0")
        if self.initial_random_steps > self.total_steps:
            fail(self, "initial_random_steps", f"be <= total_steps ({self.total_steps})")


class MetaPolicy(nn.Module):
    """The Gaussian policy as a function of its parameters: ``forward(obs [..., O])`` is
    ``cat(mean, log_std) [..., 2A]`` (a tanh MLP and a state-independent log-std, both
    adapted), so ``functional_call`` evaluates it at adapted parameters. The
    distribution's arithmetic is :class:`~mbrl.training.nets.ActorCritic`'s."""

    discrete = False
    log_prob = ActorCritic.log_prob
    kl = ActorCritic.kl
    entropy = ActorCritic.entropy
    sample = ActorCritic.sample

    def __init__(self, obs_dim: int, action_dim: int, hidden_sizes, log_std_init: float):
        super().__init__()
        self.actor = mlp([obs_dim, *hidden_sizes, action_dim], nn.Tanh, output_gain=0.01)
        self.log_std = nn.Parameter(torch.full((action_dim,), float(log_std_init)))

    def forward(self, obs: Tensor) -> Tensor:
        mean = self.actor(obs)
        return torch.cat([mean, self.log_std.expand_as(mean)], dim=-1)


@agent_files
class MBMPO:
    """MB-MPO on one gymnasium environment (the surface of :class:`mbrl.Agent`)."""

    algo = "mbmpo"
    title = "MB-MPO"
    Config = MBMPOConfig
    FORMAT = "mbrl.mbmpo/1"
    world_field = "env"
    action_spaces = frozenset({"continuous"})
    budget_fields = ("total_steps",)
    step_cost = 3_000.0

    def __init__(
        self,
        env: str,
        config: MBMPOConfig | None = None,
        *,
        run_dir: str | Path | None = None,
        console: Console | None = None,
    ):
        action_space = setup_imagination(  # step 1
            self, env, config, run_dir=run_dir, console=console, propagation=Propagation.TS_INF,
            counters=("meta_steps",),
        )  # fmt: skip
        config = self.config
        obs_dim, action_dim = self.obs_shape[0], action_space.shape[0]
        self.starts = reset_observations(env, config.start_pool, config.seed + 2_000_000).to(
            self.device
        )
        self.policy = MetaPolicy(
            obs_dim, action_dim, config.policy_hidden_sizes, config.log_std_init
        ).to(self.device)
        self.names = [name for name, _ in self.policy.named_parameters()]
        self.adapted = nn.Module()  # step 10's policies: one flat parameter vector a task
        size = sum(p.numel() for p in self.policy.parameters())
        self.adapted.register_buffer("vectors", torch.zeros(config.meta_batch_size, size))
        self.seconds = dict.fromkeys(("real", "fit", "imagination", "policy"), 0.0)

    # ------------------------------------------------------------------ acting
    @torch.no_grad()
    def predict(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Actions ``[B, A]`` of the meta-policy pi_theta for observations ``[B, O]``."""
        obs = torch.as_tensor(checked_obs(self, obs), device=self.device)
        dist = self.policy(obs)
        return self.policy.sample(dist, self.generator, deterministic).cpu().numpy()

    def evaluate(self) -> dict[str, float]:
        """Step 11: the mean return of the deterministic meta-policy on seeded episodes."""
        if not self.config.eval_episodes:
            return {}
        returns = evaluate(
            self.config.env, self.predict, self.config.eval_episodes, self.config.seed + 10**6
        )
        return {"eval/mean_return": float(returns.mean()), "eval/std_return": float(returns.std())}

    # ------------------------------------------------------- policy functions
    def task_parameters(self) -> dict[str, Tensor]:
        """theta for every task: ``{name: [T, ...]}`` (views of the policy's parameters)."""
        tasks = self.config.meta_batch_size
        return {name: p.expand(tasks, *p.shape) for name, p in self.policy.named_parameters()}

    def unflatten(self, vectors: Tensor) -> dict[str, Tensor]:
        """``[T, P]`` flat vectors -> ``{name: [T, ...]}``."""
        out, start = {}, 0
        for name, p in self.policy.named_parameters():
            out[name] = vectors[:, start : start + p.numel()].view(-1, *p.shape)
            start += p.numel()
        return out

    def task_dists(self, params: dict[str, Tensor], obs: Tensor) -> Tensor:
        """Each task's distribution: ``params {name: [T, ...]}``, ``obs [T, ..., O]`` ->
        ``[T, ..., 2A]``."""

        def one(p: dict[str, Tensor], o: Tensor) -> Tensor:
            return functional_call(self.policy, p, (o,))

        return vmap(one)(params, obs)

    def adapt(self, pre: dict[str, Tensor], create_graph: bool = False) -> dict[str, Tensor]:
        """Step 7: ``theta'_i = theta - inner_lr * grad L_i(theta)`` with
        ``L_i = -mean(log pi_theta(a|s) A)`` over task i's rollouts ``pre``; with
        ``create_graph`` a differentiable function of theta (for step 9)."""
        lr = self.config.inner_lr
        with torch.enable_grad():
            theta = self.task_parameters()
            if lr == 0:
                return theta if create_graph else {k: v.detach() for k, v in theta.items()}
            log_probs = self.policy.log_prob(self.task_dists(theta, pre["obs"]), pre["actions"])
            losses = -(log_probs * pre["advantages"] * pre["mask"]).sum(1) / pre["count"]
            grads = torch.autograd.grad(
                losses.sum(), list(theta.values()), create_graph=create_graph
            )
        adapted = {name: v - lr * g for (name, v), g in zip(theta.items(), grads, strict=True)}
        return adapted if create_graph else {k: v.detach() for k, v in adapted.items()}

    def meta_objective(self, pre: dict[str, Tensor], post: dict[str, Tensor]) -> Tensor:
        """Step 9's surrogate: the mean over tasks of the importance-weighted advantage of
        the adapted policies on their rollouts ``post`` (differentiable in theta when
        gradients are enabled)."""
        adapted = self.adapt(pre, create_graph=torch.is_grad_enabled())
        log_probs = self.policy.log_prob(self.task_dists(adapted, post["obs"]), post["actions"])
        ratio = (log_probs - post["log_probs"]).exp()
        return ((ratio * post["advantages"] * post["mask"]).sum(1) / post["count"]).mean()

    def meta_kl(self, pre: dict[str, Tensor], post: dict[str, Tensor]) -> Tensor:
        """Step 9's constraint: the mean over tasks of KL(old adapted || adapted)."""
        adapted = self.adapt(pre, create_graph=torch.is_grad_enabled())
        kl = self.policy.kl(post["dists"], self.task_dists(adapted, post["obs"]))
        return ((kl * post["mask"]).sum(1) / post["count"]).mean()

    # ------------------------------------------------------------ imagination
    @torch.no_grad()
    def imagine(self, params: dict[str, Tensor]) -> dict[str, Tensor]:
        """Steps 5 and 8: ``imagined_rollouts`` episodes of ``horizon`` steps per task i,
        the policy of ``params[:, i]`` acting in member i mod K alone from real start
        observations; returns flat per-task tensors ``[T, M = N * H, ...]`` with the
        advantages of step 6."""
        config, model = self.config, self.learned_model
        tasks, n, h = config.meta_batch_size, config.imagined_rollouts, self.horizon
        picks = torch.randint(
            len(self.starts), (tasks * n,), generator=self.generator, device=self.device
        )
        state = model.initial_state(self.starts[picks], 1, self.generator)
        member = torch.arange(tasks, device=self.device) % model.num_members
        state = model.with_member(state, member.repeat_interleave(n))
        alive = torch.ones(tasks * n, dtype=torch.bool, device=self.device)
        steps: dict[str, list[Tensor]] = {k: [] for k in ("obs", "actions", "rewards", "mask",
                                                           "dists")}  # fmt: skip
        for _ in range(h):
            obs = model.observe(state)
            dists = self.task_dists(params, obs.view(tasks, n, -1)).view(tasks * n, -1)
            actions = self.policy.sample(dists, self.generator)
            step = model.step(state, actions, self.generator)
            for key, value in zip(steps, (obs, actions, step.reward, alive, dists), strict=True):
                steps[key].append(value)
            alive = alive & ~step.terminal
            state = step.state
        data = {k: torch.stack(v, 1).view(tasks, n, h, *v[0].shape[1:]) for k, v in steps.items()}
        mask = data["mask"].float()
        returns = torch.zeros_like(data["rewards"])
        future = torch.zeros_like(returns[:, :, 0])
        for t in reversed(range(h)):  # step 6
            future = data["rewards"][:, :, t] + config.gamma * future * mask[:, :, t]
            returns[:, :, t] = future
        advantages = returns - linear_baseline(data["obs"], returns, mask)
        count = mask.sum((1, 2)).clamp_min(1)
        mean = (advantages * mask).sum((1, 2)) / count
        var = ((advantages - mean[:, None, None]) ** 2 * mask).sum((1, 2)) / count
        advantages = (advantages - mean[:, None, None]) / (var.sqrt()[:, None, None] + 1e-8)
        flat = {k: v.reshape(tasks, n * h, *v.shape[3:]) for k, v in data.items()}
        flat |= {"mask": mask.reshape(tasks, n * h), "advantages": advantages.reshape(tasks, -1)}
        flat["log_probs"] = self.policy.log_prob(flat["dists"], flat["actions"])
        flat["count"] = count
        flat["episode_returns"] = (data["rewards"] * mask).sum(2).mean(1)  # [T]
        self.counters["imagined_steps"] += int(mask.sum())
        return flat

    def meta_step(self) -> dict[str, float]:
        """Steps 5-9 once; keeps the adapted policies for step 10."""
        seconds = self.seconds
        tick = time.perf_counter()
        pre = self.imagine(self.task_parameters())  # steps 5-6
        seconds["imagination"] += time.perf_counter() - tick
        tick = time.perf_counter()
        adapted = self.adapt(pre)  # step 7
        seconds["policy"] += time.perf_counter() - tick
        tick = time.perf_counter()
        post = pre if self.config.inner_lr == 0 else self.imagine(adapted)  # step 8
        seconds["imagination"] += time.perf_counter() - tick
        tick = time.perf_counter()
        metrics = natural_gradient_step(  # step 9
            list(self.policy.parameters()),
            lambda: self.meta_objective(pre, post),
            lambda: self.meta_kl(pre, post),
            self.config,
        )
        tasks = len(self.adapted.vectors)
        flat = [adapted[name].reshape(tasks, -1) for name in self.names]
        self.adapted.vectors.copy_(torch.cat(flat, dim=1))
        seconds["policy"] += time.perf_counter() - tick
        self.counters["meta_steps"] += 1
        metrics["imagined/pre_update_return"] = float(pre["episode_returns"].mean())
        metrics["imagined/post_update_return"] = float(post["episode_returns"].mean())
        return metrics

    # ---------------------------------------------------------------- training
    def learn(self, total_steps: int | None = None) -> dict[str, float]:
        """Train until ``total_steps`` real environment steps (counting steps done)."""
        return learn_in_iterations(self, total_steps)

    def iteration_steps(self) -> int:
        """Real steps of the next iteration: step 1's random ones, then step 10's."""
        first = self.counters["iterations"] == 0
        return self.config.initial_random_steps if first else self.config.model_train_every

    def iteration(self, real_steps: int) -> dict[str, float]:
        """Step 10 (step 1's random data the first time), then steps 3-9; returns the row
        to log."""
        counters, seconds = self.counters, self.seconds
        tick = time.perf_counter()
        episodes = self.collect(real_steps, random=counters["iterations"] == 0)
        seconds["real"] += time.perf_counter() - tick
        tick = time.perf_counter()
        row = fit_dynamics(self)  # step 3
        seconds["fit"] += time.perf_counter() - tick
        for _ in range(self.config.meta_steps):  # step 4
            metrics = self.meta_step()
        row |= metrics
        counters["iterations"] += 1
        if episodes:
            row["charts/episodic_return"] = float(np.mean(episodes))
        row |= {f"time/{name}_seconds": value for name, value in seconds.items()}
        row["model/imagined_steps"] = float(counters["imagined_steps"])
        return row

    @torch.no_grad()
    def collect(self, steps: int, random: bool) -> list[float]:
        """``steps`` real steps: random actions, or each episode the adapted policy of the
        next task in turn (sampling its Gaussian); returns the finished episodes' returns."""
        counters, returns = self.counters, []
        tasks = self.unflatten(self.adapted.vectors)
        for _ in range(steps):
            obs = self.collector.obs
            if random:
                action = self.collector.random_action()
            else:
                i = counters["episodes"] % self.config.meta_batch_size
                params = {name: value[i] for name, value in tasks.items()}
                obs_t = torch.as_tensor(obs[None], dtype=torch.float32, device=self.device)
                dist = functional_call(self.policy, params, (obs_t,))
                action = self.policy.sample(dist, self.generator)[0].cpu().numpy()
            episode = self.collector.step(action)
            counters["steps"] += 1
            if episode:
                counters["episodes"] += 1
                returns.append(episode["charts/episodic_return"])
        return returns

    def parts(self, training: bool = False) -> dict[str, Any]:
        """The ensemble (with its normaliser) and its optimiser, the meta-policy; for
        training also the adapted policies, the real data, the collector and the RNGs."""
        parts: dict[str, Any] = {
            "ensemble": self.ensemble,
            "model_optimizer": self.model_trainer,
            "policy": self.policy,
        }
        if training:
            parts |= {
                "adapted": self.adapted,
                "replay": self.replay,
                "collector": self.collector,
                "rng": RngStates(self.rng, self.generator),
                "fit_rng": GeneratorPart(self.fit_generator),
            }
        return parts
