"""Numba kernels of the batched MCTS: the tree walk, expansion and backup.

All arrays are the fields of :class:`mbrl.planners.mcts.Tree` (``[B, N]`` per
node, ``[B, N, A]`` per edge); every kernel loops over the B rows with
``prange``. Values are for the player to move at a node.
"""

import math

import numba
import numpy as np
from numba import prange

UNVISITED = -1
NEG_INF = -np.inf


@numba.njit(inline="always")
def _edge_value(children, visits, value_sum, to_play, child_reward, solved, solved_value, b, n, a):
    """(value of edge (n, a) for the player at n, proven?); edge must be expanded."""
    c = children[b, n, a]
    sign = 1.0 if to_play[b, c] == to_play[b, n] else -1.0
    if solved[b, c]:
        return child_reward[b, n, a] + sign * solved_value[b, c], True
    return child_reward[b, n, a] + sign * value_sum[b, c] / visits[b, c], False


@numba.njit(cache=True)
def _edge_values(
    children, visits, value_sum, to_play, child_reward, solved, solved_value, n, out, out_proven
):
    for b in range(children.shape[0]):
        for a in range(children.shape[2]):
            if children[b, n, a] >= 0:
                out[b, a], out_proven[b, a] = _edge_value(
                    children,
                    visits,
                    value_sum,
                    to_play,
                    child_reward,
                    solved,
                    solved_value,
                    b,
                    n,
                    a,
                )


@numba.njit(inline="always")
def _completed_sigma_q(
    children,
    visits,
    value_sum,
    raw_value,
    to_play,
    child_reward,
    solved,
    solved_value,
    logits,
    prior,
    b,
    n,
    c_visit,
    c_scale,
    out,
):
    """Gumbel's sigma(completed, rescaled q) of node n's edges into ``out[A]``; -inf if illegal."""
    A = children.shape[2]
    sum_visits = 0.0
    max_visits = 0.0
    weighted_q = 0.0
    weight = 0.0
    for a in range(A):
        c = children[b, n, a]
        if c >= 0:
            q = _edge_value(
                children, visits, value_sum, to_play, child_reward, solved, solved_value, b, n, a
            )[0]
            out[a] = q
            sum_visits += visits[b, c]
            max_visits = max(max_visits, visits[b, c])
            weighted_q += prior[b, n, a] * q
            weight += prior[b, n, a]
    v_mix = raw_value[b, n]
    if weight > 0:
        v_mix = (raw_value[b, n] + sum_visits * weighted_q / weight) / (1.0 + sum_visits)
    lo, hi = np.inf, -np.inf
    for a in range(A):
        if logits[b, n, a] == NEG_INF:
            continue
        if children[b, n, a] < 0:
            out[a] = v_mix
        lo = min(lo, out[a])
        hi = max(hi, out[a])
    scale = (c_visit + max_visits) * c_scale / max(hi - lo, 1e-8)
    for a in range(A):
        out[a] = (out[a] - lo) * scale if logits[b, n, a] != NEG_INF else NEG_INF


@numba.njit(cache=True, parallel=True)
def _select(
    children,
    visits,
    value_sum,
    raw_value,
    to_play,
    terminal,
    solved,
    solved_value,
    child_reward,
    logits,
    prior,
    root_action,
    gumbel,
    c_puct,
    c_visit,
    c_scale,
    out_node,
    out_action,
):
    """Descend every row to an edge to expand (or to a terminal/solved node).

    ``root_action[b] >= 0`` forces the first edge (Gumbel's sequential halving).
    ``out_action[b] = -1`` means the walk ended at node ``out_node[b]`` itself
    (a terminal or solved node): no expansion, just a backup from it.
    """
    A = children.shape[2]
    for b in prange(children.shape[0]):
        scratch = np.empty(A, np.float32)
        n = 0
        while True:
            if terminal[b, n] or (solved[b, n] and n != 0):
                out_node[b] = n
                out_action[b] = -1
                break
            best_a = -1
            best = NEG_INF
            if n == 0 and root_action[b] >= 0:
                best_a = root_action[b]
            elif solved[b, n]:  # the root is solved: follow its best proven edge
                for a in range(A):
                    if logits[b, n, a] != NEG_INF and children[b, n, a] >= 0:
                        q, proven = _edge_value(
                            children,
                            visits,
                            value_sum,
                            to_play,
                            child_reward,
                            solved,
                            solved_value,
                            b,
                            n,
                            a,
                        )
                        if proven and q > best:
                            best, best_a = q, a
            elif gumbel:
                _completed_sigma_q(
                    children,
                    visits,
                    value_sum,
                    raw_value,
                    to_play,
                    child_reward,
                    solved,
                    solved_value,
                    logits,
                    prior,
                    b,
                    n,
                    c_visit,
                    c_scale,
                    scratch,
                )
                # pi' = softmax(logits + sigma(q)); pick argmax pi'(a) - N(a) / (1 + sum N).
                top = NEG_INF
                for a in range(A):
                    if scratch[a] != NEG_INF:
                        scratch[a] += logits[b, n, a]
                        top = max(top, scratch[a])
                total = 0.0
                for a in range(A):
                    if scratch[a] != NEG_INF:
                        scratch[a] = np.exp(scratch[a] - top)
                        total += scratch[a]
                parent_visits = visits[b, n]  # = 1 + sum of edge visits
                for a in range(A):
                    if logits[b, n, a] == NEG_INF:
                        continue
                    c = children[b, n, a]
                    edge_visits = visits[b, c] if c >= 0 else 0
                    score = scratch[a] / total - edge_visits / parent_visits
                    if score > best:
                        best, best_a = score, a
            else:
                sqrt_n = math.sqrt(visits[b, n])
                for a in range(A):
                    if logits[b, n, a] == NEG_INF:
                        continue
                    c = children[b, n, a]
                    q = 0.0
                    edge_visits = 0
                    if c >= 0:
                        q = _edge_value(
                            children,
                            visits,
                            value_sum,
                            to_play,
                            child_reward,
                            solved,
                            solved_value,
                            b,
                            n,
                            a,
                        )[0]
                        edge_visits = visits[b, c]
                    score = q + c_puct * prior[b, n, a] * sqrt_n / (1 + edge_visits)
                    if score > best:
                        best, best_a = score, a
            c = children[b, n, best_a]
            if c < 0:
                out_node[b] = n
                out_action[b] = best_a
                break
            n = c


@numba.njit(inline="always")
def _update_solved(
    children,
    visits,
    value_sum,
    to_play,
    child_reward,
    solved,
    solved_value,
    logits,
    win_value,
    b,
    n,
):
    """Mark node n solved if an edge proves a win or all legal edges are proven."""
    best = NEG_INF
    all_proven = True
    for a in range(children.shape[2]):
        if logits[b, n, a] == NEG_INF:
            continue
        if children[b, n, a] < 0:
            all_proven = False
            continue
        q, proven = _edge_value(
            children, visits, value_sum, to_play, child_reward, solved, solved_value, b, n, a
        )
        if not proven:
            all_proven = False
        elif q >= win_value:
            solved[b, n] = True
            solved_value[b, n] = q
            return
        else:
            best = max(best, q)
    if all_proven and best != NEG_INF:
        solved[b, n] = True
        solved_value[b, n] = best


@numba.njit(cache=True, parallel=True)
def _expand_and_backup(
    children,
    visits,
    value_sum,
    raw_value,
    to_play,
    terminal,
    solved,
    solved_value,
    parent,
    parent_action,
    child_reward,
    logits,
    prior,
    num_nodes,
    node,
    action,
    new_reward,
    new_terminal,
    new_to_play,
    new_logits,
    new_value,
    win_value,
    out_new_node,
):
    """Add the child of (node, action) per row, then back its value up to the root."""
    A = children.shape[2]
    for b in prange(children.shape[0]):
        n = node[b]
        if action[b] >= 0:
            leaf = num_nodes[b]
            num_nodes[b] += 1
            children[b, n, action[b]] = leaf
            child_reward[b, n, action[b]] = new_reward[b]
            parent[b, leaf] = n
            parent_action[b, leaf] = action[b]
            to_play[b, leaf] = new_to_play[b]
            terminal[b, leaf] = new_terminal[b]
            if new_terminal[b]:
                solved[b, leaf] = True
                solved_value[b, leaf] = 0.0
                value = 0.0
            else:
                value = new_value[b]
                top = NEG_INF
                for a in range(A):
                    logits[b, leaf, a] = new_logits[b, a]
                    top = max(top, new_logits[b, a])
                total = 0.0
                for a in range(A):
                    p = np.exp(new_logits[b, a] - top) if new_logits[b, a] != NEG_INF else 0.0
                    prior[b, leaf, a] = p
                    total += p
                for a in range(A):
                    prior[b, leaf, a] /= total
            raw_value[b, leaf] = value
        else:
            leaf = n
            value = solved_value[b, leaf] if solved[b, leaf] else 0.0
        out_new_node[b] = leaf
        # Backup: the value of a node is for its own player to move.
        c = leaf
        visits[b, c] += 1
        value_sum[b, c] += value
        while parent[b, c] >= 0:
            p = parent[b, c]
            sign = 1.0 if to_play[b, c] == to_play[b, p] else -1.0
            value = child_reward[b, p, parent_action[b, c]] + sign * value
            if not solved[b, p]:
                _update_solved(
                    children,
                    visits,
                    value_sum,
                    to_play,
                    child_reward,
                    solved,
                    solved_value,
                    logits,
                    win_value,
                    b,
                    p,
                )
            if solved[b, p]:
                value = solved_value[b, p]
            visits[b, p] += 1
            value_sum[b, p] += value
            c = p


@numba.njit(cache=True, parallel=True)
def _gumbel_root_scores(
    children,
    visits,
    value_sum,
    raw_value,
    to_play,
    child_reward,
    solved,
    solved_value,
    logits,
    prior,
    gumbel,
    c_visit,
    c_scale,
    out_score,
    out_sigma_q,
):
    """Per row: ``out_sigma_q = sigma(completed q)`` at the root and
    ``out_score = max(g + logits - max logits + sigma(q), -1e9)`` (-inf where illegal)."""
    A = children.shape[2]
    for b in prange(children.shape[0]):
        _completed_sigma_q(
            children,
            visits,
            value_sum,
            raw_value,
            to_play,
            child_reward,
            solved,
            solved_value,
            logits,
            prior,
            b,
            0,
            c_visit,
            c_scale,
            out_sigma_q[b],
        )
        top = NEG_INF
        for a in range(A):
            top = max(top, logits[b, 0, a])
        for a in range(A):
            if logits[b, 0, a] == NEG_INF:
                out_score[b, a] = NEG_INF
            else:
                score = gumbel[b, a] + logits[b, 0, a] - top + out_sigma_q[b, a]
                out_score[b, a] = max(score, -1e9)
