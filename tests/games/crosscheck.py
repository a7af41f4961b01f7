"""Play random games in a native model and its OpenSpiel twin side by side.

Every ply of every game compares: legal action sets, terminal flags, the
player to move, per-ply reward (our reward for the mover against OpenSpiel's
``rewards()``/``returns()``), and at the end the returns of both players.
"""

from __future__ import annotations

import numpy as np
import pyspiel
import torch

from mbrl.model import GameModel


def crosscheck_random_games(
    model: GameModel, openspiel_name: str, num_games: int, seed: int, batch_size: int = 250
) -> int:
    """Plays ``num_games`` uniformly random games in both; returns the number of plies checked."""
    game = pyspiel.load_game(openspiel_name)
    rng = np.random.default_rng(seed)
    plies = 0
    for start in range(0, num_games, batch_size):
        n = min(batch_size, num_games - start)
        state = model.initial_state(n)
        twins = [game.new_initial_state() for _ in range(n)]
        for _ in range((model.spec.max_episode_length or 10_000) + 1):
            legal = model.legal_actions(state).numpy()
            terminal = model.is_terminal(state).numpy()
            to_play = model.to_play(state).numpy()
            for i, twin in enumerate(twins):
                assert bool(terminal[i]) == twin.is_terminal(), (
                    f"game {start + i}: terminal differs"
                )
                if twin.is_terminal():
                    assert not legal[i].any()
                    continue
                assert int(to_play[i]) == twin.current_player(), f"game {start + i}: player differs"
                ours = np.flatnonzero(legal[i]).tolist()
                assert ours == twin.legal_actions(), (
                    f"game {start + i}: legal {ours} != {twin.legal_actions()}\n{twin}"
                )
            if terminal.all():
                break
            # Uniform random legal action per row (rows that are over play 0: a no-op).
            scores = rng.random(legal.shape) * legal
            actions = np.where(terminal, 0, scores.argmax(axis=1))
            movers = to_play.copy()
            result = model.step(state, torch.from_numpy(actions))
            for i, twin in enumerate(twins):
                if terminal[i]:
                    assert float(result.reward[i]) == 0.0
                    continue
                twin.apply_action(int(actions[i]))
                plies += 1
                expected = twin.returns()[movers[i]] if twin.is_terminal() else 0.0
                assert float(result.reward[i]) == expected, f"game {start + i}: reward differs"
            state = result.state
        else:
            raise AssertionError("games did not end within max_episode_length")
        returns = model.returns(state).numpy()
        for i, twin in enumerate(twins):
            assert returns[i].tolist() == list(twin.returns()), f"game {start + i}: returns differ"
    return plies
