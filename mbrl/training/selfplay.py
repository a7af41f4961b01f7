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
    "SelfPlay",
    "SelfPlayWorker",
    "make_workers",
    "random_symmetry",
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


class SelfPlay:
    """B games in progress and the positions each has recorded so far."""

    def __init__(self, game: GameModel, num_games: int):
        spec = game.spec
        T = spec.max_episode_length
        self.game = game
        self.state = game.initial_state(num_games)
        self.obs = np.zeros((num_games, T, *spec.obs_shape), np.float32)
        self.policy = np.zeros((num_games, T, spec.num_actions), np.float32)
        self.player = np.zeros((num_games, T), np.int64)
        self.length = np.zeros(num_games, np.int64)

    def state_dict(self) -> dict:
        return {
            "state": self.state,
            "obs": self.obs,
            "policy": self.policy,
            "player": self.player,
            "length": self.length,
        }

    def load_state_dict(self, state: dict) -> None:
        self.state = state["state"]
        self.obs, self.policy = state["obs"], state["policy"]
        self.player, self.length = state["player"], state["length"]


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
        )


class SelfPlayWorker:
    """Plays ``num_games`` self-play games at once with MCTS guided by a network.

    Args:
        game_name: the game (``mbrl.games.make`` name).
        mcts_config: search settings for self-play (noise on).
        temperature_moves: under PUCT, plies whose move is sampled from the visits.
        num_games: games played at once (the search batch).
        seed: seed of the search noise and move sampling.
        net: the network to use (shared, in-process) or None to build one from
            ``net_args`` = (obs_shape, num_actions, num_blocks, channels) (an actor).
    """

    def __init__(
        self,
        game_name: str,
        mcts_config: MCTSConfig,
        temperature_moves: int,
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
        self.mcts_config = mcts_config
        self.temperature_moves = temperature_moves
        self.net = net if net is not None else PolicyValueNet(*net_args).to(device)
        self.evaluator = NetworkEvaluator(self.game, self.net, device)
        self.selfplay = SelfPlay(self.game, num_games)
        self.rng = np.random.default_rng(seed)

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
        for _ in range(num_moves):
            result = search(game, self.evaluator, sp.state, self.mcts_config, self.rng)  # step 4
            t = sp.length
            sp.obs[rows, t] = game.observe(sp.state).numpy()  # step 5
            sp.policy[rows, t] = result.policy.numpy()
            sp.player[rows, t] = game.to_play(sp.state).numpy()
            sp.length += 1
            action = self._choose(result, t)
            step = game.step(sp.state, torch.from_numpy(action))
            sp.state = step.state
            finished = np.flatnonzero(step.terminal.numpy())
            if len(finished):  # step 6: label the positions with the outcome z
                returns = game.returns(sp.state[finished]).numpy()
                for i, row in enumerate(finished):
                    n = sp.length[row]
                    z = returns[i][sp.player[row, :n]]
                    parts.append((sp.obs[row, :n].copy(), sp.policy[row, :n].copy(), z))
                    lengths.append(int(n))
                    firsts.append(float(returns[i][0]))
                sp.state = sp.state.clone()
                sp.state[finished] = game.initial_state(len(finished))
                sp.length[finished] = 0
        spec = game.spec
        if not parts:  # no game ended: the moves were made all the same
            empty = FinishedGames.concatenate([], spec.obs_shape, spec.num_actions)
            return dataclasses.replace(empty, num_moves=num_moves * len(rows))
        return FinishedGames(
            np.concatenate([p[0] for p in parts]),
            np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]).astype(np.float32),
            lengths,
            firsts,
            num_moves * len(rows),
        )

    def _choose(self, result, ply: np.ndarray) -> np.ndarray:
        """The search's move; under PUCT sampled from the visits in the first plies."""
        action = result.action.numpy().astype(np.int64)
        if self.mcts_config.root_policy is RootPolicy.PUCT:
            sample = ply < self.temperature_moves
            if sample.any():
                p = result.policy.numpy()[sample].astype(np.float64)
                u = self.rng.random((p.shape[0], 1))
                action = action.copy()
                action[sample] = np.minimum(
                    (p.cumsum(1) < u * p.sum(1, keepdims=True)).sum(1), p.shape[1] - 1
                )
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
            config.mcts(game),
            config.temperature_moves,
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
