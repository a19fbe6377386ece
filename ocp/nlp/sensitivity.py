"""Parametric sensitivity of a solved collocation NLP: its KKT matrix and d(V, λ)/dp.

At a solution, ∇f + Aᵀλ = 0 and g(V, p) = 0. Differentiating along a parameter direction
dp gives K [dV; dλ] = −[∂_p(∇f + Aᵀλ)·dp; ∂_p g·dp] with the KKT matrix
K = [[∇²L, Aᵀ], [A, 0]] (Fiacco 1976; Biegler 2010, Sec. 6.2). The policy uses it for the
exact Jacobian of π and for ∂π/∂t. Only for transcriptions whose constraints are linear
(no trust region): then ∇²L = σ∇²f is the Hessian the NLP already evaluates.
"""
from __future__ import annotations

import casadi
import numpy as np
import scipy.sparse
import scipy.sparse.linalg

from ..errors import ProblemError
from .constraint_matrix import scipy_sparse


def kkt_matrix(tr, raw) -> scipy.sparse.csc_matrix:
    """The KKT matrix [[∇²L, Aᵀ], [A, 0]] of transcription ``tr`` at the solution ``raw``."""
    if tr.trust_region:
        raise ProblemError("sensitivities need linear constraints (a transcription without trust region)")
    H = scipy_sparse(tr.hessian_function(raw["x"], raw["p"]))
    H = H + scipy.sparse.triu(H, 1).T
    A = scipy_sparse(tr.jacobian_function(raw["p"]))
    return scipy.sparse.bmat([[H, A.T], [A, None]], format="csc")


def parameter_sensitivity(tr, raw, dp, lu=None) -> np.ndarray:
    """d(V, lam_g)/dp · dp at the solution ``raw``. ``lu``: a factorisation of
    :func:`kkt_matrix` with a ``solve`` method (scipy's splu), reused across calls."""
    rhs_function = tr.cache.get("sensitivity_rhs")
    if rhs_function is None:   # built on first use: forward derivatives along dp
        V = casadi.MX.sym("V", tr.n_var)
        p = casadi.MX.sym("p", len(raw["p"]))
        lam = casadi.MX.sym("lam", tr.n_g)
        dp_sym = casadi.MX.sym("dp", len(raw["p"]))
        stationarity = tr.gradient_function(V, p) + casadi.mtimes(tr.jacobian_function(p).T, lam)
        constraints = tr.constraint_function(V, p)
        rhs_function = casadi.Function(
            "sensitivity_rhs", [V, p, lam, dp_sym],
            [casadi.vertcat(casadi.jtimes(stationarity, p, dp_sym), casadi.jtimes(constraints, p, dp_sym))])
        tr.cache["sensitivity_rhs"] = rhs_function
    rhs = -np.asarray(rhs_function(raw["x"], raw["p"], raw["lam_g"], dp)).ravel()
    lu = lu or scipy.sparse.linalg.splu(kkt_matrix(tr, raw))
    return lu.solve(rhs)
