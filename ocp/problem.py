"""The discounted optimal control problem of learning (Vastola et al. 2025, Eq. 2 and App. C).

    J[θ] = ∫_0^H e^{−γt} [ (1/2η)(θ̇ − f(θ))ᵀ G(θ) (θ̇ − f(θ)) + k·L(θ) ] dt,   θ(0) = θ0

The transcription only needs a *running cost* ℓ(t, x, ẋ; p) split into a kinetic and a
potential part, a state dimension and a parameter layout. :class:`DiscountedOCP` builds
them from a loss, a metric and a drift. Scenarios with extra state (beliefs with their
own dynamics and costs) subclass it and override ``state_dim``, ``state_names`` and
``running_cost``; the transcription, the solve and the verification are unchanged.

Writing a loss
--------------
``loss(theta, **constants)`` receives θ as a CasADi column vector (``theta[0]`` … ,
``theta.T @ H @ theta``) and the problem constants as CasADi symbols of their shapes.
Use arithmetic and CasADi's functions (``casadi.exp``, ``casadi.log``, ``casadi.sin``,
``casadi.sqrt``, ``casadi.tanh``, ``casadi.sumsqr``…); numpy ufuncs such as ``np.exp``
also dispatch to them. Python branching on θ (``if theta[0] > 0``) cannot work on symbols:
use ``casadi.if_else`` or a smooth formula.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import casadi
import numpy as np

from .checks import count, number
from .errors import ProblemError
from .external_loss import ExternalLoss


@dataclass(frozen=True)
class ParameterLayout:
    """Names and shapes of the NLP parameter vector; shared by all solves of one structure."""

    shapes: tuple  # ((name, (rows, cols)), ...)

    @property
    def size(self) -> int:
        return sum(r * c for _, (r, c) in self.shapes)

    def slice(self, name: str) -> slice:
        """Where the entries of ``name`` lie in the vector (KeyError for an unknown name)."""
        offset = 0
        for key, (rows, cols) in self.shapes:
            if key == name:
                return slice(offset, offset + rows * cols)
            offset += rows * cols
        raise KeyError(name)

    def unpack(self, vector) -> dict:
        """Split a parameter vector (numeric or symbolic) into named matrices (column-major)."""
        out, offset = {}, 0
        for name, (rows, cols) in self.shapes:
            n = rows * cols
            out[name] = casadi.reshape(vector[offset:offset + n], rows, cols)
            offset += n
        return out

    def read(self, vector, name: str):
        """The entries of ``name`` in a numeric vector: a float for a scalar, else an array
        of its (rows, cols) shape (column-major, as :meth:`pack` writes it)."""
        rows, cols = dict(self.shapes)[name]
        values = np.asarray(vector, dtype=float)[self.slice(name)]
        if rows * cols == 1:
            return float(values[0])
        return values.reshape((rows, cols), order="F") if cols > 1 else values

    def pack(self, values: Mapping[str, np.ndarray]) -> np.ndarray:
        parts = []
        for name, (rows, cols) in self.shapes:
            value = np.asarray(values[name], dtype=float).reshape(rows, cols)
            parts.append(value.flatten(order="F"))
        return np.concatenate(parts) if parts else np.zeros(0)


def _as_matrix_shape(value: np.ndarray) -> tuple:
    value = np.asarray(value, dtype=float)
    if value.ndim == 0:
        return (1, 1)
    if value.ndim == 1:
        return (value.shape[0], 1)
    if value.ndim == 2:
        return value.shape
    raise ProblemError(f"constants must be scalars, vectors or matrices, got shape {value.shape}")


def check_spd(matrix, dim: int, name: str = "metric") -> np.ndarray:
    """Return ``matrix`` as a (dim, dim) array after checking it is symmetric positive definite."""
    matrix = np.asarray(matrix, dtype=float)
    if matrix.shape != (dim, dim):
        raise ProblemError(f"{name} must have shape ({dim}, {dim}), got {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise ProblemError(f"{name} has non-finite entries")
    if not np.allclose(matrix, matrix.T, rtol=1e-10, atol=1e-12 * np.abs(matrix).max()):
        raise ProblemError(f"{name} must be symmetric")
    smallest = np.linalg.eigvalsh(matrix).min()
    if smallest <= 0:
        raise ProblemError(f"{name} must be positive definite (smallest eigenvalue {smallest:.3g})")
    return matrix


def _check_rate(name: str, value, allow_zero: bool) -> float:
    return number(name, value, positive=not allow_zero, non_negative=allow_zero)


@dataclass
class _Structure:
    """What a transcription is built from; shared by problems that differ only in values."""

    layout: ParameterLayout
    cache: dict = field(default_factory=dict)


class DiscountedOCP:
    """A discounted learning OCP: loss L, metric G, drift f, rates γ, η, k.

    Parameters
    ----------
    dim : int             number of parameters θ.
    loss : callable       ``loss(theta, **constants)`` → scalar (see module docstring), or an
        :class:`ocp.ExternalLoss` (a loss evaluated outside CasADi, e.g. a torch network's): then
        the drift must be None and the metric None or constant (a 1-D metric, its diagonal, is
        kept as a vector: no D × D matrix), and the problem is solved matrix-free
        (:mod:`ocp.matrix_free`).
    gamma, eta, k : float discount rate γ ≥ 0, step-cost scale η > 0, loss weight k ≥ 0.
    metric : None, array or callable
        G: ``None`` (identity), a constant SPD matrix (or a 1-D array, its diagonal), or
        ``metric(theta, **constants)`` → (dim, dim) matrix.
    drift : None or callable  ``drift(theta, **constants)`` → vector f(θ) of length dim.
    constants : mapping       named numeric arrays passed to loss/metric/drift as CasADi
        symbols; they are NLP parameters, so :meth:`replace` with new values re-solves
        without rebuilding.
    """

    def __init__(self, dim, loss, gamma=0.0, eta=1.0, k=1.0, metric=None, drift=None,
                 constants=None, name="problem"):
        dim = count("dim", dim)
        if isinstance(loss, ExternalLoss):
            self._init_external(dim, loss, gamma, eta, k, metric, drift, constants, name)
            return
        if not callable(loss):
            raise ProblemError("loss must be callable: loss(theta, **constants) -> scalar")
        if drift is not None and not callable(drift):
            raise ProblemError("drift must be None or callable: drift(theta, **constants) -> vector")
        self.dim = int(dim)
        self.name = name
        self.loss, self.drift = loss, drift
        self.gamma = _check_rate("gamma", gamma, allow_zero=True)
        self.eta = _check_rate("eta", eta, allow_zero=False)
        self.k = _check_rate("k", k, allow_zero=True)
        self.constants = {key: np.asarray(value, dtype=float)
                          for key, value in dict(constants or {}).items()}
        for key, value in self.constants.items():
            if not np.all(np.isfinite(value)):
                raise ProblemError(f"constant {key!r} has non-finite entries")
        self.metric_function = metric if callable(metric) else None
        self.metric = None if callable(metric) or metric is None else self._constant_metric(metric)
        shapes = [("gamma", (1, 1)), ("eta", (1, 1)), ("k", (1, 1)), ("t0", (1, 1))]
        if self.metric is not None:
            shapes.append(("G", (self.dim, self.dim)))
        shapes += [(key, _as_matrix_shape(value)) for key, value in self.constants.items()]
        self._structure = _Structure(ParameterLayout(tuple(shapes)))
        self._check_symbolic()

    def _init_external(self, dim, loss, gamma, eta, k, metric, drift, constants, name):
        """The problem of an :class:`ocp.ExternalLoss`: f = 0, G constant (no CasADi symbols)."""
        if loss.dim != dim:
            raise ProblemError(f"loss {loss.name!r} has dim {loss.dim}, the problem dim {dim}")
        if drift is not None:
            raise ProblemError(f"loss {loss.name!r} is an ExternalLoss: the matrix-free solver needs "
                               "f = 0 (no drift)")
        if callable(metric):
            raise ProblemError(f"loss {loss.name!r} is an ExternalLoss: the metric must be None or a "
                               "constant SPD matrix (or its diagonal), not a function of theta")
        if constants:
            raise ProblemError(f"loss {loss.name!r} is an ExternalLoss: constants are CasADi symbols; "
                               "close over them in the loss's own functions instead")
        self.dim, self.name, self.loss, self.drift = int(dim), name, loss, None
        self.gamma = _check_rate("gamma", gamma, allow_zero=True)
        self.eta = _check_rate("eta", eta, allow_zero=False)
        self.k = _check_rate("k", k, allow_zero=True)
        self.constants, self.metric_function = {}, None
        self.metric = None if metric is None else self._external_metric(metric)
        self._structure = _Structure(ParameterLayout((("gamma", (1, 1)), ("eta", (1, 1)), ("k", (1, 1)),
                                                      ("t0", (1, 1)))))

    def _external_metric(self, metric) -> np.ndarray:
        metric = np.asarray(metric, dtype=float)
        if metric.ndim == 1:
            if metric.shape != (self.dim,) or not np.all(np.isfinite(metric)) or not np.all(metric > 0):
                raise ProblemError(f"a diagonal metric must be {self.dim} finite positive numbers")
            return metric
        return check_spd(metric, self.dim)

    @property
    def external(self) -> bool:
        """True when the loss is an :class:`ocp.ExternalLoss` (solved matrix-free only)."""
        return isinstance(self.loss, ExternalLoss)

    # -- structure -----------------------------------------------------------------
    @property
    def state_dim(self) -> int:
        """Dimension of the transcribed state (θ plus any extra state of a subclass)."""
        return self.dim

    @property
    def state_names(self) -> list:
        return [f"theta[{i}]" for i in range(self.dim)]

    @property
    def layout(self) -> ParameterLayout:
        return self._structure.layout

    def parameter_values(self, t0: float = 0.0) -> np.ndarray:
        values = {"gamma": self.gamma, "eta": self.eta, "k": self.k, "t0": t0, **self.constants}
        if self.metric is not None:
            values["G"] = self.metric
        return self.layout.pack(values)

    def replace(self, **changes) -> "DiscountedOCP":
        """A copy with new γ, η, k, metric values or constants; shares the built transcriptions."""
        import copy
        new = copy.copy(self)
        constants = dict(self.constants)
        for key, value in changes.items():
            if key in ("gamma", "eta", "k"):
                setattr(new, key, _check_rate(key, value, allow_zero=(key != "eta")))
            elif key == "metric":
                if self.external:
                    new.metric = None if value is None else self._external_metric(value)
                    continue
                if self.metric is None:
                    raise ProblemError(
                        "metric can be replaced only on a problem built with a constant metric")
                new.metric = self._constant_metric(value)
            elif key in constants:
                value = np.asarray(value, dtype=float)
                if _as_matrix_shape(value) != _as_matrix_shape(constants[key]):
                    raise ProblemError(f"constant {key!r} must keep shape {constants[key].shape}")
                if not np.all(np.isfinite(value)):
                    raise ProblemError(f"constant {key!r} has non-finite entries")
                constants[key] = value
            else:
                valid = ["gamma", "eta", "k", "metric", *constants]
                raise ProblemError(f"unknown parameter {key!r}; valid: {', '.join(valid)}")
        new.constants = constants
        return new

    # -- symbolic pieces ---------------------------------------------------------
    def metric_matrix(self, theta, params):
        if self.metric_function is not None:
            return casadi.SX(self.metric_function(theta, **self._constant_symbols(params)))
        if self.metric is not None:
            return params["G"]
        return casadi.SX.eye(self.dim)

    def drift_vector(self, theta, params):
        if self.drift is None:
            return casadi.SX.zeros(self.dim, 1)
        return casadi.SX(self.drift(theta, **self._constant_symbols(params)))

    def loss_value(self, theta, params, t=None):
        if self.external:
            raise ProblemError(f"loss {self.loss.name!r} is an ExternalLoss, evaluated outside CasADi: "
                               "solve it with solver='matrix_free' (or 'auto')")
        return casadi.SX(self.loss(theta, **self._constant_symbols(params)))

    def running_cost(self, t, x, xdot, params):
        """(kinetic, potential) at time t, undiscounted: (1/2η)(ẋ−f)ᵀG(ẋ−f) and k·L(x)."""
        deviation = xdot - self.drift_vector(x, params)
        kinetic = casadi.dot(deviation, casadi.mtimes(self.metric_matrix(x, params), deviation))
        kinetic = kinetic / (2 * params["eta"])
        return kinetic, params["k"] * self.loss_value(x, params, t)

    def _constant_symbols(self, params) -> dict:
        return {key: params[key] for key in self.constants}

    # -- validation ----------------------------------------------------------------
    def _constant_metric(self, metric) -> np.ndarray:
        metric = np.asarray(metric, dtype=float)
        if metric.ndim == 1 and metric.shape == (self.dim,):
            metric = np.diag(metric)
        return check_spd(metric, self.dim)

    def _check_symbolic(self) -> None:
        """Evaluate every user callable once on symbols: shape and differentiability errors here."""
        theta = casadi.SX.sym("theta", self.dim)
        params = self.layout.unpack(casadi.SX.sym("p", self.layout.size))
        pieces = {"loss": (self.loss_value, (1, 1))}
        if self.drift is not None:
            pieces["drift"] = (self.drift_vector, (self.dim, 1))
        if self.metric_function is not None:
            pieces["metric"] = (self.metric_matrix, (self.dim, self.dim))
        for name, (build, shape) in pieces.items():
            try:
                value = build(theta, params)
            except Exception as exc:  # user code failing on symbols: say how to fix it
                raise ProblemError(
                    f"{name} could not be evaluated on CasADi symbols ({type(exc).__name__}: {exc}); "
                    "write it with arithmetic and casadi functions (casadi.exp, casadi.log, ...)"
                ) from exc
            if value.shape != shape:
                raise ProblemError(f"{name} must have shape {shape}, got {value.shape}")
            if value.is_constant() and not np.all(np.isfinite(np.asarray(casadi.DM(value)))):
                # float(symbol) and math.exp(symbol) silently give nan in CasADi
                raise ProblemError(
                    f"{name} evaluates to a non-finite constant on CasADi symbols; math.* functions "
                    "and float() do not work on symbols: use casadi.exp, casadi.log, ...")
            try:
                casadi.jacobian(value, theta)
            except Exception as exc:
                raise ProblemError(f"{name} cannot be differentiated by CasADi: {exc}") from exc

    def check_initial_state(self, theta0) -> np.ndarray:
        """θ0 as a float array of the state dimension, or a ProblemError."""
        try:
            theta0 = np.asarray(theta0, dtype=float).reshape(-1)
        except (TypeError, ValueError):
            raise ProblemError(f"theta0 must be a vector of {self.state_dim} numbers") from None
        if theta0.shape != (self.state_dim,):
            raise ProblemError(f"theta0 must have length {self.state_dim}, got {theta0.shape[0]}")
        if not np.all(np.isfinite(theta0)):
            raise ProblemError("theta0 must be finite")
        return theta0

    def __repr__(self):
        return (f"{type(self).__name__}(name={self.name!r}, dim={self.dim}, gamma={self.gamma}, "
                f"eta={self.eta}, k={self.k})")
