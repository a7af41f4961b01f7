"""The search cannot miss short tactics: a win in one is taken, a loss in one that a move
prevents is prevented, and solved roots carry the game-theoretic value, under both root
policies, at 32, 200 and 800 simulations, whatever the evaluator's prior says.

Oracles: one-move tactics straight from the game's own rules (step every move, then
every reply), and for near-finished connect-four positions the exact minimax
(:mod:`mbrl.games.connect_four_minimax`, itself checked against the solver).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mbrl import games
from mbrl.games import connect_four_minimax, minimax
from mbrl.model import Evaluation
from mbrl.planners.mcts import MCTSConfig, RootPolicy, search

from .test_mcts import FixedNetEvaluator

pytestmark = pytest.mark.usefixtures("one_thread")


class MisleadingEvaluator:
    """A prior that is confidently wrong: the legal moves' logits are a fixed random
    permutation of 0, -4, -8, ..., so the winning or saving move is often given almost
    nothing, and a random value in [-1, 1]."""

    def __init__(self, model, seed=0):
        self.model, self.rng = model, np.random.default_rng(seed)

    def evaluate(self, state):
        b, a = state.shape[0], self.model.spec.num_actions
        logits = -4.0 * np.argsort(self.rng.random((b, a)), axis=1).astype(np.float32)
        value = self.rng.uniform(-1, 1, b).astype(np.float32)
        return Evaluation(torch.from_numpy(logits), torch.from_numpy(value))


def tactics(game, state):
    """``(wins, safe)`` per legal move of one state ``[1, S]``: the move wins at once; the
    move does not let the opponent win at once."""
    legal = torch.nonzero(game.legal_actions(state)[0]).flatten().tolist()
    wins, safe = {}, {}
    for move in legal:
        step = game.step(state, torch.tensor([move]))
        wins[move] = bool(step.terminal[0]) and float(step.reward[0]) > 0
        safe[move] = True
        if not bool(step.terminal[0]):
            replies = torch.nonzero(game.legal_actions(step.state)[0]).flatten()
            after = game.step(step.state.repeat(len(replies), 1), replies)
            safe[move] = not bool((after.terminal & (after.reward > 0)).any())
    return wins, safe


def random_position(game, rng, plies):
    """``(state [1, S], history)`` after a random number of uniformly random moves in
    ``range(*plies)``, stopping before a move that would end the game."""
    state, history = game.initial_state(1), []
    for _ in range(int(rng.integers(*plies))):
        legal = torch.nonzero(game.legal_actions(state)[0]).flatten().numpy()
        move = int(rng.choice(legal))
        after = game.step(state, torch.tensor([move]))
        if bool(after.terminal[0]):
            break
        state, history = after.state, [*history, move]
    return state, history


def tactical_positions(game_name, num, plies, seed):
    """``(states [K, S], histories)``: random positions in which a win in one exists, or
    the opponent threatens one that some move prevents (so a careless move is a mistake)."""
    game = games.make(game_name)
    rng = np.random.default_rng(seed)
    states, histories = [], []
    while len(states) < num:
        state, history = random_position(game, rng, plies)
        wins, safe = tactics(game, state)
        if any(wins.values()) or (any(safe.values()) and not all(safe.values())):
            states.append(state)
            histories.append(history)
    return torch.cat(states), histories


CASES = {"connect_four": (48, (16, 36)), "tic_tac_toe": (24, (2, 6))}


@pytest.mark.parametrize("game_name", list(CASES))
@pytest.mark.parametrize("policy", list(RootPolicy))
@pytest.mark.parametrize("num_simulations", [32, 200, 800])
def test_never_misses_a_win_in_one_or_allows_a_loss_in_one(game_name, policy, num_simulations):
    num, plies = CASES[game_name]
    game = games.make(game_name)
    states, histories = tactical_positions(game_name, num, plies, seed=num_simulations)
    config = MCTSConfig(num_simulations=num_simulations, root_policy=policy)
    for evaluator in (MisleadingEvaluator(game, 1), FixedNetEvaluator(game, 2)):
        result = search(game, evaluator, states, config, np.random.default_rng(3))
        for row, move in enumerate(result.action.tolist()):
            wins, safe = tactics(game, states[row : row + 1])
            if any(wins.values()):
                assert wins[move], (game_name, row, move, wins)
                assert result.tree.solved[row, 0] and result.root_value[row] == 1.0
            elif not safe[move]:  # only where every move loses: the search proved it, truly
                assert result.tree.solved[row, 0] and result.root_value[row] == -1.0, row
                assert exact_value(game_name, states[row], histories[row]) == -1, row


def exact_value(game_name, state, history) -> int:
    """The game-theoretic value for the player to move, where a short search settles it
    (tic-tac-toe: exact minimax; connect four: minimax 10 plies deep, 0 if undecided)."""
    if game_name == "tic_tac_toe":
        return minimax.value(state.numpy())
    best = max(connect_four_minimax.move_scores(history, 10).values())
    return (best > 0) - (best < 0)


@pytest.mark.parametrize("policy", list(RootPolicy))
def test_solved_roots_carry_the_exact_value(policy):
    game = games.make("connect_four")
    rng = np.random.default_rng(7)
    states, empties = [], []
    while len(states) < 40:
        state, history = random_position(game, rng, (30, 40))
        if 42 - len(history) <= 10:
            states.append(state)
            empties.append(history)
    config = MCTSConfig(num_simulations=400, root_policy=policy)
    result = search(game, MisleadingEvaluator(game, 4), torch.cat(states), config, rng)
    solved = 0
    for row, history in enumerate(empties):
        exact = max(connect_four_minimax.move_scores(history, 42 - len(history)).values())
        if result.tree.solved[row, 0]:
            solved += 1
            assert np.sign(result.root_value[row].item()) == np.sign(exact), (row, history)
    assert solved >= 20  # most of these short endgames are proven within 400 simulations


def test_the_reported_miss_is_fixed():
    """The issue's position: x to move, columns 1 and 6 legal; column 6 lets o win at once
    in column 1. The shipped agent's Gumbel search at 800 simulations played column 6."""
    from mbrl.algorithms.alphazero import AlphaZero

    moves = [int(c) - 1 for c in "16414523423334744562777622555732367151"]
    game = games.make("connect_four")
    state = game.initial_state(1)
    for move in moves:
        state = game.step(state, torch.tensor([move])).state
    player = AlphaZero.load("connect_four").player(game, num_simulations=800, seed=0)
    assert int(player.act(state, [moves])[0]) == 0  # column 1 draws
