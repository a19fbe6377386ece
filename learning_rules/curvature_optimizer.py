"""CurvatureOptimizer: the curvature sources of the second-order rules, per parameter group.

Exact Hessians, Hutchinson diagonals (with a bias-corrected running average) or a user's
callable, measured inside ``step`` from the closure (:mod:`learning_rules.curvature`). A
non-finite estimate skips the group's step, as every non-finite value does
(:class:`learning_rules.base.RuleOptimizer`).
"""
from __future__ import annotations

import torch

from . import curvature as _curvature
from .base import RuleOptimizer, all_finite, check_number, flat
from .device_checks import finite_flag


class CurvatureOptimizer(RuleOptimizer):
    """Adds the curvature sources of the second-order rules to a group.

    Group keys: ``curvature`` ("exact", "hutchinson" or a callable), ``refresh_interval``
    (Hutchinson: steps between estimates), ``curvature_beta`` (Hutchinson: running average
    of the estimates, bias corrected; 0 = latest estimate only), ``hutchinson_samples``.

    A callable is called as ``curvature(param, grad)`` per parameter and returns a tensor
    shaped like the parameter (a diagonal) or (numel, numel) (a dense block); the group's
    curvature is their block diagonal.
    """

    curvature_sources: tuple = _curvature.CURVATURE_SOURCES
    max_exact_size = 4096

    def check_group(self, group):
        super().check_group(group)
        source = group["curvature"]
        if not callable(source) and source not in self.curvature_sources:
            raise ValueError(f"curvature must be one of {', '.join(map(repr, self.curvature_sources))} "
                             f"or a callable (param, grad) -> tensor, got {source!r}")
        group["refresh_interval"] = check_number("refresh_interval", group["refresh_interval"], 1, None,
                                                 integer=True)
        group["curvature_beta"] = check_number("curvature_beta", group["curvature_beta"], 0, 1, high_open=True)
        group["hutchinson_samples"] = check_number("hutchinson_samples", group["hutchinson_samples"], 1, None,
                                                   integer=True)
        if source == "exact":
            size = sum(p.numel() for p in group["params"])
            if size > self.max_exact_size:
                raise ValueError(f"curvature='exact' builds a dense {size}×{size} Hessian; it is for "
                                 f"groups of at most {self.max_exact_size} parameters (use 'hutchinson')")

    def _needs_graph(self, group):
        source = group["curvature"]
        if source == "exact":
            return True
        if source == "hutchinson":
            params = [p for p in group["params"] if p.requires_grad]
            return self._step_count(params) % group["refresh_interval"] == 0
        return False

    def _evaluate(self, closure):
        """Run the closure, with graph-carrying gradients when some group needs HVPs.

        Returns (loss, {param: gradient with graph})."""
        if any(self._needs_graph(group) for group in self.param_groups):
            if closure is None:
                raise RuntimeError(f"{type(self).__name__} with curvature 'exact' or 'hutchinson' needs "
                                   "step(closure): the closure recomputes the loss (calling backward as usual)")
            params = [p for group in self.param_groups for p in group["params"] if p.requires_grad]
            loss, grads = _curvature.closure_with_graph(closure, params)
            return loss, dict(zip(params, grads))
        return super()._evaluate(closure)

    def _curvature(self, group, params, grads, graph):
        """The group's curvature over its flattened parameters: ('diagonal', (n,) tensor) or
        ('dense', (n, n) tensor). When the estimate is not finite the group's step is skipped
        (counted by :meth:`_skip`) and None is returned: the caller returns at once."""
        curvature = self._estimate_curvature(group, params, grads, graph)
        if curvature is None:
            self._skip(group, "curvature")
        return curvature

    def _estimate_curvature(self, group, params, grads, graph):
        source, maximize = group["curvature"], group["maximize"]
        if source == "exact":
            hessian = _curvature.exact_hessian([graph.get(p) for p in params], params, maximize)
            return ("dense", hessian) if all_finite(hessian) else None
        if source == "hutchinson":
            return self._hutchinson(group, params, graph)
        blocks = [source(p, g) for p, g in zip(params, grads)]
        if maximize:
            blocks = [-b for b in blocks]
        if not all_finite(blocks):
            return None
        if all(b.shape == p.shape for b, p in zip(blocks, params)):
            return "diagonal", flat(blocks)
        dense = [b if b.ndim == 2 and b.shape[0] == p.numel() == b.shape[1] else _diag_block(b, p)
                 for b, p in zip(blocks, params)]
        return "dense", torch.block_diag(*dense)

    def _hutchinson(self, group, params, graph):
        """Refresh the running diagonal when the closure produced a graph; bias-corrected flat diagonal."""
        if graph:
            estimate = _curvature.hutchinson_diagonal([graph.get(p) for p in params], params,
                                                      group["hutchinson_samples"], group["maximize"])
            states = [self.state[param] for param in params]
            average, updates = _curvature.fold_diagonal(states, estimate, group["curvature_beta"])
            if not all_finite(average):     # a non-finite estimate, or finite ones overflowing the average
                return None
            return "diagonal", _curvature.store_diagonal(states, params, average, updates, group["curvature_beta"])
        states = [self.state[param] for param in params]
        if any("hessian_diag" not in state for state in states):
            return None
        diagonal = flat([state["hessian_diag"] for state in states])
        if group["curvature_beta"]:
            diagonal.div_(1 - group["curvature_beta"] ** int(states[0]["hessian_updates"]))
        return "diagonal", diagonal

    def _step_curvature(self, group, params, grads, graph):
        """(curvature, ok) of this step, or (None, None) when it was skipped (and counted).

        Hutchinson off the CPU (:attr:`device_checks`): ``ok`` is a device flag that the caller
        masks its writes with (:meth:`_apply_masked`). Otherwise ``ok`` is None: the gradient and
        the estimate were checked on the host."""
        if group["curvature"] == "hutchinson" and self._on_device_checks(params):
            curvature, ok = self._hutchinson_on_device(group, params, graph)
            if curvature is None:      # no estimate yet (a Python fact: no read)
                self._skip(group, "curvature")
                return None, None
            return curvature, torch.ones((), dtype=torch.bool, device=params[0].device) if ok is None else ok
        if not all_finite(grads):
            self._skip(group, "gradient")
            return None, None
        return self._curvature(group, params, grads, graph), None

    def _hutchinson_on_device(self, group, params, graph):
        """:meth:`_hutchinson` with the finiteness decision left on the device: (curvature, ok).
        A refresh folds the estimate in and stores the average where ``ok`` (its update count
        advances regardless: knowing would be a host read); without a refresh ok is None."""
        if not graph:
            return self._hutchinson(group, params, graph), None      # the stored average, bias corrected
        estimate = _curvature.hutchinson_diagonal([graph.get(p) for p in params], params,
                                                  group["hutchinson_samples"], group["maximize"])
        states, beta = [self.state[param] for param in params], group["curvature_beta"]
        average, updates = _curvature.fold_diagonal(states, estimate, beta)
        ok = finite_flag(average)
        return ("diagonal", _curvature.store_diagonal(states, params, average, updates, beta, ok)), ok

def _diag_block(block, param):
    if block.shape != param.shape:
        raise ValueError(f"a curvature callable must return a tensor shaped like the parameter "
                         f"{tuple(param.shape)} or ({param.numel()}, {param.numel()}), got {tuple(block.shape)}")
    return torch.diag(block.reshape(-1))
