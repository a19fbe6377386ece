"""RecedingHorizon: model-predictive training, the discounted OCP re-solved on a local model.

Every ``replan_interval`` steps (K) the optimizer measures a local model of the loss with
torch (:mod:`learning_rules.local_model`): the gradient g and, in an m-dimensional subspace
Q (g, the displacement since the last re-plan, block-Lanczos directions), the projected
Hessian T = QᵀHQ and b = Qᵀg. On the subspace coordinates a it poses the learning OCP of
Vastola, Gershman & Rajan (2025, Eq. 2; App. E for the quadratic model) as an
``ocp.DiscountedOCP`` with the loss bᵀa + ½aᵀTa (b, T NLP parameters: built once, re-solved),
adds the trust region |a(t)| ≤ ρ on the planned displacement (the model is valid only
nearby; no closed form handles the constraint) and solves it with IPOPT
(:class:`ocp.control.trust_region.TrustRegionPlanner`) over the plan horizon S·Δt. The terminal cost
is the unconstrained infinite-horizon value of the model, V(a) = ½aᵀPa + pᵀa with
ηP = (γ²/4 + ηkT)^{1/2} − γ/2, p = k(γ/2 + (γ²/4 + ηkT)^{1/2})⁻¹b (the Riccati solution of
the HJB equation γV = kL − (η/2)|∇V|²); with it the plan *is* the infinite-horizon optimum
when ρ is inactive (exponential discounting is time-consistent), i.e. exactly the
:class:`OptimalQuadratic` step of the model.

Each step applies one Δt of the plan in the subspace, Q(a((j+1)Δt) − a(jΔt)), and, in the
complement, the closed-form optimal step of the diagonal model with the *fresh* gradient:
c = −(I − QQᵀ)·ηkψ(D) ⊙ (I − QQᵀ)g (ψ of :mod:`learning_rules.kernels`, computed at the re-plan).
At a re-plan g lies in span(Q), so the complement moves between re-plans only. D: the
Hutchinson diagonal (``curvature="hutchinson"``, refreshed at re-plans, running average
``curvature_beta``) or none (``"none"``: ψ at the ``damping`` floor). Negative curvature and
``damping`` as in :class:`OptimalQuadratic` (|λ| by default; in the subspace through T's
eigenvalues).

Metric (App. F: a constant G enters as H → G⁻¹H, g → G⁻¹g). ``metric=None``: G = I.
``metric="gradient_squares"``: G = diag(√v̂ + ε), v̂ the bias-corrected running average of g²
(the paper's App. B proxy, as in :class:`Ballistic`); everything above is then done in the
whitened coordinates y = G^{1/2}θ (H̃ = G^{−1/2}HG^{−1/2} through scaled HVPs, the trust region
on the G-norm of the displacement). The subspace uses G at the re-plan, the complement the
current G (a stale G would turn a weight whose gradient was 0 at the re-plan into a 1/ε step).
In the overdamped limit the complement step is −(ηkΔt/γ)g/(√v̂ + ε): RMSprop/Adam without
momentum; the Hessian terms shorten it along curved directions.

Trust region: the plan is constrained only when it needs to be. The model (T made positive,
a convex quadratic) and the ball are convex, so when the unconstrained closed-form path stays
inside the ball it *is* the constrained optimum; each eigen-component of that path grows
monotonically, so checking its end a(SΔt) is exact. With ``skip_inactive`` (default) IPOPT is
then not called (``optimizer.solves`` counts the IPOPT plans).

Fallback: when IPOPT fails or exceeds its budget (``max_iter``, ``max_time``) the plan is the
closed-form unconstrained path a(t) = −(I − e^{Rt})T⁻¹b, projected radially into the trust
region; counted in ``optimizer.fallbacks`` (state, survives ``state_dict``), never raised.

Cost in gradient evaluations: a plain step 1 (the closure) plus O(n·m) vector operations (about
25 tensor operations: Adam's count, fused so that small networks do not pay per-operation
dispatch); a re-plan step 1 gradient with graph + m HVPs in two batched calls (g and the last
displacement with Hutchinson's probes, then the Lanczos block), an HVP costing one to two
gradients, plus at most one small IPOPT solve (m·N·d variables, independent of the network
size): ≈ 1 + (2m + 3)/K per step on average at two gradients per HVP (m = 4, K = 40: ≈ 1.3).

Module layout: the device side (step, re-plan measurement, counters) is here; the host side of
a re-plan (reading the model, the closed-form path, the IPOPT planner) is
:mod:`learning_rules.subspace_plan`. Long because this docstring carries the method's
derivation and the class its hyperparameter checks and documented arguments (a hundred lines
between them); the step and the re-plan fit on a screen each.
"""
from __future__ import annotations

import torch

from . import kernels, plan_schedule, subspace_plan
from .base import RuleOptimizer, check_choice, check_number, flat
from .curvature import fold_diagonal, rademacher, store_diagonal
from .curvature_optimizer import CurvatureOptimizer
from .local_model import subspace_model


def _counter(key, doc):
    """A read-only property: the head states' ``key`` summed over the groups (an int)."""
    return property(lambda self: self._count(key), doc=doc)


class RecedingHorizon(CurvatureOptimizer):
    """Receding-horizon (MPC) optimizer on a subspace model with a trust region (module docstring).

    Args:
        params: parameters or parameter groups.
        lr: Δt > 0, the control interval (default 0.1).
        eta, k, gamma: η > 0, k ≥ 0, γ ≥ 0 of the OCP (default 1, 1, 1).
        metric: None (G = I, default) or "gradient_squares" (G = diag(√v̂ + ε), the App. B
            proxy; module docstring, "Metric").
        metric_beta: running-average factor of g² for that metric, in [0, 1) (default 0.999).
        metric_eps: ε > 0 of that metric (default 1e-8).
        subspace_dim: m, basis size of the planned subspace, 1 to 32 (default 4).
        replan_interval: K ≥ 1, steps between re-plans (default 10).
        plan_steps: S ≥ K, plan horizon in steps of Δt (default K).
        plan_intervals, plan_degree: collocation elements and Radau degree of the plan (default S
            and 3: one element per Δt, so the applied states a(jΔt) are element ends, where
            Radau collocation is most accurate).
        trust_radius: ρ > 0, bound on |planned displacement| in the subspace (default 1).
        skip_inactive: skip IPOPT when the unconstrained plan stays inside the trust region
            (default True; module docstring, "Trust region").
        curvature: complement diagonal, "hutchinson" (default) or "none" (ψ at the
            ``damping`` floor). (``"gradient_squares"`` is a *metric*, not a curvature source.)
        curvature_beta: running-average factor of the diagonal in [0, 1) (default 0.9).
        hutchinson_samples: Rademacher probes per refresh (default 1).
        damping: curvature floor ≥ 0 (default 1e-8; > 0 needed when gamma = 0).
        negative_curvature: "abs" (default) or "clip".
        max_iter: IPOPT iterations per plan (default 50); max_time: CPU seconds or None.
        weight_decay: j ≥ 0, decoupled weight decay as in AdamW: each step first shrinks θ by
            (1 − Δt·j), the drift −jθ of App. G.2 applied outside the plan, which does not
            compensate for it (:class:`DriftCompensated` is the optimum under that drift for a
            quadratic model); default 0.
        replan_tolerance: None (default: measure a new model every K steps) or e > 0: at the end of
            an interval, reuse the last measured model (plan again with the fresh gradient, no HVPs)
            when it predicted the loss change of that interval within relative error e
            (:mod:`learning_rules.plan_schedule`; with several groups each group's prediction is
            compared with the whole loss, so use it with one group).
        max_model_reuse: at most this many reuses in a row, 1 to 1000 (default 3).
        maximize: default False.
        foreach, fused: torch's meaning (:mod:`learning_rules.base`; no fused kernel).

    Devices: the plan, the subspace basis, the local model and the curvature probes live on the
    parameters' device and dtype, in the group's state (``group["group_state"]``). Between
    re-plans a step reads nothing on the host: the base's one step path decides on the device
    whether the gradient, the running g² and the step are finite, and a non-finite step writes
    nothing (it still uses up its slot of the plan, the plan's clock) and is counted in
    ``skipped_steps`` (read when asked). A re-plan is the one synchronisation: the model (T, b,
    live rows, the new curvature average's sum) is read as one tensor for IPOPT and the plan is
    copied back once; ``host_syncs`` counts these steps.
    """

    curvature_sources = ("hutchinson", "none")

    def __init__(self, params, lr=0.1, *, eta=1.0, k=1.0, gamma=1.0, metric=None, metric_beta=0.999,
                 metric_eps=1e-8, subspace_dim=4, replan_interval=10, plan_steps=None, plan_intervals=None,
                 plan_degree=3, trust_radius=1.0, skip_inactive=True, curvature="hutchinson",
                 curvature_beta=0.9,
                 hutchinson_samples=1, damping=1e-8, negative_curvature="abs", max_iter=50, max_time=None,
                 weight_decay=0.0, replan_tolerance=None, max_model_reuse=3, maximize=False, foreach=None,
                 fused=None):
        defaults = dict(lr=lr, eta=eta, k=k, gamma=gamma, metric=metric, metric_beta=metric_beta,
                        metric_eps=metric_eps, subspace_dim=subspace_dim, replan_interval=replan_interval,
                        plan_steps=plan_steps, plan_intervals=plan_intervals, plan_degree=plan_degree,
                        trust_radius=trust_radius, skip_inactive=skip_inactive, curvature=curvature,
                        curvature_beta=curvature_beta, hutchinson_samples=hutchinson_samples, damping=damping,
                        negative_curvature=negative_curvature, max_iter=max_iter, max_time=max_time,
                        weight_decay=weight_decay, replan_tolerance=replan_tolerance,
                        max_model_reuse=max_model_reuse, maximize=maximize)
        super().__init__(params, defaults, foreach=foreach, fused=fused)

    def load_state_dict(self, state_dict):
        """As :meth:`RuleOptimizer.load_state_dict`; a state saved before ``weight_decay`` existed
        loads with weight_decay = 0 (what it ran with)."""
        if isinstance(state_dict, dict) and isinstance(state_dict.get("param_groups"), (list, tuple)):
            groups = [dict(group) if isinstance(group,
                                                dict) else group for group in state_dict["param_groups"]]
            for group in groups:
                if isinstance(group, dict) and "subspace_dim" in group:
                    group.setdefault("weight_decay", 0.0)
                    group.setdefault("replan_tolerance", None)
                    group.setdefault("max_model_reuse", 3)
            state_dict = {**state_dict, "param_groups": groups}
        super().load_state_dict(state_dict)

    def check_group(self, group):
        group["lr"] = check_number("lr", group["lr"], 0, None, low_open=True)
        RuleOptimizer.check_group(self, group)
        group["eta"] = check_number("eta", group["eta"], 0, None, low_open=True)
        group["k"] = check_number("k", group["k"], 0, None)
        group["gamma"] = check_number("gamma", group["gamma"], 0, None)
        group["damping"] = check_number("damping", group["damping"], 0, None)
        if group["gamma"] == 0 and group["damping"] == 0:
            raise ValueError("damping must be > 0 (in (0, ∞)) when gamma = 0: the undiscounted step "
                             "√(ηk/λ)Δt is unbounded as the curvature λ → 0")
        check_choice("negative_curvature", group["negative_curvature"], ("abs", "clip"))
        check_choice("curvature", group["curvature"], self.curvature_sources)
        check_choice("metric", group["metric"], (None, "gradient_squares"))
        group["metric_beta"] = check_number("metric_beta", group["metric_beta"], 0, 1, high_open=True)
        group["metric_eps"] = check_number("metric_eps", group["metric_eps"], 0, None, low_open=True)
        group["subspace_dim"] = check_number("subspace_dim", group["subspace_dim"], 1, 32, integer=True)
        group["replan_interval"] = check_number("replan_interval", group["replan_interval"], 1, 10000,
                                                integer=True)
        if group["plan_steps"] is None:
            group["plan_steps"] = group["replan_interval"]
        group["plan_steps"] = check_number("plan_steps", group["plan_steps"], group["replan_interval"], 10000,
                                           integer=True)
        if group["plan_intervals"] is None:
            group["plan_intervals"] = min(group["plan_steps"], 4)
        group["plan_intervals"] = check_number("plan_intervals", group["plan_intervals"], 1, 100,
                                               integer=True)
        group["plan_degree"] = check_number("plan_degree", group["plan_degree"], 1, 8, integer=True)
        group["trust_radius"] = check_number("trust_radius", group["trust_radius"], 0, None, low_open=True)
        group["skip_inactive"] = bool(group["skip_inactive"])
        group["curvature_beta"] = check_number("curvature_beta", group["curvature_beta"], 0, 1,
                                               high_open=True)
        group["hutchinson_samples"] = check_number("hutchinson_samples", group["hutchinson_samples"], 1, None,
                                                   integer=True)
        group["max_iter"] = check_number("max_iter", group["max_iter"], 1, None, integer=True)
        group["weight_decay"] = check_number("weight_decay", group["weight_decay"], 0, None)
        if group["max_time"] is not None:
            group["max_time"] = check_number("max_time", group["max_time"], 0, None, low_open=True)
        if group["replan_tolerance"] is not None:
            group["replan_tolerance"] = check_number("replan_tolerance", group["replan_tolerance"], 0, None,
                                                     low_open=True)
        group["max_model_reuse"] = check_number("max_model_reuse", group["max_model_reuse"], 1, 1000,
                                                integer=True)

    # -- when a step needs Hessian-vector products -----------------------------------
    #: the per-parameter layout kept the plan and its counters in the first parameter's state
    legacy_group_keys = (*RuleOptimizer.legacy_group_keys, "size", "previous", "second_moment",
                         "moment_updates",
                         "hvps", "host_syncs", "complement_factor", "plan", "basis", "plan_index", "plan_dt",
                         "replans", "solves", "solver_iterations", "fallbacks", "scale")

    def _head(self, group):
        """The state holding a group's plan and counters: the group's own (``group["group_state"]``)."""
        return group["group_state"]

    def _due(self, group):
        head = self._head(group)
        if "plan" not in head or head["plan_dt"] != group["lr"]:
            return True
        return head["plan_index"] >= group["replan_interval"] and not plan_schedule.reuse_allowed(head, group)

    def _needs_graph(self, group):
        return any(p.requires_grad for p in group["params"]) and self._due(group)

    def _evaluate(self, closure):
        if closure is None and any(self._needs_graph(group) for group in self.param_groups):
            raise RuntimeError("RecedingHorizon needs step(closure) at a re-plan: the closure recomputes the "
                               "loss (calling backward as usual) and the step measures Hessian-vector "
                               "products")
        loss, graph = super()._evaluate(closure)
        self._closure_loss = loss                       # observed by the adaptive schedule (plan_schedule)
        return loss, graph

    # -- the step -------------------------------------------------------------------
    def _group_step(self, group, params, grads, graph):
        head = self._head(group)
        if head.get("size") != sum(p.numel() for p in params):     # the parameters with gradients changed
            for key in ("plan", "second_moment"):
                head.pop(key, None)
            head["size"] = sum(p.numel() for p in params)
            head["previous"] = params[0].new_zeros(head["size"])
            if not graph:                              # no HVPs this step: re-plan at the next one
                return
        super()._group_step(group, params, grads, graph)
        if "moment_staged" in head:                    # the masked average is the stored one again
            head["second_moment"], head["moment_updates"] = head.pop("moment_staged")

    def _propose(self, group, params, grads, graph, proposal):
        """One Δt of the plan in the subspace plus the complement step, proposed (base: one device
        flag decides, nothing read on the host between re-plans; a skipped step still uses up its
        slot of the plan, the plan clock, as it does on every device)."""
        head, gradient = self._head(group), flat(grads)
        if group["metric"] == "gradient_squares":      # v ← βv + (1 − β)g², flat, in the group state
            beta = group["metric_beta"]
            if "second_moment" not in head:
                head["second_moment"] = torch.zeros_like(gradient)
            if not isinstance(head.get("moment_updates"), torch.Tensor):
                head["moment_updates"] = torch.full((), int(head.get("moment_updates", 0)), dtype=torch.int64,
                                                    device=gradient.device)
            stored = (head["second_moment"], head["moment_updates"])
            head["second_moment"] = stored[0].mul(beta).addcmul_(gradient, gradient, value=1 - beta)
            head["moment_updates"] = stored[1] + 1      # this step (and its re-plan) see the new average
            proposal.store(stored, [head["second_moment"], head["moment_updates"]])
            head["moment_staged"] = stored
        if self._plan_ready(group, params, gradient, graph) is not None:
            proposal.reject()                          # the local model (or a reused plan's b) is not finite
            proposal.move(torch.zeros_like(gradient))
            return
        basis, j = head["basis"], head["plan_index"]
        # in place on the flat gradient, one fused operation each (a plain step is ~25 tensor
        # operations: on small networks their dispatch, not their arithmetic, is the cost)
        scale = self._metric_scale(group, params)                    # the current metric
        update = gradient if scale is None else gradient.mul_(scale)                # s ⊙ g
        update.addmv_(basis.mT, basis @ update, alpha=-1)                          # (I − QᵀQ)
        update.mul_(head["complement_factor"])                       # −ηkψ(λ̃), fixed between re-plans
        update.addmv_(basis.mT, basis @ update, alpha=-1)
        planned = basis.mT @ (head["plan"][j + 1] - head["plan"][j])  # whitened at the re-plan
        if scale is None:
            update.add_(planned)
        else:
            update.mul_(scale).addcmul_(head["scale"], planned)
        head["plan_index"] = j + 1
        proposal.store([head["previous"]], [head["previous"] + update])   # Δθ since the re-plan
        if group["weight_decay"]:                          # θ ← (1 − Δt·j)θ + update
            update = update.add(flat(params), alpha=-group["lr"] * group["weight_decay"])
        proposal.move(update)

    def _plan_ready(self, group, params, gradient, graph):
        """Make sure the step has a plan to follow: measure a model and plan (a re-plan), or plan
        again on the last model (:mod:`learning_rules.plan_schedule`), when the plan is used up.
        None when ready; what failed (the reason of the skip) otherwise."""
        head = self._head(group)
        if self._due(group):
            if not graph:
                raise RuntimeError("RecedingHorizon re-plans need step(closure) with the loss graph")
            if not self._replan(group, params, gradient, graph):
                return "local model"
        elif head["plan_index"] >= group["replan_interval"] and not self._reuse_model(group, gradient):
            return "gradient"                          # reusing, b = Q(s ⊙ g) was not finite
        if group["replan_tolerance"] is not None:       # the loss at θ_j, for the next decision
            plan_schedule.observe(head, group, head["plan_index"], self.__dict__.get("_closure_loss"),
                                  head["previous"])
        return None

    def _metric_scale(self, group, params):
        """s = G^{-1/2} of the metric G = √v̂ + ε (the App. B proxy), or None (G = I)."""
        if group["metric"] is None:
            return None
        head = self._head(group)
        moment = head["second_moment"]
        correction = -torch.pow(group["metric_beta"], head["moment_updates"].to(moment.dtype)) + 1
        return moment.div(correction).sqrt_().add_(group["metric_eps"]).rsqrt_()

    def _replan(self, group, params, gradient, graph):
        """Measure the subspace model, plan with IPOPT (or the closed-form path), store the plan."""
        head, m = self._head(group), group["subspace_dim"]
        scale = self._metric_scale(group, params)
        previous = head.get("previous")                    # Δθ since the last re-plan
        if previous is not None and scale is not None:
            previous = previous / scale                    # whitened
        white = gradient if scale is None else gradient * scale
        moved = previous is not None and "plan" in head    # a displacement to add (the plan ran since)
        hutchinson = group["curvature"] == "hutchinson"
        probes = [rademacher(gradient.numel(), gradient) for _ in range(group["hutchinson_samples"])] \
            if hutchinson else []                          # Hutchinson's probes ride in the first HVP call
        basis, T, b, hvps, probe_products = subspace_model(white, [graph.get(p) for p in params], params, m,
                                                           previous if moved else None, group["maximize"],
                                                           scale, probes)
        head["hvps"] = int(head.get("hvps", 0)) + hvps
        head["host_syncs"] = int(head.get("host_syncs", 0)) + 1   # this step synchronises (once counted)
        average = check = None
        if hutchinson:                                     # diag(H) ≈ mean z ⊙ Hz, into the running average
            estimate = probe_products.mul_(torch.stack(probes)).mean(0)     # mean over probes of z ⊙ Hz
            states = [self.state[param] for param in params]
            average, updates = fold_diagonal(states, estimate, group["curvature_beta"])
            check = average.sum()
        # the re-plan's one read: T, b, which rows of Q live, the average's sum (skips are
        # counted by the base's step path and read when asked: none pending here)
        T_full, b_full, _, finite = subspace_plan.read_model(T, b, basis, gradient.new_zeros((),
                                                                                             dtype=torch.int64),
                                                             m, check)
        if not finite:
            return False
        diagonal = torch.zeros_like(gradient)
        if hutchinson:
            diagonal = store_diagonal(states, params, average, updates, group["curvature_beta"])
            if scale is not None:
                diagonal.mul_(scale.square())               # diag(SHS) = s² diag(H)
        eta_k = group["eta"] * group["k"]
        curvature = kernels.effective_curvature(diagonal, group["damping"], group["negative_curvature"])
        head["complement_factor"] = kernels.step_factor(curvature, group["lr"], eta_k,
                                                        group["gamma"]).mul_(-eta_k)
        size = basis.shape[0]
        # on the device, in the parameters' dtype (load_state_dict casts floating state to it)
        head["plan"] = torch.as_tensor(self._plan(group, head, T_full, b_full), dtype=gradient.dtype,
                                       device=gradient.device)
        head["basis"] = torch.cat([basis, basis.new_zeros(m - size, basis.shape[1])])
        head["plan_index"], head["plan_dt"] = 0, group["lr"]
        head["replans"] = int(head.get("replans", 0)) + 1
        head["plan_serial"] = int(head.get("plan_serial", 0)) + 1
        head["previous"] = torch.zeros_like(gradient)
        if scale is not None:
            head["scale"] = scale
        if group["replan_tolerance"] is not None:        # what the next intervals' predictions use
            plan_schedule.keep_model(head, white, torch.as_tensor(T_full, dtype=gradient.dtype,
                                                                  device=gradient.device), diagonal)
        return True

    def _reuse_model(self, group, gradient):
        """Plan the next interval on the last measured model with the fresh gradient, b = Q(s ⊙ g)
        (no HVPs, no graph: :mod:`learning_rules.plan_schedule`); False when b is not finite (the
        next step then measures)."""
        head = self._head(group)
        scale = head.get("scale") if group["metric"] is not None else None   # the model's whitening
        white = gradient if scale is None else gradient * scale
        basis = head["basis"]
        T_full, b_full, _, finite = subspace_plan.read_model(head["model_curvature"], basis @ white, basis,
                                                             gradient.new_zeros((), dtype=torch.int64),
                                                             group["subspace_dim"])
        head["host_syncs"] = int(head.get("host_syncs", 0)) + 1
        if not finite:
            head["model_reuses"] = group["max_model_reuse"]
            return False
        head["plan"] = torch.as_tensor(self._plan(group, head, T_full, b_full), dtype=gradient.dtype,
                                       device=gradient.device)
        head["plan_index"] = 0
        head["plan_serial"] = int(head.get("plan_serial", 0)) + 1
        head["model_reuses"] += 1
        head["reused_models"] = int(head.get("reused_models", 0)) + 1
        head["previous"] = torch.zeros_like(gradient)
        head["model_gradient"] = white.clone()          # the model re-centred at this θ
        plan_schedule.start_interval(head, gradient)
        return True

    def _plan(self, group, head, T, b):
        """Subspace displacements a(jΔt), j = 0..S, from :func:`subspace_plan.plan_path`; counts
        the IPOPT solves, their iterations and the fallbacks in the head state."""
        plan, outcome = subspace_plan.plan_path(T, b, group, lambda: self._planner(group))
        if outcome["attempted"]:
            head["solves"] = int(head.get("solves", 0)) + 1
            head["solver_iterations"] = int(head.get("solver_iterations", 0)) + outcome["iterations"]
        if outcome["failure"] is not None:
            head["fallbacks"] = int(head.get("fallbacks", 0)) + 1
            self._failures.append(outcome["failure"])
            del self._failures[:-20]
        return plan

    def _planner(self, group):
        return subspace_plan.shared_planner(group["subspace_dim"], group["plan_intervals"],
                                            group["plan_degree"],
                                            group["max_iter"], group["max_time"])

    @property
    def _failures(self):
        if "_failure_log" not in self.__dict__:
            self._failure_log = []
        return self._failure_log

    def _count(self, key):
        return sum(int(self._head(g).get(key, 0)) for g in self.param_groups if g["params"])

    fallbacks = _counter("fallbacks",
                         "Plans that fell back to the closed-form path (IPOPT failed or exceeded "
                         "its budget).")
    replans = _counter("replans", "Local models measured and planned on.")
    solves = _counter("solves", "Plans solved by IPOPT (the trust region could bind); the others used the "
                      "closed form.")
    host_syncs = _counter("host_syncs",
                          "Steps at which the host waited for the device: the re-plans (the local "
                          "model is read for IPOPT, the Hutchinson estimate checked); none between re-plans.")
    reused_models = _counter("reused_models", "Plan intervals planned on the last measured model because "
                             "it predicted the loss within replan_tolerance (no HVPs spent).")
    hvps = _counter("hvps",
                    "Hessian-vector products spent on subspace models (Hutchinson probes not included).")

    @property
    def failures(self) -> list:
        """Reasons of the last (up to 20) fallbacks of this optimizer object."""
        return list(self._failures)
