"""The loss a scenario's OCP carries when the scenario declares its minimum: L(θ) − L*.

γ = 0 on the infinite horizon needs a running cost that vanishes at rest
(:mod:`problems.scenario`), so a scenario whose min L is L* ≠ 0 hands the engine L − L*; the
gradient and every optimal path for γ > 0 are unchanged. The raw loss and the shift are kept
apart so that the CasADi bridge (:mod:`problems.torch_views`) compiles the raw loss once for
every L* and subtracts L* in torch.
"""
from __future__ import annotations


class ShiftedLoss:
    """L(θ) − L*: the OCP's loss of a scenario that declares ``loss_minimum`` L* (the raw loss and
    the shift are kept apart, so the CasADi bridge compiles the raw loss once for every L*)."""

    def __init__(self, loss, minimum: float):
        self.loss, self.minimum = loss, float(minimum)
        self.__doc__ = f"{getattr(loss, '__name__', 'loss')} − {minimum:g} (the declared loss_minimum)"

    def __call__(self, theta, **constants):
        return self.loss(theta, **constants) - self.minimum
