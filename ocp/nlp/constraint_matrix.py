"""The linear constraints of the collocation NLP: collocation, continuity, θ(0), θ(T).

Per element e (d collocation points, node 0 at its start), in units of the state:

    collocation   Σ_k D[k,i] X_e,k − h · t'(s_ei) · U_e,i = 0
    continuity    X_{e+1,0} − Σ_k c[k] X_e,k = 0

(Biegler, *Nonlinear Programming*, SIAM 2010, Sec. 10.2). The Jacobian A(p) has constant
entries except −h·t'(s) in the U columns, which depend on the map's scale and s_end (NLP
parameters): A(p).data = constant.data − S·(h t'(s) per point) with a fixed selector S.
Pure numpy/scipy: no CasADi graph is built here.
"""
from __future__ import annotations

import casadi
import numpy as np
import scipy.sparse


def constraint_structure(schemes, n, block, n_var, rows_per_kind, terminal):
    """(A, S): the constant CSC entries of the constraint Jacobian (the U columns hold 0) and
    the selector S with A(p).data = A.data − S · (h t'(s) at each collocation point).

    schemes       : the ElementScheme of each element; n: state dimension; block: variables
                    per element, n(2d + 1); n_var: all variables; rows_per_kind: row counts
                    (collocation and continuity, θ(0), θ(T)); terminal: whether θ(T) is fixed.
    """
    N, d = len(schemes), schemes[0].degree
    n_g = sum(rows_per_kind)
    rows, cols, vals, point = [], [], [], []
    eye = np.arange(n)

    def add(r, c, v, pt=-1):
        rows.append(r)
        cols.append(c)
        vals.append(np.broadcast_to(np.asarray(v, float), r.shape))
        point.append(np.full(r.shape, pt))

    for e, scheme in enumerate(schemes):
        row0, start = e * n * (d + 1), e * block
        for i in range(d):                     # collocation: Σ_k D[k,i] X_k − h t' U_i
            for k in range(d + 1):
                add(row0 + i * n + eye, start + k * n + eye, scheme.derivative[k, i])
            add(row0 + i * n + eye, start + n * (d + 1) + i * n + eye, 0.0, e * d + i)
        for k in range(d + 1):                 # continuity: X_{e+1,0} − Σ_k c_k X_e,k
            add(row0 + d * n + eye, start + k * n + eye, -scheme.continuity[k])
        add(row0 + d * n + eye, (e + 1) * block + eye, 1.0)
    add(rows_per_kind[0] + eye, eye, 1.0)      # θ(0)
    if terminal:                               # θ(H)
        add(rows_per_kind[0] + n + eye, N * block + eye, 1.0)
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    vals, point = np.concatenate(vals), np.concatenate(point)
    order = np.lexsort((rows, cols))           # CSC order: by column, then row
    rows, cols, vals, point = rows[order], cols[order], vals[order], point[order]
    A = scipy.sparse.csc_matrix((vals, rows, np.searchsorted(cols, np.arange(n_var + 1))),
                                shape=(n_g, n_var))
    on_u = np.nonzero(point >= 0)[0]
    selector = scipy.sparse.csc_matrix((np.ones(len(on_u)), (on_u, point[on_u])),
                                       shape=(len(vals), N * d))
    return A, selector


def casadi_sparse(matrix) -> casadi.DM:
    """A scipy sparse matrix as a CasADi DM with the same sparsity."""
    matrix = scipy.sparse.csc_matrix(matrix)
    matrix.sort_indices()
    rows, cols = matrix.shape
    sparsity = casadi.Sparsity(rows, cols, matrix.indptr.tolist(), matrix.indices.tolist())
    return casadi.DM(sparsity, matrix.data)


def scipy_sparse(matrix) -> scipy.sparse.csc_matrix:
    """A CasADi DM as a scipy CSC matrix with the same sparsity."""
    sparsity = matrix.sparsity()
    return scipy.sparse.csc_matrix((np.asarray(matrix.nonzeros()), sparsity.row(), sparsity.colind()),
                                   shape=matrix.shape)
