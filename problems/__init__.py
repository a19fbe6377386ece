"""The learning scenarios: each a module with its OCP, parameters, paper reference and,
where one exists, its analytic solution.

    import problems
    problems.names()   # ['quadratic', 'double_well', 'double_well_2d', 'natural_gradient', ...]
    scenario = problems.get("quadratic", H=[1, 10], gamma=0.5)
    scenario.problem, scenario.params, scenario.theta0, scenario.reference

To add a scenario: write a :class:`problems.scenario.Scenario` subclass in its own module
and add it to ``_SCENARIOS`` below.
"""
from __future__ import annotations

import ocp

from .belief_adam import BeliefAdamScenario
from .double_well import DoubleWellScenario
from .double_well_2d import DoubleWell2DScenario
from .natural_gradient import NaturalGradientScenario
from .quadratic import QuadraticScenario
from .rotation import RotationScenario
from .scenario import Scenario
from .weight_decay import WeightDecayScenario
from .weight_uncertainty import WeightUncertaintyScenario

_SCENARIOS = {cls.name: cls for cls in (QuadraticScenario, DoubleWellScenario, DoubleWell2DScenario,
                                        NaturalGradientScenario, RotationScenario, WeightDecayScenario,
                                        BeliefAdamScenario, WeightUncertaintyScenario)}


def names() -> list:
    """Names of the registered scenarios."""
    return list(_SCENARIOS)


def get(name: str, **params) -> Scenario:
    """The scenario ``name`` built with ``params`` (others at their defaults).

    Raises ocp.ProblemError for an unknown name or parameter, listing the valid ones.
    """
    try:
        cls = _SCENARIOS[name]
    except (KeyError, TypeError):
        raise ocp.ProblemError(f"unknown problem {name!r}; valid: {', '.join(names())}") from None
    return cls(**params)


__all__ = ["Scenario", "get", "names"]
