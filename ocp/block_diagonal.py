"""Block-diagonal linear algebra: matrices whose coordinates split into uncoupled groups.

A separable loss (Σ_i ℓ_i(θ_i)) has a diagonal Hessian; with a diagonal metric and drift, every
matrix of its local models (the curvature, the LQ tail's Q, N, R, the Riccati solution P and
the feedback K) is block diagonal over the same groups. :func:`coupled_blocks` finds the groups
from the sparsity (connected components, scipy.sparse.csgraph); the operations below then work
block by block, the 1 × 1 blocks all at once, so a separable problem in D dimensions costs O(D)
instead of the O(D³) of one dense factorisation (at D = 1000 the dense Riccati solve of the LQ
tail took 646 s, benchmarks/bench_scaling.py). With one block they are the dense operations.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse
import scipy.sparse.csgraph


def _singles(blocks) -> np.ndarray:
    """The indices of the 1 × 1 blocks."""
    return np.array([block[0] for block in blocks if len(block) == 1], int)


def coupled_blocks(*matrices) -> list:
    """Index arrays of the connected components of the matrices' common sparsity pattern (i and
    j are coupled when any matrix has an entry at (i, j) or (j, i)), each sorted."""
    n = matrices[0].shape[0]
    pattern = np.zeros((n, n), bool)
    for matrix in matrices:
        pattern |= matrix != 0
    graph = scipy.sparse.csr_matrix(pattern)
    count, labels = scipy.sparse.csgraph.connected_components(graph, directed=False)
    if count == 1:
        return [np.arange(n)]
    order = np.argsort(labels, kind="stable")
    return np.split(order, np.flatnonzero(np.diff(labels[order])) + 1)


def block_solve(matrix, rhs, blocks):
    """matrix⁻¹ rhs for a block-diagonal ``matrix`` and ``rhs`` with the same ``blocks``
    (:func:`coupled_blocks`); the 1 × 1 blocks divided at once. LinAlgError for a singular block."""
    out = np.zeros_like(rhs, dtype=float)
    single = _singles(blocks)
    if np.any(matrix[single, single] == 0):
        raise np.linalg.LinAlgError("singular matrix")
    out[single, single] = rhs[single, single] / matrix[single, single]
    for block in (block for block in blocks if len(block) > 1):
        cut = np.ix_(block, block)
        out[cut] = np.linalg.solve(matrix[cut], rhs[cut])
    return out


def block_eigenvalues(matrix, blocks) -> np.ndarray:
    """The eigenvalues of a block-diagonal ``matrix`` (:func:`coupled_blocks`), block by block."""
    single = _singles(blocks)
    values = [matrix[single, single].astype(complex)]
    values += [np.linalg.eigvals(matrix[np.ix_(block, block)]) for block in blocks if len(block) > 1]
    return np.concatenate(values)


def block_product(left, right, blocks):
    """left @ right for block-diagonal matrices with the same ``blocks``."""
    out = np.zeros_like(left, dtype=float)
    single = _singles(blocks)
    out[single, single] = left[single, single] * right[single, single]
    for block in (block for block in blocks if len(block) > 1):
        cut = np.ix_(block, block)
        out[cut] = left[cut] @ right[cut]
    return out
