"""A plain object-per-node MCTS: the readable reference the batched search is tested against.

Same rules as :mod:`mbrl.planners.mcts` (PUCT or Gumbel at the root, solved
values, the moves that end the game found when a node is made, the root moves
proven by a full-width search of ``proof_plies``, deterministic
tie-breaking: the lowest action index wins a tie), one
game at a time, one model call per expansion. Slow on purpose; use
:func:`mbrl.planners.mcts.search` for real work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from mbrl.model import Evaluator, Model

from .mcts import MCTSConfig, RootPolicy, considered_visits_table
from .proof import prove_root_moves

__all__ = ["Node", "reference_search"]


@dataclass
class Node:
    state: Tensor  # [1, *state_shape]
    to_play: int
    terminal: bool
    raw_value: float = 0.0
    logits: np.ndarray | None = None  # [A] float32, -inf where illegal
    prior: np.ndarray | None = None  # [A]
    visits: int = 0
    value_sum: np.float32 = field(default_factory=lambda: np.float32(0.0))
    children: dict[int, Node] = field(default_factory=dict)
    rewards: dict[int, float] = field(default_factory=dict)
    ends: dict[int, float] = field(default_factory=dict)  # moves that end the game: reward
    solved: bool = False
    solved_value: float = 0.0

    def legal(self) -> list[int]:
        return [a for a in range(len(self.logits)) if self.logits[a] != -np.inf]

    def known(self, a: int) -> bool:
        return a in self.children or a in self.ends

    def edge(self, a: int) -> tuple[float, bool]:
        """(value of edge a for the player to move here, proven?)."""
        if a not in self.children:  # a move known to end the game: its reward, exactly
            return float(self.ends[a]), True
        child = self.children[a]
        sign = 1.0 if child.to_play == self.to_play else -1.0
        if child.solved:
            return float(self.rewards[a]) + sign * child.solved_value, True
        return float(self.rewards[a]) + sign * float(child.value_sum) / child.visits, False

    def edge_visits(self, a: int) -> int:
        return self.children[a].visits if a in self.children else 0


def _make_node(
    model: Model, evaluator: Evaluator, state: Tensor, config: MCTSConfig, terminal: bool = False
) -> Node:
    node = Node(state, int(model.to_play(state)[0]), terminal)
    if terminal:
        node.solved, node.solved_value = True, 0.0
        return node
    evaluation = evaluator.evaluate(state)
    legal = model.legal_actions(state)[0].numpy()
    logits = evaluation.logits[0].detach().float().numpy().astype(np.float32).copy()
    logits[~legal] = -np.inf
    node.logits = logits
    prior = np.where(legal, np.exp(logits.astype(np.float64) - logits.max()), 0.0)
    node.prior = prior / prior.sum()
    node.raw_value = float(evaluation.value[0])
    if config.find_terminal_moves:  # step every legal move once: which end the game?
        for a in node.legal():
            step = model.step(state, torch.tensor([a]))
            if bool(step.terminal[0]):
                node.ends[a] = float(step.reward[0])
        if node.ends:
            _update_solved(node, math.inf if config.win_value is None else config.win_value)
    return node


def _sigma_completed_q(node: Node, config: MCTSConfig) -> np.ndarray:
    """Gumbel's sigma of the completed, min-max rescaled Q of the node's edges (-inf if illegal)."""
    legal = node.legal()
    visited = [a for a in legal if a in node.children]
    q = {a: node.edge(a)[0] for a in visited}
    sum_visits = sum(node.edge_visits(a) for a in visited)
    max_visits = max([node.edge_visits(a) for a in visited], default=0)
    weight = sum(node.prior[a] for a in visited)
    v_mix = node.raw_value
    if weight > 0:
        weighted = sum(node.prior[a] * q[a] for a in visited) / weight
        v_mix = (node.raw_value + sum_visits * weighted) / (1 + sum_visits)
    completed = {a: q.get(a, node.ends.get(a, v_mix)) for a in legal}
    lo, hi = min(completed.values()), max(completed.values())
    scale = (config.c_visit + max_visits) * config.c_scale / max(hi - lo, 1e-8)
    out = np.full(len(node.logits), -np.inf)
    for a in legal:
        out[a] = (completed[a] - lo) * scale
    return out


def _choose(node: Node, config: MCTSConfig, is_root: bool, forced: int | None) -> int:
    if is_root and forced is not None:
        return forced
    legal = node.legal()
    if node.solved:  # only the root gets here: its best proven edge
        proven = [(node.edge(a)[0], a) for a in legal if node.known(a) and node.edge(a)[1]]
        return max(proven, key=lambda qa: (qa[0], qa[1] in node.ends, -qa[1]))[1]
    if config.root_policy is RootPolicy.GUMBEL:
        z = _sigma_completed_q(node, config) + node.logits
        probs = np.exp(z - z[legal].max())
        probs /= probs[legal].sum()
        scores = {a: probs[a] - node.edge_visits(a) / node.visits for a in legal}
    else:
        if is_root and config.forced_playouts > 0:  # KataGo's forced playouts
            total = node.visits - 1
            deficits = {
                a: math.sqrt(config.forced_playouts * node.prior[a] * total)
                - node.children[a].visits
                for a in legal
                if a in node.children and not node.children[a].solved
            }
            if deficits and max(deficits.values()) > 0:
                top = max(deficits.values())
                return min(a for a in deficits if deficits[a] == top)
        unknown_q = 0.0
        if config.fpu_reduction is not None:  # first-play urgency
            visited_prior = sum(node.prior[a] for a in node.children)
            mean = float(node.value_sum) / node.visits
            unknown_q = mean - config.fpu_reduction * math.sqrt(visited_prior)
        scores = {}
        for a in legal:
            q = node.edge(a)[0] if node.known(a) else unknown_q
            explore = node.prior[a] * math.sqrt(node.visits) / (1 + node.edge_visits(a))
            scores[a] = q + config.c_puct * explore
    best = max(scores.values())
    return min(a for a in legal if scores[a] == best)


def _update_solved(node: Node, win_value: float) -> None:
    proven_values, all_proven = [], True
    for a in node.legal():
        if not node.known(a):
            all_proven = False
            continue
        q, proven = node.edge(a)
        if not proven:
            all_proven = False
        elif q >= win_value:
            node.solved, node.solved_value = True, q
            return
        else:
            proven_values.append(q)
    if all_proven and proven_values:
        node.solved, node.solved_value = True, max(proven_values)


def _simulate(model, evaluator, root: Node, config: MCTSConfig, forced: int | None) -> None:
    win_value = math.inf if config.win_value is None else config.win_value
    path, node, new = [root], root, False
    while True:
        if node.terminal or (node.solved and node is not root):
            break
        a = _choose(node, config, node is root, forced)
        if a not in node.children:
            step = model.step(node.state, torch.tensor([a]))
            child = _make_node(model, evaluator, step.state, config, bool(step.terminal[0]))
            node.children[a], node.rewards[a] = child, float(step.reward[0])
            path.append(child)
            new = True
            break
        node = node.children[a]
        path.append(node)
    leaf = path[-1]
    if new:
        value = 0.0 if leaf.terminal else leaf.solved_value if leaf.solved else leaf.raw_value
    else:
        value = leaf.solved_value if leaf.solved else 0.0
    leaf.visits += 1
    leaf.value_sum = np.float32(leaf.value_sum + value)
    for parent, child in zip(reversed(path[:-1]), reversed(path[1:])):
        action = next(a for a, c in parent.children.items() if c is child)
        sign = 1.0 if child.to_play == parent.to_play else -1.0
        value = parent.rewards[action] + sign * value
        if not parent.solved:
            _update_solved(parent, win_value)
        if parent.solved:
            value = parent.solved_value
        parent.visits += 1
        parent.value_sum = np.float32(parent.value_sum + value)


def _add_proven_moves(model: Model, root: Node, config: MCTSConfig) -> None:
    """The full-width search's verdicts at the root: the moves that end the game (if
    ``find_terminal_moves`` has not found them), then each other proven move as a
    solved, unvisited child."""
    win_value = math.inf if config.win_value is None else config.win_value
    proof = prove_root_moves(model, root.state, config.proof_plies, config.win_value)
    ends = {a: float(proof.reward[0, a]) for a in root.legal() if proof.ends[0, a]}
    if ends and not root.ends:
        root.ends = ends
        _update_solved(root, win_value)
    added = False
    for a in root.legal():
        if proof.proven[0, a] and not root.known(a):
            state = model.step(root.state, torch.tensor([a])).state
            child = Node(state, int(proof.child_to_play[0, a]), False)
            child.solved, child.solved_value = True, float(proof.child_value[0, a])
            root.children[a], root.rewards[a] = child, float(proof.reward[0, a])
            added = True
    if added and not root.solved:
        _update_solved(root, win_value)


def reference_search(
    model: Model,
    evaluator: Evaluator,
    root_state: Tensor,
    config: MCTSConfig,
    gumbel: np.ndarray | None = None,
    root_prior: np.ndarray | None = None,
) -> Node:
    """Search one state ``[1, *state_shape]``; returns the root node.

    Args:
        gumbel: ``[A]`` Gumbel noise for the Gumbel root (zeros if None).
        root_prior: replaces the root prior (e.g. with Dirichlet noise mixed in).
    """
    root = _make_node(model, evaluator, root_state, config)
    if config.proof_plies:
        _add_proven_moves(model, root, config)
    if root_prior is not None:
        root.prior = np.asarray(root_prior, dtype=np.float64)
    root.visits, root.value_sum = 1, np.float32(root.raw_value)
    A = len(root.logits)
    gumbel = np.zeros(A) if gumbel is None else np.asarray(gumbel, dtype=np.float64)
    num_considered = min(len(root.legal()), config.max_num_considered_actions)
    table = considered_visits_table(config.max_num_considered_actions, config.num_simulations)
    for simulation in range(config.num_simulations):
        forced = None
        if config.root_policy is RootPolicy.GUMBEL:
            level = table[num_considered, simulation]
            score = root_gumbel_scores(root, gumbel, config)
            candidates = [a for a in root.legal() if root.edge_visits(a) == level]
            forced = max(candidates, key=lambda a: (score[a], -a))
        _simulate(model, evaluator, root, config, forced)
    return root


def root_gumbel_scores(root: Node, gumbel: np.ndarray, config: MCTSConfig) -> np.ndarray:
    """``g + logits - max logits + sigma(q)`` at the root, floored at -1e9 (-inf if illegal)."""
    sigma_q = _sigma_completed_q(root, config)
    top = root.logits.max()
    out = np.full(len(root.logits), -np.inf)
    for a in root.legal():
        out[a] = max(gumbel[a] + root.logits[a] - top + sigma_q[a], -1e9)
    return out


def root_policy_target(root: Node, config: MCTSConfig, best: int | None = None) -> np.ndarray:
    """The policy target: visit distribution (PUCT, less the forced playouts, counted off
    one at a time, with ``best`` the edge played) or softmax(logits + sigma(q)) (Gumbel)."""
    if config.root_policy is RootPolicy.GUMBEL:
        z = root.logits + _sigma_completed_q(root, config)
        p = np.exp(z - z.max())
        return p / p.sum()
    p = np.array([root.edge_visits(a) for a in range(len(root.logits))], dtype=np.float64)
    if config.forced_playouts > 0:
        best = int(np.argmax(p)) if best is None else best
        sqrt_n = math.sqrt(root.visits)

        def puct(a: int, n: float) -> float:
            q = root.edge(a)[0] if root.known(a) else 0.0
            return q + config.c_puct * root.prior[a] * sqrt_n / (1 + n)

        best_score, total = puct(best, p[best]), p.sum()
        for a in range(len(p)):
            if a == best or p[a] == 0:
                continue
            forced = math.sqrt(config.forced_playouts * root.prior[a] * total)
            n = p[a]
            while n - 1 >= p[a] - forced and n >= 1 and puct(a, n - 1) < best_score:
                n -= 1
            p[a] = 0.0 if n <= 1 else n
    return p / p.sum()
