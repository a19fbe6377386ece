"""Validation against the collocation reference: the cases of ``lossnav validate``
(:mod:`~lossnav.validation.cases`), the learning rules on them (:mod:`~lossnav.validation.rules`,
run by :mod:`~lossnav.validation.rule_runner`), any user optimizer
(:func:`~lossnav.validation.optimizer_check.validate_optimizer`), the optimizer studies of
App. H–I (:mod:`~lossnav.validation.optimizer_studies`) and the SGD simulations of Kunin et al.
(:mod:`~lossnav.validation.sgd_simulation`).

``validate_optimizer``, ``OptimizerCheck``, ``OptimizerCheckError`` and ``damped_flow`` are
importable from here; they are loaded on first use (they import torch, which ``lossnav
validate`` without ``--optimizer`` does not need).
"""
_LAZY = ("validate_optimizer", "OptimizerCheck", "OptimizerCheckError", "damped_flow")


def __getattr__(name):
    if name in _LAZY:
        from . import limit_flows, optimizer_check
        return getattr(optimizer_check if hasattr(optimizer_check, name) else limit_flows, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_LAZY])


__all__ = list(_LAZY)
