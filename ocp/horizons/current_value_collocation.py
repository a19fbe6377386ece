"""Gauss–Legendre collocation of the current-value optimality conditions, and Newton's method on it.

The DAE ẋ = u, q̇ = γq + ℓ_x(x, u), q = ℓ_u(x, u) (``ocp.current_value``) on N elements of
degree d: per element the unknowns w = [vec X, vec Q, vec U] (X, Q: n × (d + 1) at τ = 0 and
the d Legendre points; U: n × d at the points), per collocation point τ_j the rows

    Σ_i D_ij x_i − h u_j,    Σ_i D_ij q_i − h(γ q_j + ℓ_x(x_j, u_j)),    q_j − ℓ_u(x_j, u_j),

(D the differentiation matrix of ``ocp.collocation``, h the element width), then x and q
continuous across element ends, x(t1) = x1 and q(T) = q* − P(x(T) − x*). One CasADi element
function gives the element rows and the nonzeros of their exact Jacobian, mapped over the
elements in one call; the linear rows are assembled in numpy.
"""
from __future__ import annotations

import casadi
import numpy as np
import scipy.sparse
import scipy.sparse.linalg

from ..nlp.collocation import element_scheme
from .rest_point import cost_gradients

NEWTON_STEPS, NEWTON_TOLERANCE = 60, 1e-13


def element_function(problem, degree):
    """One element's residuals (3dn) and the nonzeros of their Jacobian in w = [vec X, vec Q,
    vec U] (X, Q: n × (d + 1) at τ = 0 and the collocation points; U: n × d); built once per
    problem structure and degree."""
    key = ("current_value_element", degree)
    cache = problem._structure.cache
    if key not in cache:
        n, scheme = problem.state_dim, element_scheme("legendre", degree)
        w = casadi.SX.sym("w", n * (3 * degree + 2))
        X = casadi.reshape(w[:n * (degree + 1)], n, degree + 1)
        Q = casadi.reshape(w[n * (degree + 1):2 * n * (degree + 1)], n, degree + 1)
        U = casadi.reshape(w[2 * n * (degree + 1):], n, degree)
        h, P = casadi.SX.sym("h"), casadi.SX.sym("P", problem.layout.size)
        gradients = cost_gradients(problem)
        gamma = problem.layout.unpack(P)["gamma"]
        D = casadi.DM(scheme.derivative)
        residuals = []
        for j in range(degree):
            l_x, l_u = gradients(X[:, j + 1], U[:, j], P)
            residuals += [casadi.mtimes(X, D[:, j]) - h * U[:, j],
                          casadi.mtimes(Q, D[:, j]) - h * (gamma * Q[:, j + 1] + l_x),
                          Q[:, j + 1] - l_u]
        residual = casadi.vertcat(*residuals)
        jacobian = casadi.jacobian(residual, w)
        rows, cols = jacobian.sparsity().get_triplet()
        function = casadi.Function("current_value_element", [w, h, P],
                                   [residual, casadi.vertcat(*jacobian.nonzeros())])
        cache[key] = (function, np.asarray(rows), np.asarray(cols))
    return cache[key]


class System:
    """F(z) = 0 on N elements and its sparse Jacobian, z = [w_0, …, w_{N−1}] (``_element``).

    Rows: the elements' residuals, then x and q continuous across element ends, x(t1) = x1
    and the end condition q(T) = q* − P(x(T) − x*). The element Jacobians come from one
    mapped CasADi call; the linear rows are constant and assembled once."""

    def __init__(self, problem, elements, degree):
        n, d, N = problem.state_dim, degree, elements
        self.n, self.d, self.N, self.m = n, d, N, n * (3 * d + 2)
        function, rows, cols = element_function(problem, d)
        self.map = function.map(N)
        r = 3 * d * n
        self.rows = (rows[None, :] + r * np.arange(N)[:, None]).ravel()
        self.cols = (cols[None, :] + self.m * np.arange(N)[:, None]).ravel()
        self.continuity = element_scheme("legendre", d).continuity
        self.size = N * self.m

    def _x(self, e, j):
        """Indices in z of x at node j of element e (q: add n(d + 1))."""
        return e * self.m + j * self.n + np.arange(self.n)

    def evaluate(self, z, x1, x_star, q_star, riccati, widths, params):
        n, d, N, m, c = self.n, self.d, self.N, self.m, self.continuity
        W = z.reshape(N, m)
        residual, nonzeros = self.map(W.T, widths[None, :], np.tile(params[:, None], (1, N)))
        values = [np.asarray(nonzeros).T.ravel()]
        rows, cols = [self.rows], [self.cols]
        X = W[:, :n * (d + 1)].reshape(N, d + 1, n)
        Q = W[:, n * (d + 1):2 * n * (d + 1)].reshape(N, d + 1, n)
        x_end, q_end = np.einsum("j,ejn->en", c, X), np.einsum("j,ejn->en", c, Q)
        pieces = [np.asarray(residual).T.ravel(), (X[1:, 0] - x_end[:-1]).ravel(),
                  (Q[1:, 0] - q_end[:-1]).ravel(), X[0, 0] - x1,
                  q_end[-1] - (q_star - riccati @ (x_end[-1] - x_star))]
        row = 3 * d * n * N
        q_shift = n * (d + 1)
        for shift in (0, q_shift):                      # continuity of x, then of q
            for e in range(N - 1):
                block = np.arange(n) + row
                rows += [block] + [block] * (d + 1)
                cols += [self._x(e + 1, 0) + shift] + [self._x(e, j) + shift for j in range(d + 1)]
                values += [np.ones(n)] + [np.full(n, -c[j]) for j in range(d + 1)]
                row += n
        block = np.arange(n) + row
        rows.append(block), cols.append(self._x(0, 0)), values.append(np.ones(n))
        row += n
        coupled_rows, coupled_cols = np.nonzero(riccati)     # P's own pattern (diagonal when separable)
        for j in range(d + 1):                          # q_end + P x_end
            rows += [np.arange(n) + row] + [coupled_rows + row]
            cols += [self._x(N - 1, j) + q_shift] + [self._x(N - 1, j)[coupled_cols]]
            values += [np.full(n, c[j])] + [c[j] * riccati[coupled_rows, coupled_cols]]
        entries = (np.concatenate(values), (np.concatenate(rows), np.concatenate(cols)))
        jacobian = scipy.sparse.csc_matrix(entries, shape=(self.size, self.size))
        return np.concatenate(pieces), jacobian

    def states(self, z):
        """X (N, d + 1, n) of a solution."""
        return z.reshape(self.N, self.m)[:, :self.n * (self.d + 1)].reshape(self.N, self.d + 1, self.n)


def system(problem, elements, degree):
    key = ("current_value_system", degree, elements)
    cache = problem._structure.cache
    if key not in cache:
        cache[key] = System(problem, elements, degree)
    return cache[key]


def newton(system, z, fixed, deadline):
    """Damped Newton on F(z) = 0; (z, iterations) or None when it does not converge."""
    F, J = system.evaluate(z, *fixed)
    norm = np.linalg.norm(F)     # the 2-norm: the Newton direction descends ½|F|² (a max-norm merit stalls)
    for iteration in range(1, NEWTON_STEPS + 1):
        deadline.check("the current-value bridge", iteration)
        try:
            step = scipy.sparse.linalg.splu(J).solve(F)
        except RuntimeError:       # singular Jacobian
            return None
        if not np.all(np.isfinite(step)):
            return None
        alpha = 1.0
        while True:
            trial = z - alpha * step
            F_trial, J_trial = system.evaluate(trial, *fixed)
            norm_trial = np.linalg.norm(F_trial) if np.all(np.isfinite(F_trial)) else np.inf
            if norm_trial <= (1 - 1e-4 * alpha) * norm or norm_trial <= NEWTON_TOLERANCE:
                break
            alpha *= 0.5
            if alpha < 1e-6:
                return None
        z, F, J, norm = trial, F_trial, J_trial, norm_trial
        if np.abs(alpha * step).max() <= NEWTON_TOLERANCE * (1 + np.abs(z).max()):
            return z, iteration
    return None
