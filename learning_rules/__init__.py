"""torch optimizers derived from the optimal solutions of the learning OCP.

    from learning_rules import OptimalQuadratic, Ballistic, NaturalGradient, DriftCompensated
    opt = OptimalQuadratic(model.parameters(), lr=dt, eta=1.0, k=1.0, gamma=1.0)
    def closure():
        opt.zero_grad(); loss = criterion(model(x), y); loss.backward(); return loss
    opt.step(closure)

Each is a ``torch.optim.Optimizer`` (param groups with ``lr``, lazy state, ``step(closure)``,
``state_dict``, ``maximize``); they know nothing of scenarios (the application,
:mod:`lossnav.validation.rule_runner`, runs them on those). Derivations, hyperparameter maps
and limits: docs/learning_rules.md.
"""
from .ballistic import Ballistic
from .belief_adam import BeliefAdam
from .drift_compensated import DriftCompensated
from .natural_gradient import NaturalGradient
from .optimal_quadratic import OptimalQuadratic
from .receding_horizon import RecedingHorizon
from .weight_uncertainty import WeightUncertainty

__all__ = ["OptimalQuadratic", "Ballistic", "NaturalGradient", "DriftCompensated", "RecedingHorizon",
           "WeightUncertainty", "BeliefAdam"]
