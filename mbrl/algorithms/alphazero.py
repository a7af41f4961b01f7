"""AlphaZero-style expert iteration (Silver et al. 2018; Gumbel root: Danihelka et al. 2022).

The network is regressed to the search, and the search uses the network:

    1. initialise the policy/value network f_theta and an empty replay buffer
    2. repeat for each iteration:
    3.   self-play: in B parallel games, for `moves_per_iteration` moves:
    4.     run MCTS from every game's state with f_theta as evaluator (one
           batched forward per simulation over all games)
    5.     store (observation, search policy pi) and play the search's move
           (sampled in the first `temperature_moves` plies under PUCT)
    6.     when a game ends, label each stored position with the final outcome z
           from the point of view of the player who was to move; start a new game
    7.   train: `train_steps_per_iteration` minibatches from the replay buffer,
           each example in a random board symmetry, minimising
           (z - v)^2 - pi . log p   (+ weight decay)
    8.   every `eval_every` iterations: play the reference opponents, log, checkpoint

Everything a run needs lives in its folder ``runs/alphazero-<game>-<time>/``:
``config.json``, ``progress.csv``, TensorBoard events and ``checkpoints/``
(network, optimiser, replay buffer, games in progress, RNG states, counters),
so a killed run resumes where its last checkpoint left it.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from torch import Tensor

from mbrl import games
from mbrl.evaluation.arena import play_match
from mbrl.games.players import check_player_spec, make_player
from mbrl.model import GameModel
from mbrl.planners.mcts import search
from mbrl.pretrained import resolve_agent_path, shipped_agents
from mbrl.training.checkpoint import RngStates, agent_files, load_agent, save_agent
from mbrl.training.config import DeviceFields, RunFields, at_least, check_device, fail, positive
from mbrl.training.nets import PolicyValueNet
from mbrl.training.run import Run, RunSpec
from mbrl.training.runs import new_run_dir
from mbrl.training.selfplay import (
    Backend,
    FinishedGames,
    MCTSAgentPlayer,
    NetworkEvaluator,
    PolicyPlayer,
    ReplayBuffer,
    SearchFields,
    make_workers,
    random_symmetry,
    validate_search_fields,
)

__all__ = [
    "AlphaZero",
    "AlphaZeroConfig",
    "Backend",
    "MCTSAgentPlayer",
    "NetworkEvaluator",
    "PolicyPlayer",
    "resolve_agent_path",
    "shipped_agents",
]


# Network size by game (blocks, channels): enough for the game, cheap on a CPU.
NET_SIZES = {"tic_tac_toe": (2, 32), "connect_four": (4, 48), "othello": (6, 64)}
REFERENCE_OPPONENT = {"tic_tac_toe": "minimax", "connect_four": "mcts:200", "othello": "mcts:200"}


@dataclass(frozen=True, kw_only=True)
class AlphaZeroConfig(RunFields, DeviceFields, SearchFields):
    game: str = "tic_tac_toe"
    """Game to learn: a native game or openspiel:<name> (see `mbrl games`)."""
    num_iterations: int = 30
    """Self-play + training iterations; the run also stops at max_minutes."""
    max_minutes: float | None = None
    """Wall-clock budget in minutes (None: no limit)."""
    num_parallel_games: int = 128
    """Self-play games played at once (the search batch B); 64-1024."""
    moves_per_iteration: int = 16
    """Moves made in every parallel game per iteration."""
    replay_size: int = 100_000
    """Positions kept in the replay buffer (oldest dropped first)."""
    batch_size: int = 256
    """Training minibatch size."""
    train_steps_per_iteration: int = 64
    """Gradient steps after each self-play phase."""
    learning_rate: float = 2e-3
    """AdamW learning rate."""
    weight_decay: float = 1e-4
    """AdamW weight decay (AlphaZero's L2 term)."""
    num_blocks: int | None = None
    """Residual blocks (None: sized by the game)."""
    channels: int | None = None
    """Channels of the residual tower (None: sized by the game)."""
    eval_every: int = 5
    """Iterations between evaluations and checkpoints."""
    eval_games: int = 40
    """Games per evaluation opponent (half in each colour)."""
    eval_opponents: tuple[str, ...] | None = None
    """Player specs to evaluate against (None: random and the game's reference player)."""
    backend: Backend = Backend.LOCAL
    """LOCAL (one process) or RAY (self-play actors feeding this learner)."""
    num_actors: int = 2
    """Ray: self-play actors; the parallel games are split between them."""
    ray_address: str | None = None
    """Ray: address of a running cluster (None: start a local Ray instance)."""

    def __post_init__(self):
        at_least(self, 1, "num_iterations", "num_parallel_games", "moves_per_iteration")
        at_least(self, 1, "replay_size", "batch_size", "train_steps_per_iteration")
        at_least(self, 1, "eval_every", "eval_games")
        at_least(self, 0, "seed")
        positive(self, "learning_rate", "max_minutes")
        validate_search_fields(self)
        if self.backend is Backend.RAY and not 1 <= self.num_actors <= self.num_parallel_games:
            fail(self, "num_actors", "be in [1, num_parallel_games]")
        check_device(self)
        games.make(self.game)  # an unknown game fails here, with the list of games
        for spec in self.eval_opponents or ():
            check_player_spec(spec, self.game)  # a bad opponent fails now, not after self-play

    def net_size(self) -> tuple[int, int]:
        blocks, channels = NET_SIZES.get(self.game, (4, 64))
        return self.num_blocks or blocks, self.channels or channels


def _net_args(config: AlphaZeroConfig, game: GameModel) -> tuple:
    blocks, channels = config.net_size()
    return (game.spec.obs_shape, game.spec.num_actions, blocks, channels)


def _make_net(config: AlphaZeroConfig, game: GameModel) -> PolicyValueNet:
    return PolicyValueNet(*_net_args(config, game))


@agent_files
class AlphaZero:
    """Expert iteration on one game (the surface of :class:`mbrl.Agent`);
    ``learn()`` runs (or continues) the loop."""

    algo = "alphazero"
    Config = AlphaZeroConfig
    FORMAT = "mbrl.alphazero/2"
    world_field = "game"
    action_spaces = frozenset({"discrete"})
    budget_fields = ("num_iterations", "max_minutes")
    step_cost = 1.0

    def __init__(
        self,
        game: str,
        config: AlphaZeroConfig | None = None,
        *,
        run_dir: str | Path | None = None,
        console: Console | None = None,
    ):
        config = AlphaZeroConfig(game=game) if config is None else config
        config = dataclasses.replace(config, game=game) if config.game != game else config
        self.config = config
        self.console = console or Console(quiet=True)
        self.game = games.make(config.game)
        if self.game.spec.num_players != 2 or not self.game.spec.is_discrete:
            raise ValueError(f"AlphaZero needs a two-player discrete game, not {config.game}")
        torch.manual_seed(config.seed)
        self.rng = np.random.default_rng(config.seed)
        self.net = _make_net(config, self.game).to(config.device)
        self.optimizer = torch.optim.AdamW(
            self.net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
        )
        self.replay = ReplayBuffer(
            config.replay_size, self.game.spec.obs_shape, self.game.spec.num_actions
        )
        self._workers: Any = None  # made on first use (a loaded agent needs none)
        self.counters = {
            "iteration": 0,
            "games": 0,
            "steps": 0,  # self-play moves
            "positions": 0,
            "train_steps": 0,
            "seconds": 0.0,
        }
        self.run_dir = Path(run_dir or new_run_dir(config.run_dir, "alphazero", config.game))
        self.evaluator = NetworkEvaluator(self.game, self.net, config.device)

    @property
    def workers(self):
        """The self-play workers (in this process, or Ray actors)."""
        if self._workers is None:
            args = _net_args(self.config, self.game)
            self._workers = make_workers(self.config, self.game, self.net, args)
        return self._workers

    # ------------------------------------------------------------ the surface
    def parts(self, training: bool = False) -> dict[str, Any]:
        parts: dict[str, Any] = {"net": self.net}
        if training:
            parts |= {
                "optimizer": self.optimizer,
                "replay": self.replay,
                "selfplay": self.workers,
                "rng": RngStates(self.rng),
            }
        return parts

    def checkpoint(self, path: str | Path | None = None) -> Path:
        """The whole training state (``checkpoints/latest.safetensors``), and the agent alone beside
        it (``agent.safetensors``: network and config, small enough to share)."""
        path = Path(path or self.checkpoint_path)
        save_agent(self, path, training=True)
        self.save(path.parent / "agent.safetensors")
        return path

    @classmethod
    def load(cls, path: str | Path, **kwargs) -> AlphaZero:
        """The agent of a run folder, a checkpoint or agent file, or a shipped agent's name
        (``connect_four``); keyword arguments go to the constructor."""
        return load_agent(cls, resolve_agent_path(path), **kwargs)

    @staticmethod
    def upgrade(payload: dict) -> dict:
        """A ``mbrl.alphazero/1`` file (flat keys) in this version's layout."""
        if "state" in payload:
            return payload
        state = {"net": payload["net"]}
        training = "optimizer" in payload
        if training:
            state |= {k: payload[k] for k in ("optimizer", "replay", "selfplay")}
            state["rng"] = {"numpy": payload["rng"], "torch": payload["torch_rng"]}
        return {**payload, "training": training, "state": state}

    def player(
        self,
        game: GameModel | None = None,
        num_simulations: int | None = None,
        seed: int = 0,
        proof_plies: int | None = None,
    ) -> MCTSAgentPlayer:
        """The agent as a player (MCTS with the network, no noise) for ``mbrl play``/``eval``,
        with the root proof search of ``proof_plies`` (None: the config's
        ``eval_proof_plies``; 0: off); ValueError if ``game`` is another game than the
        agent's or ``proof_plies`` is negative."""
        if game is not None and game.spec.name != self.game.spec.name:
            raise ValueError(
                f"agent {self.run_dir} is for {self.game.spec.name}, not {game.spec.name}"
            )
        if proof_plies is not None and proof_plies < 0:
            raise ValueError(f"proof_plies must be >= 0, got {proof_plies}")
        config = self.config
        if num_simulations is not None:
            config = dataclasses.replace(config, eval_simulations=num_simulations)
        if proof_plies is not None:
            config = dataclasses.replace(config, eval_proof_plies=proof_plies)
        mcts = config.mcts(self.game, evaluation=True, proof=True)
        name = f"agent@{mcts.num_simulations}"
        if mcts.proof_plies:
            name += f",proof={mcts.proof_plies}"
        return MCTSAgentPlayer(self.game, self.net, mcts, seed, config.device, name=name)

    def predict(self, state: Tensor, deterministic: bool = True) -> np.ndarray:
        """The search's moves ``[B]`` for game states ``[B, ...]``: deterministic, the
        player's search (no noise, the root proof of ``eval_proof_plies``); otherwise
        self-play's, with root noise."""
        mcts = self.config.mcts(self.game, evaluation=deterministic, proof=True)
        return search(self.game, self.evaluator, state, mcts, self.rng).action.numpy()

    # -------------------------------------------------------------- the loop
    def learn(self, total_steps: int | None = None) -> dict[str, float]:
        """Run iterations until num_iterations, max_minutes or ``total_steps`` self-play
        moves, whichever comes first; returns the last evaluation."""
        config, counters = self.config, self.counters
        start_seconds, started = counters["seconds"], time.perf_counter()
        last_eval: dict[str, float] = {}
        # The bar follows whichever limit ends the run first.
        by_time = config.max_minutes is not None and 60 * config.max_minutes < config.num_iterations
        spec = RunSpec(
            "alphazero",
            config.game,
            config,
            self.run_dir,
            total=60 * config.max_minutes if by_time else config.num_iterations,
            start=counters["seconds"] if by_time else counters["iteration"],
            step=counters["steps"],
            unit="seconds" if by_time else "iterations",
        )
        try:
            with Run(spec, self.checkpoint, self.console) as run:
                while not run.stopped and self._budget_left(total_steps):
                    metrics = self.iteration()  # steps 3-7
                    counters["iteration"] += 1
                    counters["seconds"] = start_seconds + time.perf_counter() - started
                    metrics["charts/elapsed_minutes"] = counters["seconds"] / 60
                    done = counters["iteration"]
                    eval_due = done % config.eval_every == 0 or done == config.num_iterations
                    if eval_due:  # step 8
                        last_eval = self.evaluate()
                        metrics.update(last_eval)
                    run.log(counters["steps"], metrics)
                    run.checkpoint_if_due(eval_due)
                    status = "  ".join(
                        f"{k.split('/')[-1]} {v:.3g}"
                        for k, v in metrics.items()
                        if k.startswith(("eval/", "losses/loss"))
                    )
                    run.show(counters["seconds"] if by_time else done, f"iteration {done} {status}")
        finally:
            if self._workers is not None:
                self._workers.close()
                self._workers = None
        return last_eval

    def _budget_left(self, total_steps: int | None) -> bool:
        counters, config = self.counters, self.config
        minutes_left = config.max_minutes is None or counters["seconds"] < 60 * config.max_minutes
        steps_left = total_steps is None or counters["steps"] < total_steps
        return counters["iteration"] < config.num_iterations and minutes_left and steps_left

    def iteration(self) -> dict[str, float]:
        t0 = time.perf_counter()
        selfplay_metrics, simulations = self.play_moves(self.config.moves_per_iteration)
        t1 = time.perf_counter()
        losses = self.train(self.config.train_steps_per_iteration)
        t2 = time.perf_counter()
        moves = self.config.moves_per_iteration * self.config.num_parallel_games
        return {
            **selfplay_metrics,
            **losses,
            "charts/SPS": moves / (t1 - t0),
            "charts/simulations_per_second": simulations / (t1 - t0),
            "charts/train_seconds": t2 - t1,
            "charts/games": self.counters["games"],
            "charts/replay_size": self.replay.size,
        }

    def play_moves(self, num_moves: int) -> tuple[dict[str, float], int]:
        """Self-play (steps 3-6): every parallel game makes ``num_moves`` moves; returns
        the metrics and the number of simulations searched."""
        finished: FinishedGames = self.workers.play(num_moves, self.net)
        self.replay.add(finished.obs, finished.policy, finished.value)
        self.counters["steps"] += finished.num_moves
        self.counters["positions"] += len(finished.value)
        self.counters["games"] += len(finished.game_lengths)
        metrics = {}
        if finished.game_lengths:
            returns = np.array(finished.first_player_returns)
            metrics["charts/first_player_score"] = float(np.mean(returns + 1) / 2)
            metrics["charts/episode_length"] = float(np.mean(finished.game_lengths))
        return metrics, finished.num_simulations

    def train(self, num_steps: int) -> dict[str, float]:
        """Step 7: minibatch SGD on (z - v)^2 - pi . log p, random symmetries."""
        if self.replay.size < self.config.batch_size:
            return {}
        self.net.train()
        device = self.config.device
        totals = {"losses/policy_loss": 0.0, "losses/value_loss": 0.0, "losses/loss": 0.0}
        for _ in range(num_steps):
            batch = self.replay.sample(self.config.batch_size, self.rng)
            obs, policy, value = batch["obs"], batch["policy"], batch["value"]
            obs, policy = random_symmetry(
                self.game, torch.from_numpy(obs), torch.from_numpy(policy), self.rng
            )
            logits, v = self.net(obs.to(device))
            policy_loss = -(policy.to(device) * F.log_softmax(logits, dim=1)).sum(1).mean()
            value_loss = F.mse_loss(v, torch.from_numpy(value).to(device))
            loss = policy_loss + value_loss
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            totals["losses/policy_loss"] += policy_loss.item() / num_steps
            totals["losses/value_loss"] += value_loss.item() / num_steps
            totals["losses/loss"] += loss.item() / num_steps
        self.counters["train_steps"] += num_steps
        return totals

    def evaluate(self) -> dict[str, float]:
        """Step 8: the agent (search, no noise, no root proof: what training has learned)
        and its raw policy against reference players."""
        game, config = self.game, self.config
        agent = self.player(seed=config.seed + 1, proof_plies=0)
        opponents = config.eval_opponents or (
            "random",
            REFERENCE_OPPONENT.get(config.game, "mcts:200"),
        )
        metrics = {}
        for spec in opponents:
            opponent = make_player(spec, game, seed=config.seed + self.counters["iteration"])
            result = play_match(game, agent, opponent, config.eval_games)
            key = spec.replace(":", "")
            metrics[f"eval/win_rate_vs_{key}"] = result.wins / result.num_games
            metrics[f"eval/loss_rate_vs_{key}"] = result.losses / result.num_games
            metrics[f"eval/score_vs_{key}"] = result.score
        policy = play_match(
            game,
            PolicyPlayer(game, self.net, config.device),
            make_player("random", game, seed=config.seed),
            config.eval_games,
        )
        metrics["eval/policy_score_vs_random"] = policy.score
        return metrics
