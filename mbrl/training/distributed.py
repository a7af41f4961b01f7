"""The Ray backend: self-play actors feeding one learner.

Each actor is a :class:`~mbrl.training.selfplay.SelfPlayWorker` with its share of the
parallel games and its own copy of the network. Every iteration the learner
puts its weights in Ray's object store once, each actor loads them and plays
its moves, and the finished games come back to the learner's replay buffer.
An actor that dies is replaced by a new one (its games in progress are lost)
and the iteration goes on.
"""

from __future__ import annotations

import logging

import numpy as np

from mbrl.model import GameModel
from mbrl.training.selfplay import FinishedGames, SelfPlayWorker

__all__ = ["RayWorkers"]

log = logging.getLogger(__name__)


def _import_ray():
    try:
        import ray
    except ImportError as error:
        raise ImportError(
            "--backend ray needs Ray: pip install 'mbrl[ray]' (or pip install 'ray[default]')"
        ) from error
    return ray


class RayWorkers:
    """``config.num_actors`` Ray actors playing ``config.num_parallel_games`` games between them."""

    def __init__(self, config, game: GameModel, net_args: tuple):
        ray = self._ray = _import_ray()
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            ray.init(address=config.ray_address, include_dashboard=False, log_to_driver=False)
        self.config = config
        self.net_args = net_args
        self.settings = config.selfplay(game)
        self.games_per_actor = [
            len(a) for a in np.array_split(np.arange(config.num_parallel_games), config.num_actors)
        ]
        self._actor_class = ray.remote(num_cpus=1)(SelfPlayWorker)
        self.restarts = 0
        self.actors = [self._spawn(i) for i in range(config.num_actors)]

    def _spawn(self, i: int):
        seed = self.config.seed + 1 + 7919 * i + 104729 * self.restarts
        return self._actor_class.remote(
            self.config.game,
            self.settings,
            self.games_per_actor[i],
            seed,
            None,
            self.net_args,
            "cpu",
            1,
        )

    def play(self, num_moves: int, net) -> FinishedGames:
        ray = self._ray
        weights = ray.put({k: v.detach().cpu() for k, v in net.state_dict().items()})
        pending = {}
        for i, actor in enumerate(self.actors):
            actor.set_weights.remote(weights)
            pending[i] = actor.play.remote(num_moves)
        parts = []
        for i, ref in pending.items():
            try:
                parts.append(ray.get(ref))
            except ray.exceptions.RayActorError:
                parts.append(self._restart_and_play(i, weights, num_moves))
        obs_shape, num_actions = self.net_args[0], self.net_args[1]
        return FinishedGames.concatenate(parts, obs_shape, num_actions)

    def _restart_and_play(self, i: int, weights, num_moves: int) -> FinishedGames:
        ray = self._ray
        self.restarts += 1
        log.warning("self-play actor %d died; starting a new one (restart %d)", i, self.restarts)
        self.actors[i] = self._spawn(i)
        self.actors[i].set_weights.remote(weights)
        return ray.get(self.actors[i].play.remote(num_moves))

    def state_dict(self) -> dict:
        ray = self._ray
        states = []
        for actor in self.actors:
            try:
                states.append(ray.get(actor.state_dict.remote()))
            except ray.exceptions.RayActorError:
                states.append(None)
        return {"actors": states}

    def load_state_dict(self, state: dict) -> None:
        actors = state.get("actors") if isinstance(state, dict) else None
        if not actors or len(actors) != len(self.actors):
            return  # a checkpoint of another backend or actor count: start fresh games
        self._ray.get([a.load_state_dict.remote(s) for a, s in zip(self.actors, actors) if s])

    def close(self) -> None:
        for actor in self.actors:
            self._ray.kill(actor)
        self.actors = []
        if self._owns_ray:
            self._ray.shutdown()
