"""The base class of a learning scenario: one discounted OCP with named, checked parameters.

A scenario subclass declares ``name``, ``reference`` (where in the papers it comes from),
``defaults`` (every parameter it accepts, with its default value) and implements
:meth:`build` (parameters → :class:`ocp.DiscountedOCP`) and :meth:`default_theta0`.
Register it in ``problems/__init__.py``.
"""
from __future__ import annotations

import math

import numpy as np

import ocp


class Scenario:
    """A named OCP with parameters. Attributes: ``problem``, ``params``, ``theta0``, ``reference``.

    ``paper_setting`` holds the keyword arguments of :func:`ocp.solve` (horizon, terminal)
    that reproduce the paper's figure, when there is one.
    """

    name: str = ""
    reference: str = ""
    defaults: dict = {}
    paper_setting: dict = {}

    def __init__(self, **params):
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise ocp.ProblemError(
                f"unknown parameter {unknown[0]!r} for {self.name}; valid: {', '.join(self.defaults)}")
        self.params = self.normalise({**self.defaults, **params})
        self.problem = self.build(self.params)
        self.theta0 = self.default_theta0()

    def normalise(self, params: dict) -> dict:
        """Check and convert raw parameter values (JSON-friendly values in, same keys out)."""
        return params

    def build(self, params: dict) -> ocp.DiscountedOCP:
        raise NotImplementedError

    def default_theta0(self) -> np.ndarray:
        raise NotImplementedError

    @property
    def dim(self) -> int:
        return self.problem.dim

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.params.items())})"


def scalar(name: str, value) -> float:
    """A finite real number, or a ProblemError naming the parameter (ranges are checked by ocp)."""
    if isinstance(value, bool):
        raise ocp.ProblemError(f"parameter {name!r} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ocp.ProblemError(f"parameter {name!r} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ocp.ProblemError(f"parameter {name!r} must be finite, got {value!r}")
    return number


def array(name: str, value, ndim: tuple = (0, 1, 2)) -> np.ndarray:
    """A finite float array with ndim in ``ndim``, or a ProblemError naming the parameter."""
    try:
        result = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ocp.ProblemError(f"parameter {name!r} must be a number or a (nested) list of numbers, "
                               f"got {value!r}") from None
    if result.ndim not in ndim:
        raise ocp.ProblemError(f"parameter {name!r} must have {' or '.join(map(str, ndim))} "
                               f"dimensions, got shape {result.shape}")
    if result.size == 0 or not np.all(np.isfinite(result)):
        raise ocp.ProblemError(f"parameter {name!r} must be non-empty and finite")
    return result
