"""Self-play for expert iteration: the games in progress, the replay buffer, and the
worker that plays moves with MCTS and a network (in-process, or as a Ray actor).

A worker owns ``num_games`` games; ``play(num_moves)`` makes that many moves in
every game (one batched search per move: one network forward per simulation
for all the worker's games) and returns the positions of the games that
finished, labelled with their outcome.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mbrl import games
from mbrl.model import Evaluation, GameModel, SymmetricGame
from mbrl.planners.mcts import MCTSConfig, RootPolicy, search
from mbrl.planners.proof import auto_proof_plies
from mbrl.training.config import at_least, fail
from mbrl.training.nets import PolicyValueNet
from mbrl.training.replay import Ring

__all__ = [
    "Backend",
    "FinishedGames",
    "LocalWorkers",
    "MCTSAgentPlayer",
    "NetworkEvaluator",
    "PolicyPlayer",
    "ReplayBuffer",
    "SearchFields",
    "SelfPlay",
    "SelfPlaySettings",
    "SelfPlayWorker",
    "make_workers",
    "random_symmetry",
    "validate_search_fields",
]


class NetworkEvaluator:
    """The network as an MCTS evaluator: one forward pass per call, no gradients."""

    def __init__(self, game: GameModel, net: PolicyValueNet, device: str = "cpu"):
        self.game, self.net, self.device = game, net, device

    @torch.no_grad()
    def evaluate(self, state: Tensor) -> Evaluation:
        self.net.eval()
        logits, value = self.net(self.game.observe(state).to(self.device))
        return Evaluation(logits.float().cpu(), value.float().cpu())


class MCTSAgentPlayer:
    """The trained agent: MCTS with the network and no noise, as a player."""

    def __init__(
        self,
        game: GameModel,
        net: PolicyValueNet,
        config: MCTSConfig,
        seed: int = 0,
        device: str = "cpu",
        name: str | None = None,
    ):
        self.game, self.config = game, config
        self.evaluator = NetworkEvaluator(game, net, device)
        self.name = name or f"agent@{config.num_simulations}"
        self._rng = np.random.default_rng(seed)

    def act(self, state: Tensor, histories: Sequence[Sequence[int]]) -> Tensor:
        return search(self.game, self.evaluator, state, self.config, self._rng).action


class PolicyPlayer:
    """The raw policy network: the most likely legal move, no search."""

    def __init__(self, game: GameModel, net: PolicyValueNet, device: str = "cpu"):
        self.game = game
        self.evaluator = NetworkEvaluator(game, net, device)
        self.name = "policy-net"

    def act(self, state: Tensor, histories: Sequence[Sequence[int]]) -> Tensor:
        logits = self.evaluator.evaluate(state).logits
        return logits.masked_fill(~self.game.legal_actions(state), -torch.inf).argmax(dim=1)


def ReplayBuffer(capacity: int, obs_shape: tuple[int, ...], num_actions: int) -> Ring:
    """Self-play positions in the library's one replay ring: ``obs [n, *obs]``, the
    search's policy target ``policy [n, A]`` and the outcome ``value [n]``."""
    fields = {
        "obs": (tuple(obs_shape), np.float32),
        "policy": ((num_actions,), np.float32),
        "value": ((), np.float32),
    }
    return Ring(capacity, fields)


@dataclass(frozen=True)
class SelfPlaySettings:
    """How a worker plays its moves.

    Each ply of a game is one of three kinds:

    - an *opening* move: the first ``opening_left`` plies of a game (drawn uniformly from
      ``[0, opening_plies]`` when it starts) are sampled from the raw policy network, and
      are not training positions (randomised openings: more varied games);
    - a *full* search, ``mcts``, whose position and policy become a training example;
    - a *fast* search, ``fast_mcts`` with its noise off, played but not trained on
      (playout-cap randomisation, Wu 2019: a move is a full search with probability
      ``full_search_prob``, so more games, and more value targets, per simulation).
    """

    mcts: MCTSConfig
    temperature_moves: int = 0
    """Under PUCT, plies whose move is sampled from the visits."""
    fast_mcts: MCTSConfig | None = None
    """The cheap search of playout-cap randomisation (None: every move is a full search)."""
    full_search_prob: float = 1.0
    opening_plies: int = 0


@dataclass(frozen=True, kw_only=True)
class SearchFields:
    """The search of an MCTS agent, in self-play and in evaluation (a config section, as
    :class:`~mbrl.training.modelbased.PlannerFields` is for the MPC agents): MCTS over an
    exact game (AlphaZero) or a learned model uses the same fields and builders."""

    num_simulations: int = 32
    """MCTS simulations per move; Gumbel learns with 16-64, PUCT wants 100+."""
    root_policy: RootPolicy = RootPolicy.GUMBEL
    """GUMBEL (Gumbel AlphaZero) or PUCT (AlphaZero with Dirichlet noise)."""
    max_num_considered_actions: int = 16
    """Gumbel: actions sampled at the root."""
    dirichlet_alpha: float | None = None
    """PUCT: root noise concentration (None: 10 / number of actions)."""
    temperature_moves: int = 8
    """PUCT: plies whose move is sampled from the visit counts (then the most visited)."""
    fpu_reduction: float | None = None
    """PUCT: first-play urgency, an unvisited edge's value = the node's value minus this
    times sqrt(prior mass of the visited edges) (Leela Zero, KataGo: 0.2; None: 0)."""
    forced_playouts: float = 0.0
    """PUCT: forced playouts at the root, sqrt(k P(a) N) for each visited edge, pruned from
    the policy target afterwards (KataGo: k = 2; 0: off)."""
    fast_simulations: int | None = None
    """Playout-cap randomisation (KataGo): a move searches with num_simulations with
    probability full_search_prob, else with this many and no noise, and only the full
    searches become training positions (None: every move is a full search)."""
    full_search_prob: float = 0.25
    """Share of full searches under playout-cap randomisation."""
    opening_plies: int = 0
    """Randomised openings: each self-play game starts with U[0, opening_plies] moves
    sampled from the raw policy network, not trained on (0: off)."""
    eval_simulations: int | None = None
    """Simulations of the agent in evaluation games (None: num_simulations)."""
    eval_proof_plies: int | None = None
    """Plies of exact full-width search at the root of the agent's searches in play and
    ``mbrl eval`` (:mod:`~mbrl.planners.proof`): root moves decided within them are played
    or avoided whatever the network says. None: the deepest that fits 4,096 model steps a
    root (connect four 4, tic-tac-toe 3) on an exact game, 0 on a learned model; 0: off.
    Self-play and the evaluations during training search without it."""

    def mcts(self, model: Any, evaluation: bool = False, proof: bool = False) -> MCTSConfig:
        """The search of a move in ``model`` (a game or model with ``spec.num_actions``):
        self-play's, with root noise, or the evaluation's, without; ``proof``: with the
        root proof search of ``eval_proof_plies`` (evaluation only)."""
        alpha = self.dirichlet_alpha or 10.0 / model.spec.num_actions
        proof_plies = 0
        if proof and evaluation:
            proof_plies = self.eval_proof_plies
            if proof_plies is None:
                exact = isinstance(model, GameModel)
                proof_plies = auto_proof_plies(model.spec.num_actions) if exact else 0
        return MCTSConfig(
            num_simulations=(self.eval_simulations or self.num_simulations)
            if evaluation
            else self.num_simulations,
            root_policy=self.root_policy,
            dirichlet_alpha=alpha,
            dirichlet_fraction=0.0 if evaluation else 0.25,
            gumbel_scale=0.0 if evaluation else 1.0,
            max_num_considered_actions=self.max_num_considered_actions,
            fpu_reduction=self.fpu_reduction,
            forced_playouts=0.0 if evaluation else self.forced_playouts,
            proof_plies=proof_plies,
        )

    def selfplay(self, model: Any) -> SelfPlaySettings:
        """How self-play moves: full searches (noise on), fast ones, openings."""
        full = self.mcts(model)
        fast = None
        if self.fast_simulations is not None:  # fast searches play to win: no noise
            fast = dataclasses.replace(
                self.mcts(model, evaluation=True), num_simulations=self.fast_simulations
            )
        return SelfPlaySettings(
            full, self.temperature_moves, fast, self.full_search_prob, self.opening_plies
        )


def validate_search_fields(config: Any) -> None:
    """The checks of :class:`SearchFields`; messages name the field."""
    at_least(config, 1, "num_simulations", "max_num_considered_actions", "eval_simulations")
    at_least(config, 1, "fast_simulations")
    at_least(config, 0, "temperature_moves", "fpu_reduction", "forced_playouts")
    at_least(config, 0, "opening_plies", "eval_proof_plies")
    if not 0 < config.full_search_prob <= 1:
        fail(config, "full_search_prob", "be in (0, 1]")
    if config.fast_simulations is not None and config.fast_simulations >= config.num_simulations:
        fail(config, "fast_simulations", "be below num_simulations")


class SelfPlay:
    """B games in progress and the positions each has recorded so far; ``recorded`` marks
    the plies that are training positions, ``opening_left`` the opening moves to come."""

    def __init__(self, game: GameModel, num_games: int):
        spec = game.spec
        T = spec.max_episode_length
        self.game = game
        self.state = game.initial_state(num_games)
        self.obs = np.zeros((num_games, T, *spec.obs_shape), np.float32)
        self.policy = np.zeros((num_games, T, spec.num_actions), np.float32)
        self.player = np.zeros((num_games, T), np.int64)
        self.recorded = np.ones((num_games, T), np.bool_)
        self.length = np.zeros(num_games, np.int64)
        self.opening_left = np.zeros(num_games, np.int64)

    def state_dict(self) -> dict:
        return {
            "state": self.state,
            "obs": self.obs,
            "policy": self.policy,
            "player": self.player,
            "recorded": self.recorded,
            "length": self.length,
            "opening_left": self.opening_left,
        }

    def load_state_dict(self, state: dict) -> None:
        self.state = state["state"]
        self.obs, self.policy = state["obs"], state["policy"]
        self.player, self.length = state["player"], state["length"]
        # Checkpoints from before playout caps and openings: every ply was a training one.
        self.recorded = state.get("recorded", np.ones(self.player.shape, np.bool_))
        self.opening_left = state.get("opening_left", np.zeros(self.length.shape, np.int64))


@dataclass
class FinishedGames:
    """Positions of the games a worker finished: ``obs [n, ...]``, ``policy [n, A]``,
    ``value [n]`` (outcome for the player to move), plus per-game statistics."""

    obs: np.ndarray
    policy: np.ndarray
    value: np.ndarray
    game_lengths: list[int]
    first_player_returns: list[float]
    num_moves: int
    num_simulations: int = 0
    """Simulations the searches of these moves ran (all kinds of move)."""

    @classmethod
    def concatenate(cls, parts: Sequence[FinishedGames], obs_shape, num_actions) -> FinishedGames:
        if not parts:
            return cls(
                np.zeros((0, *obs_shape), np.float32),
                np.zeros((0, num_actions), np.float32),
                np.zeros(0, np.float32),
                [],
                [],
                0,
            )
        return cls(
            np.concatenate([p.obs for p in parts]),
            np.concatenate([p.policy for p in parts]),
            np.concatenate([p.value for p in parts]),
            [n for p in parts for n in p.game_lengths],
            [r for p in parts for r in p.first_player_returns],
            sum(p.num_moves for p in parts),
            sum(p.num_simulations for p in parts),
        )


class SelfPlayWorker:
    """Plays ``num_games`` self-play games at once with MCTS guided by a network.

    Args:
        game_name: the game (``mbrl.games.make`` name).
        settings: the searches (noise on) and the kinds of move, see :class:`SelfPlaySettings`.
        num_games: games played at once (the search batch).
        seed: seed of the search noise and move sampling.
        net: the network to use (shared, in-process) or None to build one from
            ``net_args`` = (obs_shape, num_actions, num_blocks, channels) (an actor).
    """

    def __init__(
        self,
        game_name: str,
        settings: SelfPlaySettings,
        num_games: int,
        seed: int,
        net: PolicyValueNet | None = None,
        net_args: tuple | None = None,
        device: str = "cpu",
        num_threads: int | None = None,
    ):
        if num_threads is not None:  # a Ray actor: torch's and the numba kernels' threads
            from mbrl.planners.threads import set_num_threads

            torch.set_num_threads(num_threads)
            set_num_threads(num_threads)
        self.game = games.make(game_name)
        self.settings = settings
        self.net = net if net is not None else PolicyValueNet(*net_args).to(device)
        self.evaluator = NetworkEvaluator(self.game, self.net, device)
        self.selfplay = SelfPlay(self.game, num_games)
        self.rng = np.random.default_rng(seed)
        self._start_games(np.arange(num_games))

    def set_weights(self, weights: dict) -> None:
        self.net.load_state_dict(weights)

    def state_dict(self) -> dict:
        return {"selfplay": self.selfplay.state_dict(), "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.selfplay.load_state_dict(state["selfplay"])
        self.rng.bit_generator.state = state["rng"]

    def play(self, num_moves: int) -> FinishedGames:
        """Steps 3-6 of expert iteration: ``num_moves`` moves in every game."""
        game, sp = self.game, self.selfplay
        rows = np.arange(sp.length.shape[0])
        parts, lengths, firsts = [], [], []
        num_simulations = 0
        for _ in range(num_moves):
            t = sp.length
            sp.obs[rows, t] = game.observe(sp.state).numpy()
            sp.player[rows, t] = game.to_play(sp.state).numpy()
            action, policy, recorded, sims = self._moves(t)  # steps 4-5
            num_simulations += sims
            sp.policy[rows, t] = policy
            sp.recorded[rows, t] = recorded
            sp.length += 1
            sp.opening_left = np.maximum(sp.opening_left - 1, 0)
            step = game.step(sp.state, torch.from_numpy(action))
            sp.state = step.state
            finished = np.flatnonzero(step.terminal.numpy())
            if len(finished):  # step 6: label the training positions with the outcome z
                returns = game.returns(sp.state[finished]).numpy()
                for i, row in enumerate(finished):
                    n = sp.length[row]
                    keep = sp.recorded[row, :n]
                    z = returns[i][sp.player[row, :n][keep]]
                    parts.append((sp.obs[row, :n][keep], sp.policy[row, :n][keep], z))
                    lengths.append(int(n))
                    firsts.append(float(returns[i][0]))
                sp.state = sp.state.clone()
                sp.state[finished] = game.initial_state(len(finished))
                sp.length[finished] = 0
                self._start_games(finished)
        spec = game.spec
        if not parts:  # no game ended: the moves were made all the same
            empty = FinishedGames.concatenate([], spec.obs_shape, spec.num_actions)
            return dataclasses.replace(
                empty, num_moves=num_moves * len(rows), num_simulations=num_simulations
            )
        return FinishedGames(
            np.concatenate([p[0] for p in parts]),
            np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]).astype(np.float32),
            lengths,
            firsts,
            num_moves * len(rows),
            num_simulations,
        )

    def _start_games(self, rows: np.ndarray) -> None:
        """New games in ``rows``: draw how many opening moves each begins with."""
        plies = self.settings.opening_plies
        if plies > 0 and len(rows):
            self.selfplay.opening_left[rows] = self.rng.integers(0, plies + 1, size=len(rows))

    def _moves(self, ply: np.ndarray):
        """``(action [B], policy [B, A], recorded [B], simulations)`` of this ply in every
        game: opening moves from the raw policy, then a full or a fast search."""
        settings, sp = self.settings, self.selfplay
        B, A = ply.shape[0], self.game.spec.num_actions
        action = np.zeros(B, np.int64)
        policy = np.zeros((B, A), np.float32)
        opening = sp.opening_left > 0
        full = ~opening
        if settings.fast_mcts is not None:
            full &= self.rng.random(B) < settings.full_search_prob
        simulations = 0
        if opening.any():
            action[opening] = self._policy_moves(np.flatnonzero(opening))
        for kind, mcts in ((full, settings.mcts), (~opening & ~full, settings.fast_mcts)):
            if not kind.any():
                continue
            index = None if kind.all() else np.flatnonzero(kind)
            state = sp.state if index is None else sp.state[torch.from_numpy(index)]
            result = search(self.game, self.evaluator, state, mcts, self.rng)
            rows = slice(None) if index is None else index
            policy[rows] = result.policy.numpy()
            action[rows] = self._choose(result, ply[rows], mcts)
            simulations += mcts.num_simulations * state.shape[0]
        return action, policy, full, simulations

    def _policy_moves(self, rows: np.ndarray) -> np.ndarray:
        """Moves sampled from the raw policy network in games ``rows``."""
        state = self.selfplay.state[torch.from_numpy(rows)]
        logits = self.evaluator.evaluate(state).logits
        logits = logits.masked_fill(~self.game.legal_actions(state), -torch.inf).double()
        return self._sample(torch.softmax(logits, dim=1).numpy())

    def _sample(self, weights: np.ndarray) -> np.ndarray:
        """One index per row of ``weights [n, A]`` (>= 0), drawn in proportion to them."""
        u = self.rng.random((weights.shape[0], 1)) * weights.sum(1, keepdims=True)
        return np.minimum((weights.cumsum(1) < u).sum(1), weights.shape[1] - 1)

    def _choose(self, result, ply: np.ndarray, mcts: MCTSConfig) -> np.ndarray:
        """The search's move; under PUCT sampled from the visits in the first plies."""
        action = result.action.numpy().astype(np.int64)
        if mcts.root_policy is RootPolicy.PUCT:
            sample = ply < self.settings.temperature_moves
            if sample.any():
                action = action.copy()
                action[sample] = self._sample(result.visit_counts.numpy()[sample].astype(float))
        return action


def random_symmetry(game: GameModel, obs: Tensor, policy: Tensor, rng: np.random.Generator):
    """Each training example ``obs [B, ...]``, ``policy [B, A]`` in a random symmetry."""
    if not isinstance(game, SymmetricGame) or game.num_symmetries == 1:
        return obs, policy
    all_obs, all_policy = game.symmetries(obs, policy)
    pick = torch.from_numpy(rng.integers(0, all_obs.shape[0], size=obs.shape[0]))
    rows = torch.arange(obs.shape[0])
    return all_obs[pick, rows], all_policy[pick, rows]


# ------------------------------------------------------------------- backends
class Backend(Enum):
    LOCAL = "local"
    """Self-play and training in this process."""
    RAY = "ray"
    """Self-play in Ray actors (``pip install 'mbrl[ray]'``), weights broadcast each iteration."""


class LocalWorkers:
    """The LOCAL backend: one in-process worker sharing the learner's network."""

    def __init__(self, config: Any, game: GameModel, net: PolicyValueNet):
        self.worker = SelfPlayWorker(
            config.game,
            config.selfplay(game),
            config.num_parallel_games,
            seed=config.seed + 1,
            net=net,
            device=config.device,
        )

    def play(self, num_moves: int, net: PolicyValueNet) -> FinishedGames:
        return self.worker.play(num_moves)

    def state_dict(self) -> dict:
        return self.worker.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.worker.load_state_dict(state)

    def close(self) -> None:
        pass


def make_workers(config: Any, game: GameModel, net: PolicyValueNet, net_args: tuple):
    """The self-play workers of ``config.backend``: in this process, or Ray actors
    (which build their own network from ``net_args``)."""
    if config.backend is Backend.RAY:
        from mbrl.training.distributed import RayWorkers

        return RayWorkers(config, game, net_args)
    return LocalWorkers(config, game, net)
