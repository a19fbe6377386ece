"""The base class of a learning scenario: one discounted OCP with named, checked parameters.

A scenario subclass declares

* ``name``, ``reference`` (appendix, equation, figure of the paper it comes from),
* ``defaults``: every parameter it accepts with its default (the paper's values),
* ``ranges``: for each parameter, its valid domain and the range random validation draws
  come from, as text (shown by ``lossnav problems``),

and implements :meth:`build` (parameters → :class:`ocp.DiscountedOCP`, with the loss,
drift and metric written once, with :mod:`problems.ops`, which runs natively on CasADi symbols
and on torch tensors, or in plain CasADi, which the torch rules reach through
:mod:`problems.torch_bridge`: CasADi on the CPU in float64; :mod:`problems.torch_views`
says which path a formula takes), :meth:`default_theta0`, :meth:`random_params` and, where the paper
has a closed form, :meth:`analytic` and :meth:`fixed_point`. Make it known to the
``lossnav`` commands with :func:`problems.register`, ``--plugin FILE.py`` or an entry point
in the group ``lossnav.scenarios`` (:mod:`problems.registry`).

γ = 0 on the infinite horizon needs a running cost that vanishes at rest (the undiscounted
integral of k·L is finite only if L = 0 at the limit point; :func:`ocp.solve` refuses it
otherwise). A scenario whose loss minimum L* is not zero declares it as ``loss_minimum``
(a number, or a property computed from ``self.params``): the OCP then carries the loss
L − L*, which changes neither the gradient, nor the optimal path for γ > 0 (it shifts J by
k·L*/γ), and makes the γ = 0 problem well posed.
"""
from __future__ import annotations

import math

import numpy as np

import ocp

from .checks import array, scalar
from .loss_shift import ShiftedLoss

# array and scalar are the checkers a scenario's build() uses; scenario authors import them from here
# with the base class (README, "Define a new OCP problem"; examples/new_problem_rosenbrock.py).
__all__ = ["Scenario", "array", "scalar"]


class Scenario:
    """A named OCP with parameters. Attributes: ``problem``, ``params``, ``theta0``, ``reference``.

    ``paper_setting`` holds the keyword arguments of :func:`ocp.solve` (horizon, terminal)
    that reproduce the paper's figure, when there is one.
    """

    name: str = ""
    reference: str = ""
    defaults: dict = {}
    ranges: dict = {}
    paper_setting: dict = {}
    validation_gammas: tuple = (0.0, 0.1, 1.0, 10.0)
    #: horizons of ``lossnav validate``'s cases (math.inf: the infinite horizon; finite ones are
    #: free-end solves on [0, H], whose path does not come to rest, so no final-point check)
    validation_horizons: tuple = (math.inf,)
    #: whether ``lossnav validate --all`` includes it (False for a scenario whose cases take
    #: minutes; it is still validated by name)
    in_default_validation: bool = True
    #: whether the first-order rules' observed order to their limit flow is measured (and must lie
    #: in lossnav.validation.rules.ORDER_RANGE) beyond the linear–quadratic scenarios
    rule_orders: bool = False
    #: optimizers ``lossnav validate`` checks against the reference with validate_optimizer, by the
    #: names of lossnav.validation.optimizer_suite ("sgd", "adam", "mpc"); () none
    checked_optimizers: tuple = ()
    #: min_θ L(θ) at these parameters, subtracted from the loss the OCP sees (see the module
    #: docstring); a number or a property of ``self.params``. 0: the loss is used as written.
    loss_minimum: float = 0.0

    def __init__(self, **params):
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise ocp.ProblemError(
                f"unknown parameter {unknown[0]!r} for {self.name}; valid: {', '.join(self.defaults)}")
        self.params = self.normalise({**self.defaults, **params})
        try:
            self.problem = self.build(self.params)
        except ocp.ProblemError as exc:    # e.g. a loss CasADi cannot evaluate: say which scenario
            raise ocp.ProblemError(_naming(self.name, exc)) from exc
        self._subtract_loss_minimum()
        self.theta0 = self.default_theta0()

    def normalise(self, params: dict) -> dict:
        """Check and convert raw parameter values (JSON-friendly values in, same keys out)."""
        return params

    def build(self, params: dict) -> ocp.DiscountedOCP:
        raise NotImplementedError

    def default_theta0(self) -> np.ndarray:
        raise NotImplementedError

    def _subtract_loss_minimum(self) -> None:
        """Make the OCP's loss L − ``loss_minimum`` (before any transcription is built)."""
        minimum = scalar(f"{self.name}.loss_minimum", self.loss_minimum)
        if minimum == 0.0:
            return
        self.problem.loss = ShiftedLoss(self.problem.loss, minimum)

    @property
    def dim(self) -> int:
        return self.problem.dim

    # -- analytic solution -----------------------------------------------------------
    def has_analytic(self) -> bool:
        """Whether :meth:`analytic` applies at these parameters."""
        return type(self).analytic is not Scenario.analytic

    def analytic(self, t, theta0=None):
        """The closed-form optimal path θ(t) (scalar t → (dim,), array → (n, dim))."""
        raise NotImplementedError(f"{self.name} has no analytic solution")

    def fixed_point(self) -> np.ndarray:
        """The point the infinite-horizon optimal path converges to (errors are relative to
        |θ0 − fixed point|)."""
        raise NotImplementedError(f"{self.name} does not define its fixed point")

    def minima(self) -> np.ndarray:
        """Points where an optimal path may come to rest, one per row, the fixed point first
        (non-convex scenarios list every basin: a large γ may stop in the nearer one)."""
        return np.atleast_2d(self.fixed_point())

    def random_params(self, rng: np.random.Generator) -> dict:
        """A random parameter set (γ excluded) from the documented ``ranges``."""
        raise NotImplementedError(f"{self.name} does not define random parameter draws")

    def random_theta0(self, rng: np.random.Generator) -> np.ndarray:
        """A random initial point; by default the default θ0 moved by up to ±50 %."""
        theta0 = self.default_theta0()
        return theta0 * (1 + rng.uniform(-0.5, 0.5, size=theta0.shape))

    def extra_checks(self, theta0, trajectory) -> dict:
        """Checks of the scenario's own claims for ``lossnav validate`` beyond the generic ones:
        {name: (value, tolerance)}, passed when value ≤ tolerance (``trajectory`` is the
        case's collocation reference). Default: none."""
        return {}

    def guesses(self) -> list:
        """Initial guesses for a free-end infinite-horizon solve (``ocp.solve(guess=...)``);
        non-convex scenarios list one per basin, so the best local optimum is found."""
        return []

    # -- torch views of the same formulas ---------------------------------------
    def torch_constants(self, like) -> dict:
        """The problem constants as tensors of ``like``'s dtype and device."""
        import torch
        return {key: torch.as_tensor(value, dtype=like.dtype, device=like.device)
                for key, value in self.problem.constants.items()}

    def torch_loss(self, theta):
        """L(θ) on a 1-D torch tensor, differentiable by autograd and torch.func (the OCP's own
        loss): natively for a loss written with problems.ops, through CasADi (float64, CPU;
        :mod:`problems.torch_bridge`) for one written in plain CasADi; the rule is
        :mod:`problems.torch_views`. ocp.ProblemError, naming the scenario, if neither works."""
        from . import torch_views
        return torch_views.evaluate(self, "loss", theta)

    def torch_drift(self, theta):
        """f(θ) on a 1-D torch tensor, or None when the scenario has no drift (as torch_loss)."""
        if self.problem.drift is None:
            return None
        from . import torch_views
        return torch_views.evaluate(self, "drift", theta)

    def torch_metric(self, theta):
        """G(θ), (dim, dim), on a 1-D torch tensor (as torch_loss); a constant metric as a tensor of
        θ's dtype and device; None when the metric is the identity."""
        if getattr(self.problem, "metric_function", None) is not None:
            from . import torch_views
            return torch_views.evaluate(self, "metric", theta)
        if self.problem.metric is None:
            return None
        import torch
        return torch.as_tensor(self.problem.metric, dtype=theta.dtype, device=theta.device)

    def describe(self) -> dict:
        """Name, reference, parameters with defaults and ranges, θ0, analytic: for listings."""
        return {"name": self.name, "reference": self.reference,
                "parameters": {key: {"default": self.defaults[key], "range": self.ranges.get(key, "")}
                               for key in self.defaults},
                "theta0": self.theta0.tolist(), "analytic": self.has_analytic(),
                "loss_minimum": float(self.loss_minimum),
                "paper_setting": self.paper_setting}

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.params.items())})"


def _naming(name: str, exc: Exception) -> str:
    """``exc``'s message in one line, prefixed with the scenario's name; the message of the error
    that caused it (CasADi's lists every overload) cut to its first line."""
    message = str(exc)
    cause = exc.__cause__
    if cause is not None and str(cause).strip():
        message = message.replace(str(cause), str(cause).strip().splitlines()[0])
    message = " ".join(message.split())
    return message if message.startswith(f"{name}:") else f"{name}: {message}"
