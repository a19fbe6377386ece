"""CurvatureOptimizer: the curvature sources of the second-order rules, per parameter group.

Exact Hessians, Hutchinson diagonals (with a bias-corrected running average, its update
count in the group state) or a user's callable, measured inside ``step`` from the closure
(:mod:`learning_rules.curvature`). A non-finite estimate skips the group's step, as every
non-finite value does, without a host read (:class:`learning_rules.base.StepProposal`).
"""
from __future__ import annotations

import torch

from . import curvature as _curvature
from .base import RuleOptimizer, check_number, finite_flag, flat


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
    legacy_group_keys = (*RuleOptimizer.legacy_group_keys, "hessian_updates")
    max_exact_size = 4096

    def check_group(self, group):
        super().check_group(group)
        source = group["curvature"]
        if not callable(source) and source not in self.curvature_sources:
            raise ValueError(f"curvature must be one of {', '.join(map(repr, self.curvature_sources))} "
                             f"or a callable (param, grad) -> tensor, got {source!r}")
        group["refresh_interval"] = check_number("refresh_interval", group["refresh_interval"], 1, None,
                                                 integer=True)
        group["curvature_beta"] = check_number("curvature_beta", group["curvature_beta"], 0, 1,
                                               high_open=True)
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
        if source == "hutchinson":        # the refresh schedule runs on the host clock of calls
            return self._calls(group) % group["refresh_interval"] == 0
        return False

    def _evaluate(self, closure):
        """Run the closure, with graph-carrying gradients when some group needs HVPs.

        Returns (loss, {param: gradient with graph})."""
        if any(self._needs_graph(group) for group in self.param_groups):
            if closure is None:
                raise RuntimeError(f"{type(self).__name__} with curvature 'exact' or 'hutchinson' needs "
                                   "step(closure): the closure recomputes the loss (calling backward as "
                                   "usual)")
            params = [p for group in self.param_groups for p in group["params"] if p.requires_grad]
            loss, grads = _curvature.closure_with_graph(closure, params)
            return loss, dict(zip(params, grads, strict=False))
        return super()._evaluate(closure)

    def _step_curvature(self, group, params, grads, graph, proposal):
        """The group's curvature over its flattened parameters: ('diagonal', (n,) tensor) or
        ('dense', (n, n) tensor). Its finiteness is added to ``proposal`` (a non-finite estimate
        skips the step) and a non-finite value is replaced by zeros, so that eigendecompositions
        and solves see finite input (their result is masked anyway)."""
        source, maximize = group["curvature"], group["maximize"]
        if source == "hutchinson":
            return self._hutchinson(group, params, graph, proposal)
        if source == "exact":
            kind, value = "dense", _curvature.exact_hessian([graph.get(p) for p in params], params, maximize)
        else:
            blocks = [source(p, g) for p, g in zip(params, grads, strict=False)]
            if maximize:
                blocks = [-b for b in blocks]
            if all(b.shape == p.shape for b, p in zip(blocks, params, strict=False)):
                kind, value = "diagonal", flat(blocks)
            else:
                kind, value = "dense", torch.block_diag(*[
                    b if b.ndim == 2 and b.shape[0] == p.numel() == b.shape[1] else _diag_block(b, p)
                    for b, p in zip(blocks, params, strict=False)])
        ok = finite_flag([value])
        proposal.require(ok)
        return kind, torch.where(ok, value, 0.0)

    def _hutchinson(self, group, params, graph, proposal):
        """The bias-corrected running Hutchinson diagonal (flat), refreshed when the closure gave
        a graph: the new average and its update count are proposed for storing (kept where not
        finite). Without any stored estimate the step is not valid (proposal)."""
        states = [self.state[param] for param in params]
        stored = []
        for param, state in zip(params, states, strict=False):
            if "hessian_diag" not in state:
                state["hessian_diag"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            stored.append(state["hessian_diag"])
        counts = self.group_state(group, params[0])
        if "hessian_updates" not in counts:
            counts["hessian_updates"] = torch.zeros((), dtype=torch.int64, device=params[0].device)
        count, beta = counts["hessian_updates"], group["curvature_beta"]
        average = flat(stored)
        if graph:
            estimate = _curvature.hutchinson_diagonal([graph.get(p) for p in params], params,
                                                      group["hutchinson_samples"], group["maximize"])
            average = average.lerp_(estimate, 1 - beta) if beta else estimate
            count = count + 1
            parts = torch.split(average, [p.numel() for p in params])
            shaped = [part.view_as(p) for part, p in zip(parts, params, strict=True)]
            proposal.store([*stored, counts["hessian_updates"]], [*shaped, count])
        proposal.require(count > 0)
        if beta:
            average = average / (1 - torch.pow(beta, count.to(average.dtype)))
        return "diagonal", average


def _diag_block(block, param):
    if block.shape != param.shape:
        raise ValueError(f"a curvature callable must return a tensor shaped like the parameter "
                         f"{tuple(param.shape)} or ({param.numel()}, {param.numel()}), got "
                         f"{tuple(block.shape)}")
    return torch.diag(block.reshape(-1))
