"""The root proof search (:mod:`mbrl.planners.proof`) against exact oracles: tic-tac-toe's
full minimax, connect four's depth-limited minimax (itself checked against the solver);
and the search with the proof on, batched against the reference.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mbrl import games
from mbrl.games import connect_four_minimax, minimax
from mbrl.planners.mcts import MCTSConfig, RootPolicy, search
from mbrl.planners.proof import auto_proof_plies, prove_root_moves
from mbrl.planners.reference import reference_search, root_policy_target

from .test_mcts import FixedNetEvaluator
from .test_tactics import MisleadingEvaluator, random_position

pytestmark = pytest.mark.usefixtures("one_thread")


def test_auto_proof_plies_is_the_deepest_width_in_budget():
    assert auto_proof_plies(7) == 4  # 7 + 49 + 343 + 2401 = 2800; + 16807 is over 4096
    assert auto_proof_plies(9) == 3  # 9 + 81 + 729 = 819; + 6561 is over
    assert auto_proof_plies(65) == 1
    assert auto_proof_plies(7, budget=6) == 0
    assert auto_proof_plies(7, budget=7) == 1
    assert auto_proof_plies(2, budget=2 + 4 + 8) == 3


def test_bad_plies():
    game = games.make("connect_four")
    with pytest.raises(ValueError, match="plies"):
        prove_root_moves(game, game.initial_state(1), -1)
    with pytest.raises(ValueError, match="proof_plies"):
        MCTSConfig(proof_plies=-1)
    proof = prove_root_moves(game, game.initial_state(2), 0)
    assert proof.proven.shape == (2, 7) and not proof.proven.any()


def test_tic_tac_toe_full_width_is_the_exact_solution():
    """Nine plies deep the search is exhaustive: every legal move is proven, with the
    sign of the exact minimax score, and the child values are the negated move values."""
    game = games.make("tic_tac_toe")
    rng = np.random.default_rng(0)
    rows = [random_position(game, rng, (2, 7))[0] for _ in range(24)]
    states = torch.cat(rows)
    proof = prove_root_moves(game, states, 9)
    legal = game.legal_actions(states).numpy()
    for b, row in enumerate(states.numpy()):
        scores = minimax.move_scores(row)
        assert set(scores) == set(np.flatnonzero(legal[b]).tolist())
        for a, score in scores.items():
            assert proof.proven[b, a], (b, a)
            assert proof.value[b, a] == np.sign(score), (b, a, score)
            if proof.ends[b, a]:
                assert proof.reward[b, a] == proof.value[b, a]
            else:
                assert proof.child_value[b, a] == -proof.value[b, a]
        assert not proof.proven[b, ~legal[b]].any()


@pytest.mark.parametrize("plies", [1, 2, 3, 4])
def test_connect_four_matches_depth_limited_minimax(plies):
    """A move is proven won (lost) exactly when minimax ``plies`` deep scores it a forced
    win (loss); undecided moves are not proven, and a proven 0 is a draw minimax also
    leaves at 0."""
    game = games.make("connect_four")
    rng = np.random.default_rng(plies)
    rows, histories = [], []
    while len(rows) < 60:
        state, history = random_position(game, rng, (10, 42))
        if not game.is_terminal(state)[0]:
            rows.append(state)
            histories.append(history)
    proof = prove_root_moves(game, torch.cat(rows), plies)
    decided = 0
    for b, history in enumerate(histories):
        scores = connect_four_minimax.move_scores(history, plies)
        for a, score in scores.items():
            if score != 0:
                decided += 1
                assert proof.proven[b, a] and proof.value[b, a] == np.sign(score), (b, a)
            elif proof.proven[b, a]:
                assert proof.value[b, a] == 0, (b, a, history)
    assert decided >= 20  # random middlegames hold tactics within a few plies


def tactical_roots(game, plies, num, seed):
    """Connect-four positions with a forced win or a forced loss behind some move within
    ``plies`` plies (so the proof changes the search), and their histories."""
    rng = np.random.default_rng(seed)
    rows, histories = [], []
    while len(rows) < num:
        state, history = random_position(game, rng, (12, 36))
        if game.is_terminal(state)[0] or len(history) < 12:
            continue
        if any(s != 0 for s in connect_four_minimax.move_scores(history, plies).values()):
            rows.append(state)
            histories.append(history)
    return torch.cat(rows), histories


@pytest.mark.parametrize("policy", list(RootPolicy))
def test_batched_search_with_the_proof_matches_reference(policy):
    game = games.make("connect_four")
    evaluator = FixedNetEvaluator(game, seed=8)
    config = MCTSConfig(
        num_simulations=48,
        root_policy=policy,
        dirichlet_fraction=0.0,
        max_num_considered_actions=4,
        proof_plies=3,
    )
    roots, _ = tactical_roots(game, 3, 8, seed=9)
    rng = np.random.default_rng(2)
    result = search(game, evaluator, roots, config, np.random.default_rng(2))
    gumbel = rng.gumbel(size=(8, 7)) if policy is RootPolicy.GUMBEL else None
    plain_config = MCTSConfig(**{**vars(config), "proof_plies": 0})
    plain = search(game, evaluator, roots, plain_config, np.random.default_rng(2))
    assert not torch.equal(result.visit_counts, plain.visit_counts)  # the proof does something
    for b in range(8):
        root = reference_search(
            game, evaluator, roots[b : b + 1], config, gumbel=None if gumbel is None else gumbel[b]
        )
        visits = [root.edge_visits(a) for a in range(7)]
        assert result.visit_counts[b].tolist() == visits, f"row {b}"
        np.testing.assert_allclose(result.policy[b], root_policy_target(root, config), atol=1e-5)
        assert bool(result.tree.solved[b, 0]) == root.solved, f"row {b}"
        expected = root.solved_value if root.solved else root.value_sum / root.visits
        np.testing.assert_allclose(result.root_value[b], expected, atol=1e-5)


@pytest.mark.parametrize("policy", list(RootPolicy))
def test_plays_a_win_in_three_the_prior_hides_and_avoids_losses(policy):
    """Positions with a forced win in three plies and none in one: against a confidently
    wrong prior, 32 simulations with a 3-ply proof play a winning move and the root is
    solved a win; where every move but some loses within 4 plies, a safe move is played."""
    game = games.make("connect_four")
    rng = np.random.default_rng(11)
    wins, losses = [], []
    while len(wins) < 16 or len(losses) < 16:
        state, history = random_position(game, rng, (12, 36))
        if game.is_terminal(state)[0]:
            continue
        scores = connect_four_minimax.move_scores(history, 4)
        best = max(scores.values())
        if best == 100 - 3 and len(wins) < 16:
            wins.append((state, scores))
        elif best == 0 and min(scores.values()) < 0 and len(losses) < 16:
            losses.append((state, scores))
    config = MCTSConfig(num_simulations=32, root_policy=policy, proof_plies=4)
    cases = wins + losses
    result = search(
        game, MisleadingEvaluator(game, 3), torch.cat([s for s, _ in cases]), config, rng
    )
    for row, (_, scores) in enumerate(cases):
        move = int(result.action[row])
        if row < len(wins):
            assert scores[move] > 0, (row, move, scores)
            assert result.tree.solved[row, 0] and result.root_value[row] == 1.0
        else:
            assert scores[move] == 0, (row, move, scores)
