"""The learning scenarios: each a module with its OCP, parameters, paper reference and,
where one exists, its analytic solution.

    import problems
    problems.names()   # ['quadratic', 'double_well', 'double_well_2d', 'natural_gradient', ...]
    scenario = problems.get("quadratic", H=[1, 10], gamma=0.5)
    scenario.problem, scenario.params, scenario.theta0, scenario.reference

To add a scenario, write a :class:`problems.scenario.Scenario` subclass anywhere and

* in a script: ``problems.register(MyScenario)`` (also usable as a class decorator), or
  ``lossnav COMMAND --plugin my_file.py`` on the command line;
* in an installed package: announce it in the entry-point group ``lossnav.scenarios``
  (:mod:`problems.registry`); every ``lossnav`` command then lists and solves it.

The built-in scenarios live in this package, one module each.
"""
from __future__ import annotations

import ocp

from . import ops
from .belief_adam import BeliefAdamScenario
from .double_well import DoubleWellScenario
from .double_well_2d import DoubleWell2DScenario
from .natural_gradient import NaturalGradientScenario
from .network import DigitsMLPScenario
from .quadratic import QuadraticScenario
from .registry import SCENARIO_GROUP, PluginWarning, RegistrationError, register, registered
from .rotation import RotationScenario
from .scenario import Scenario
from .weight_decay import WeightDecayScenario
from .weight_uncertainty import WeightUncertaintyScenario

for _builtin in (QuadraticScenario, DoubleWellScenario, DoubleWell2DScenario, NaturalGradientScenario,
                 RotationScenario, WeightDecayScenario, BeliefAdamScenario, WeightUncertaintyScenario,
                 DigitsMLPScenario):
    register(_builtin, origin="built-in")


def names() -> list:
    """Names of the registered scenarios: the built-ins, then plug-ins (entry points of
    ``lossnav.scenarios``, read on the first call, and :func:`register` calls)."""
    return list(registered())


def get(name: str, **params) -> Scenario:
    """The scenario ``name`` built with ``params`` (others at their defaults).

    Raises ocp.ProblemError for an unknown name or parameter, listing the valid ones.
    """
    scenarios = registered()
    try:
        cls = scenarios[name]
    except (KeyError, TypeError):
        raise ocp.ProblemError(f"unknown problem {name!r}; valid: {', '.join(scenarios)}") from None
    return cls(**params)


__all__ = ["SCENARIO_GROUP", "PluginWarning", "RegistrationError", "Scenario", "get", "names", "ops",
           "register", "registered"]
