import numpy as np
import pytest
import torch

from mbrl import games
from mbrl.model import Evaluation, ModelSpec, ShapeError, Step
from mbrl.planners.evaluators import RandomRolloutEvaluator, UniformEvaluator
from mbrl.planners.mcts import MCTSConfig, RootPolicy, considered_visits_table, search
from mbrl.planners.reference import reference_search, root_policy_target


class FixedNetEvaluator:
    """A deterministic stand-in for a network: a fixed random linear map of the observation,
    computed row by row so that batched and single calls agree to the last bit."""

    def __init__(self, model, seed=0):
        self.model = model
        rng = np.random.default_rng(seed)
        size = int(np.prod(model.spec.obs_shape))
        self.w_logits = rng.normal(size=(size, model.spec.num_actions))
        self.w_value = rng.normal(size=size) / np.sqrt(size)

    def evaluate(self, state):
        obs = self.model.observe(state).reshape(state.shape[0], -1).double().numpy()
        logits = np.stack([row @ self.w_logits for row in obs]).astype(np.float32)
        value = np.tanh(np.array([row @ self.w_value for row in obs])).astype(np.float32)
        return Evaluation(torch.from_numpy(logits), torch.from_numpy(value))


def replay(game, moves):
    state = game.initial_state(1)
    for a in moves:
        state = game.step(state, torch.tensor([a])).state
    return state


def positions(game, num, seed):
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < num:
        state = game.initial_state(1)
        for _ in range(rng.integers(0, 6)):
            legal = torch.nonzero(game.legal_actions(state)[0]).flatten().numpy()
            next_state = game.step(state, torch.tensor([rng.choice(legal)])).state
            if game.is_terminal(next_state)[0]:
                break
            state = next_state
        out.append(state)
    return torch.cat(out)


@pytest.mark.parametrize("game_name", ["tic_tac_toe", "connect_four"])
@pytest.mark.parametrize("policy", list(RootPolicy))
def test_batched_search_matches_reference(game_name, policy):
    game = games.make(game_name)
    evaluator = FixedNetEvaluator(game)
    config = MCTSConfig(
        num_simulations=48, root_policy=policy, dirichlet_fraction=0.0, max_num_considered_actions=4
    )
    roots = positions(game, 6, seed=1)
    rng = np.random.default_rng(2)
    result = search(game, evaluator, roots, config, np.random.default_rng(2))
    gumbel = rng.gumbel(size=(6, game.spec.num_actions)) if policy is RootPolicy.GUMBEL else None
    for b in range(6):
        root = reference_search(
            game, evaluator, roots[b : b + 1], config, gumbel=None if gumbel is None else gumbel[b]
        )
        visits = [root.edge_visits(a) for a in range(game.spec.num_actions)]
        assert result.visit_counts[b].tolist() == visits, f"row {b}"
        np.testing.assert_allclose(result.policy[b], root_policy_target(root, config), atol=1e-5)
        np.testing.assert_allclose(
            result.root_value[b],
            root.value_sum / root.visits if not root.solved else root.solved_value,
            atol=1e-5,
        )


@pytest.mark.parametrize("game_name", ["tic_tac_toe", "connect_four"])
@pytest.mark.parametrize(
    "extra",
    [{"fpu_reduction": 0.25}, {"forced_playouts": 2.0}, {"fpu_reduction": 0.2, "c_puct": 2.0}],
)
def test_puct_variants_match_reference(game_name, extra):
    """First-play urgency and forced playouts (with the pruned policy target): the batched
    search equals the reference, whose pruning counts visits off one at a time."""
    game = games.make(game_name)
    evaluator = FixedNetEvaluator(game, seed=3)
    config = MCTSConfig(num_simulations=64, dirichlet_fraction=0.0, **extra)
    roots = positions(game, 6, seed=4)
    result = search(game, evaluator, roots, config, np.random.default_rng(0))
    plain = search(
        game, evaluator, roots, MCTSConfig(num_simulations=64, dirichlet_fraction=0.0), None
    )
    assert not torch.equal(result.visit_counts, plain.visit_counts)  # the options do something
    for b in range(6):
        root = reference_search(game, evaluator, roots[b : b + 1], config)
        visits = [root.edge_visits(a) for a in range(game.spec.num_actions)]
        assert result.visit_counts[b].tolist() == visits, f"row {b}"
        target = root_policy_target(root, config, best=int(result.action[b]))
        np.testing.assert_allclose(result.policy[b], target, atol=1e-6)


def test_forced_playouts_give_each_visited_edge_its_share_and_are_pruned():
    game = games.make("connect_four")
    evaluator = FixedNetEvaluator(game, seed=5)
    k = 2.0
    config = MCTSConfig(num_simulations=200, dirichlet_fraction=0.0, forced_playouts=k)
    result = search(game, evaluator, positions(game, 8, seed=6), config, None)
    visits = result.visit_counts.numpy()
    prior = result.tree.prior[:, 0]
    total = visits.sum(axis=1, keepdims=True)
    tree = result.tree
    children = tree.children[:, 0]
    child_solved = np.take_along_axis(tree.solved, np.maximum(children, 0), axis=1)
    visited = (visits > 0) & ~child_solved & ~tree.solved[:, :1]
    assert visited.sum() > 10
    # Every visited open edge of an open root got its forced playouts (one short at most:
    # the budget ran out).
    assert (visits[visited] >= np.floor(np.sqrt(k * prior * total))[visited] - 1).all()
    # The target drops only forced playouts, keeps the played move's visits, and is lower
    # than the visits somewhere (else the pruning would be untested).
    rows = np.arange(8)
    best = result.action.numpy()
    scale = visits[rows, best] / result.policy.numpy()[rows, best]
    target = result.policy.numpy() * scale[:, None]  # the pruned visit counts
    forced = np.sqrt(k * prior * total)
    assert (target <= visits + 1e-3).all()
    assert (target >= visits - forced - 1 - 1e-3).all()
    assert (target < visits - 0.5).any()


@pytest.mark.parametrize("policy", list(RootPolicy))
def test_finds_win_and_blocks_loss_connect_four(policy):
    game = games.make("connect_four")
    config = MCTSConfig(num_simulations=200, root_policy=policy, dirichlet_fraction=0.0)
    evaluator = RandomRolloutEvaluator(game, 2, np.random.default_rng(0))
    # Player 0 (to move) has three in column 3: win by playing it again.
    win = replay(game, [3, 0, 3, 0, 3, 6])
    # Player 1 has three in column 0 and player 0 must block (column 0).
    block = replay(game, [3, 0, 3, 0, 6, 0])
    result = search(game, evaluator, torch.cat([win, block]), config, np.random.default_rng(1))
    assert result.action.tolist() == [3, 0]
    assert result.root_value[0] == 1.0 and result.tree.solved[0, 0]
    # The losing side's search value says so (for the player to move at the root).
    lost = replay(game, [3, 3, 2, 2, 4])  # player 0 has an open three on the bottom row
    result = search(game, evaluator, lost, config, np.random.default_rng(1))
    assert result.root_value[0] < -0.5
    if policy is RootPolicy.PUCT:  # PUCT visits every reply here and proves the loss
        assert result.root_value[0] == -1.0 and result.tree.solved[0, 0]


def test_tic_tac_toe_solved_values_with_uniform_evaluator():
    game = games.make("tic_tac_toe")
    # x: a1 b1, o: a2 b2, x to move wins at c1; after x errs, o wins at c2.
    state = replay(game, [0, 3, 1, 4])
    config = MCTSConfig(num_simulations=300, dirichlet_fraction=0.0)
    result = search(game, UniformEvaluator(game), state, config, np.random.default_rng(0))
    assert result.action.item() == 2 and result.root_value.item() == 1.0
    # o to move must block c1 (else x wins): the search blocks.
    state = replay(game, [0, 4, 1])
    result = search(game, UniformEvaluator(game), state, config, np.random.default_rng(0))
    assert result.action.item() == 2


class Bandit:
    """One-step, one-player world: action a pays rewards[a] and ends the episode."""

    def __init__(self, rewards):
        self.rewards = torch.tensor(rewards, dtype=torch.float32)
        A = len(rewards)
        self.spec = ModelSpec(
            name="bandit",
            obs_shape=(1,),
            state_shape=(1,),
            state_dtype=torch.float32,
            num_actions=A,
        )

    def step(self, state, action, generator=None):
        B = state.shape[0]
        return Step(torch.ones(B, 1), self.rewards[action], torch.ones(B, dtype=torch.bool))

    def observe(self, state):
        return state.clone()

    def legal_actions(self, state):
        return (state[:, 0] == 0)[:, None].repeat(1, len(self.rewards))

    def to_play(self, state):
        return torch.zeros(state.shape[0], dtype=torch.int64)


class FixedPrior:
    def __init__(self, logits, value):
        self.logits, self.value = torch.tensor(logits), value

    def evaluate(self, state):
        B = state.shape[0]
        return Evaluation(self.logits.repeat(B, 1), torch.full((B,), self.value))


def test_gumbel_policy_target_matches_hand_computation():
    rewards = [0.1, 0.9, 0.5, -0.3]
    logits = [0.5, 0.0, 1.0, -1.0]
    value = 0.2
    config = MCTSConfig(
        num_simulations=2,
        root_policy=RootPolicy.GUMBEL,
        max_num_considered_actions=2,
        gumbel_scale=0.0,
        find_terminal_moves=False,  # every bandit move ends it: no value would be unknown
    )
    result = search(
        Bandit(rewards),
        FixedPrior(logits, value),
        torch.zeros(1, 1),
        config,
        np.random.default_rng(0),
    )
    # Without noise the top-2 by logits (actions 2 and 0) are visited once each.
    assert result.visit_counts[0].tolist() == [1, 0, 1, 0]
    prior = np.exp(logits) / np.exp(logits).sum()
    visited = [0, 2]
    weighted = sum(prior[a] * rewards[a] for a in visited) / sum(prior[a] for a in visited)
    v_mix = (value + 2 * weighted) / (1 + 2)
    completed = np.array([rewards[0], v_mix, rewards[2], v_mix])
    rescaled = (completed - completed.min()) / (completed.max() - completed.min())
    sigma = (50 + 1) * 0.1 * rescaled
    z = np.array(logits) + sigma
    expected = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    np.testing.assert_allclose(result.policy[0].numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(result.q_values[0].numpy()[visited], [rewards[0], rewards[2]])
    assert result.action.item() == 2  # better sigma(q) among the equally visited


def test_considered_visits_table():
    table = considered_visits_table(4, 16)
    assert table[4].tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert table[1].tolist() == list(range(16))


def test_bad_input():
    game = games.make("tic_tac_toe")
    with pytest.raises(ValueError, match="num_simulations"):
        MCTSConfig(num_simulations=0)
    with pytest.raises(ValueError, match="dirichlet_fraction"):
        MCTSConfig(dirichlet_fraction=1.5)
    done = replay(game, [0, 3, 1, 4, 2])
    with pytest.raises(ValueError, match="terminal"):
        search(game, UniformEvaluator(game), done, MCTSConfig(), np.random.default_rng(0))
    with pytest.raises(ShapeError):
        search(
            game,
            UniformEvaluator(game),
            torch.zeros(2, 3, dtype=torch.int64),
            MCTSConfig(),
            np.random.default_rng(0),
        )


def test_same_rng_same_search():
    game = games.make("connect_four")
    roots = positions(game, 4, seed=3)
    for policy in RootPolicy:
        config = MCTSConfig(num_simulations=32, root_policy=policy)
        results = [
            search(
                game,
                RandomRolloutEvaluator(game, 1, np.random.default_rng(5)),
                roots,
                config,
                np.random.default_rng(4),
            )
            for _ in range(2)
        ]
        assert torch.equal(results[0].visit_counts, results[1].visit_counts)
        assert torch.equal(results[0].policy, results[1].policy)
