"""A loss evaluated outside CasADi: value, gradient and Hessian-vector products as numpy float64.

The OCP of Vastola et al. 2025 (Eq. 2; design notes §1) needs L only through L(θ), ∇L(θ) and
products ∇²L(θ)·v when it is solved matrix-free (:mod:`ocp.matrix_free`): no D × D Hessian is
ever formed, so a loss with thousands of parameters (a network's full-batch training loss,
``problems.torch_loss.TorchLoss``) can be posed as ``DiscountedOCP(dim, loss=ExternalLoss(...))``.

Every evaluation is checked (shape and finiteness; :class:`ocp.ProblemError` naming the loss)
and counted in :attr:`ExternalLoss.counts` (a batch over N points counts N), so benchmarks can
report the cost of a solve in gradient and HVP evaluations.
"""
from __future__ import annotations

import contextlib

import casadi
import numpy as np
import threadpoolctl

from .checks import count
from .errors import ProblemError


class ExternalLoss:
    """L: R^D → R given by callables on float64 arrays.

    dim       : D.
    value     : θ (D,) → float L(θ).
    gradient  : θ (D,) → ∇L(θ) (D,).
    hvp       : (θ (D,), v (D,)) → ∇²L(θ)·v (D,).
    gradients : optional batch version, θs (N, D) → (N, D); default loops over ``gradient``.
    hvps      : optional batch version, (θs (N, D), vs (N, D)) → (N, D); default loops over ``hvp``.
    values    : optional batch version, θs (N, D) → (N,); default loops over ``value``.
    name      : named in every error.
    krylov_hvps : optional batch HVPs of lower precision (e.g. float32, relative error ~1e-7) for
                the inner Krylov iterations of the matrix-free Newton solve only: an inexact
                Hessian changes how fast Newton converges, never where (the gradient and the
                checks stay float64). Default: ``hvps``.
    blas_threads : the threads numpy's BLAS may use while the engine works with this loss (None:
                unchanged). 1 for a loss that runs its own thread pool on the same cores (torch
                on the CPU): OpenBLAS's workers, spinning after each of the engine's vector
                operations, otherwise compete with the loss's threads (measured on a 2-core
                machine, digits MLP D = 5,410: the rest point's L-BFGS 3.1× slower).
    """

    def __init__(self, dim, value, gradient, hvp, gradients=None, hvps=None, name="external", values=None,
                 krylov_hvps=None, blas_threads=None):
        self.dim = count("dim", dim)
        self.blas_threads = None if blas_threads is None else count("blas_threads", blas_threads)
        self.name = str(name)
        for label, function in (("value", value), ("gradient", gradient), ("hvp", hvp),
                                ("gradients", gradients), ("hvps", hvps), ("values", values),
                                ("krylov_hvps", krylov_hvps)):
            if function is not None and not callable(function):
                raise ProblemError(f"loss {self.name!r}: {label} must be callable, "
                                   f"got {type(function).__name__}")
        self._value, self._gradient, self._hvp = value, gradient, hvp
        self._gradients, self._hvps, self._values = gradients, hvps, values
        self._krylov_hvps = krylov_hvps
        #: the smallest relative CG residual the Krylov HVPs support (the Newton forcing's floor)
        self.krylov_precision = 1e-14 if krylov_hvps is None else 1e-5
        self.counts = {"value": 0, "gradient": 0, "hvp": 0}
        self.memo = {}       # results that are functions of the loss alone (the rest point from θ0)

    # -- checked evaluations ---------------------------------------------------------------
    def value(self, theta) -> float:
        theta = self._point(theta, "theta")
        self.counts["value"] += 1
        out = np.asarray(self._value(theta), dtype=float)
        if out.size != 1:
            raise ProblemError(f"loss {self.name!r}: value must be a scalar, got shape {out.shape}")
        return float(self._finite(out.reshape(()), "value"))

    def gradient(self, theta) -> np.ndarray:
        theta = self._point(theta, "theta")
        self.counts["gradient"] += 1
        return self._vector(self._gradient(theta), "gradient")

    def hvp(self, theta, v) -> np.ndarray:
        theta, v = self._point(theta, "theta"), self._point(v, "v")
        self.counts["hvp"] += 1
        return self._vector(self._hvp(theta, v), "hvp")

    def values(self, thetas) -> np.ndarray:
        thetas = self._points(thetas, "thetas")
        if self._values is None:
            return np.array([self.value(theta) for theta in thetas])
        self.counts["value"] += len(thetas)
        out = np.asarray(self._values(thetas), dtype=float).reshape(-1)
        if out.shape != (len(thetas),):
            raise ProblemError(f"loss {self.name!r}: values must return shape ({len(thetas)},), "
                               f"got {out.shape}")
        return self._finite(out, "values")

    def gradients(self, thetas) -> np.ndarray:
        thetas = self._points(thetas, "thetas")
        self.counts["gradient"] += len(thetas)
        if self._gradients is None:
            out = np.stack([np.asarray(self._gradient(theta), dtype=float).reshape(-1) for theta in thetas])
        else:
            out = np.asarray(self._gradients(thetas), dtype=float)
        return self._batch(out, len(thetas), "gradients")

    def hvps(self, thetas, vs, krylov=False) -> np.ndarray:
        """∇²L(θ_n)·v_n for every row; ``krylov``: the lower-precision ``krylov_hvps`` where given."""
        thetas, vs = self._points(thetas, "thetas"), self._points(vs, "vs")
        if vs.shape != thetas.shape:
            raise ProblemError(f"loss {self.name!r}: hvps needs vs of the shape of thetas {thetas.shape}, "
                               f"got {vs.shape}")
        self.counts["hvp"] += len(thetas)
        if krylov and self._krylov_hvps is not None:
            out = np.asarray(self._krylov_hvps(thetas, vs), dtype=float)
        elif self._hvps is None:
            out = np.stack([np.asarray(self._hvp(theta, v), dtype=float).reshape(-1)
                            for theta, v in zip(thetas, vs, strict=True)])
        else:
            out = np.asarray(self._hvps(thetas, vs), dtype=float)
        return self._batch(out, len(thetas), "hvps")

    def thread_limits(self):
        """A context in which numpy's BLAS uses at most ``blas_threads`` threads (threadpoolctl);
        nothing is changed when ``blas_threads`` is None."""
        if self.blas_threads is None:
            return contextlib.nullcontext()
        return threadpoolctl.threadpool_limits(limits=self.blas_threads, user_api="blas")

    def reset_counts(self) -> None:
        self.counts = {"value": 0, "gradient": 0, "hvp": 0}

    # -- construction from a CasADi-written problem --------------------------------------------
    @classmethod
    def from_casadi(cls, problem, name=None) -> ExternalLoss:
        """The loss of a CasADi-written :class:`ocp.DiscountedOCP` as an ExternalLoss: L, ∇L and
        ∇²L·v compiled as CasADi Functions (the HVP by ``jtimes`` of the gradient, never the
        Hessian), batches by ``Function.map``. Used to compare the matrix-free path with the
        collocation path on one loss."""
        if isinstance(problem.loss, ExternalLoss):
            return problem.loss
        theta, v = casadi.SX.sym("theta", problem.dim), casadi.SX.sym("v", problem.dim)
        P = casadi.SX.sym("P", problem.layout.size)
        loss = problem.loss_value(theta, problem.layout.unpack(P))
        grad = casadi.gradient(loss, theta)
        params = casadi.DM(problem.parameter_values())
        functions = {"value": casadi.Function("L", [theta, P], [loss]),
                     "gradient": casadi.Function("dL", [theta, P], [grad]),
                     "hvp": casadi.Function("d2Lv", [theta, v, P], [casadi.jtimes(grad, theta, v)])}
        maps = {}

        def mapped(key, n):
            if (key, n) not in maps:
                maps[(key, n)] = functions[key].map(n)
            return maps[(key, n)]

        def value(th):
            return float(functions["value"](th, params))

        def gradient(th):
            return np.asarray(functions["gradient"](th, params)).ravel()

        def hvp(th, vec):
            return np.asarray(functions["hvp"](th, vec, params)).ravel()

        def values(ths):
            return np.asarray(mapped("value", len(ths))(ths.T, casadi.repmat(params, 1, len(ths)))).ravel()

        def gradients(ths):
            return np.asarray(mapped("gradient", len(ths))(ths.T, casadi.repmat(params, 1, len(ths)))).T

        def hvps(ths, vecs):
            return np.asarray(mapped("hvp", len(ths))(ths.T, vecs.T, casadi.repmat(params, 1, len(ths)))).T

        return cls(problem.dim, value, gradient, hvp, gradients, hvps, name=name or problem.name,
                   values=values)

    # -- checks ------------------------------------------------------------------------------
    def _point(self, theta, label) -> np.ndarray:
        try:
            theta = np.asarray(theta, dtype=float)
        except (TypeError, ValueError):
            raise ProblemError(f"loss {self.name!r}: {label} must be a vector of numbers") from None
        if theta.shape != (self.dim,):
            raise ProblemError(f"loss {self.name!r}: {label} must have shape ({self.dim},), "
                               f"got {theta.shape}")
        return theta

    def _points(self, thetas, label) -> np.ndarray:
        thetas = np.asarray(thetas, dtype=float)
        if thetas.ndim != 2 or thetas.shape[1] != self.dim:
            raise ProblemError(f"loss {self.name!r}: {label} must have shape (N, {self.dim}), "
                               f"got {thetas.shape}")
        return thetas

    def _vector(self, out, label) -> np.ndarray:
        out = np.asarray(out, dtype=float)
        if out.shape != (self.dim,):
            raise ProblemError(f"loss {self.name!r}: {label} must return shape ({self.dim},), "
                               f"got {out.shape}")
        return self._finite(out, label)

    def _batch(self, out, n, label) -> np.ndarray:
        if out.shape != (n, self.dim):
            raise ProblemError(f"loss {self.name!r}: {label} must return shape ({n}, {self.dim}), "
                               f"got {out.shape}")
        return self._finite(out, label)

    def _finite(self, out, label):
        if not np.all(np.isfinite(out)):
            raise ProblemError(f"loss {self.name!r}: {label} is not finite (NaN or inf)")
        return out

    def __repr__(self):
        return f"ExternalLoss(name={self.name!r}, dim={self.dim})"
