"""``ocp.solve``: the public entry point. It checks its arguments once and runs the pipeline.

Finite horizons are one NLP over [0, T] (mesh-checked; a horizon whose discount falls below
round-off is the infinite path followed by a final window). The infinite horizon (design
notes §2) is the first window of the algebraic map t = c·s/(1 − s), cut where e^{−γt} =
WINDOW_DISCOUNT (a free end: the transversality condition holds there) and kept while
e^{−γt} ≥ KEEP_DISCOUNT, then continued by the strategies of ``ocp.horizons.infinite``: the
current-value bridge, receding windows, the closed-form LQ tail at the rest point, growing
optima, or the integration of the stationary policy θ̇ = π(θ). Exponential discounting is
time-consistent, so every continuation is the same optimal path. The layers, and which calls
which, are drawn in ``ocp.horizons.pipeline`` and docs/engine.md.
``stats["junction_mismatch"]`` compares θ̇ at the end of each collocated window with the
next piece's velocity there (max gap relative to the largest speed): a gap well above the
NLP tolerance means the window's last (long) elements under-resolve the path; refine the mesh.
"""
from __future__ import annotations

import math

from .horizons import pipeline
from .options import SolveOptions
from .results.trajectory import Trajectory


def solve(problem, theta0, horizon=math.inf, terminal=None, mesh=None, time_scale=None,
          guess=None, ipopt=None, rest_tol=1e-10, t0=0.0, time_limit=None, mesh_tol=None, solver="auto",
          matrix_free=None) -> Trajectory:
    """Solve ``problem`` from ``theta0``; return the optimal :class:`Trajectory`.

    horizon    : ``math.inf`` (default) or a finite T > 0 (any T up to the float range: a
                 horizon whose discount falls below round-off is solved as the infinite-horizon
                 path followed by a final window, see :mod:`ocp.horizons.long_horizon`).
    terminal   : fixed θ(T) (finite horizons only); ``None`` leaves the end free.
    mesh       : :class:`Mesh` (intervals, degree, scheme); default 40 × degree 5 Legendre.
    time_scale : c of the infinite-horizon map t = c·s/(1−s); default from the local
                 curvature at θ0 and γ (:func:`ocp.nlp.local_model.default_time_scale`).
                 Infinite horizons only (a finite horizon's map is [0, T]).
    guess      : a Trajectory, a callable t → θ, or a target point θ_∞ (the guess then
                 approaches it exponentially); default: θ0 held constant, or, on the infinite
                 horizon from a start where the loss is locally concave, the rest point downhill
                 from θ0 (:mod:`ocp.horizons.downhill`; ``stats["default_guess"]``). A list of such
                 guesses (e.g. several local minima of the loss) solves from each and keeps
                 the path of lowest objective: IPOPT finds local optima only.
    rest_tol   : the infinite-horizon path is followed until |θ̇| ≤ rest_tol · max|θ̇|.
    t0         : the problem's clock at the start, for a loss or data that depend on time
                 (e.g. a restart in the middle of an observation stream). The discount is
                 e^{−γ(t − t0)} (time consistency) and the Trajectory's times run from t0;
                 Trajectory and callable guesses are read at those times.
    time_limit : wall-clock seconds for the whole solve (None: no limit); when spent, a
                 SolveError with status ``"time_limit"`` whose ``last_iterate`` is the best
                 path so far. Ctrl-C raises KeyboardInterrupt from any stage.
    mesh_tol   : the mesh is doubled until two successive solutions agree to this, relative to
                 the path's range (``ocp.horizons.mesh_refinement``; recorded in
                 ``stats["mesh_refinement"]``); on the infinite horizon the first window's mesh.
                 None (default): finite horizons are checked to 1e-8 only when the mesh is coarse
                 against the local time scales at θ0, the infinite horizon not; ``math.inf``: never.

    solver     : "auto" (default): an :class:`ocp.ExternalLoss` matrix-free, a CasADi-written loss by
                 collocation up to ``ocp.options.MATRIX_FREE_DIMENSION`` parameters and matrix-free
                 above when it qualifies (f = 0, constant G); "collocation" (CasADi + IPOPT);
                 "matrix_free" (:mod:`ocp.matrix_free`: Newton–CG with HVPs, no D × D matrix;
                 ``stats["solver"]`` says which ran). Matrix-free solves ignore ``ipopt``,
                 ``time_scale`` and ``rest_tol``, refuse a ``guess``, and check the doubled mesh
                 to ``mesh_tol`` (None: 1e-6) and the Euler–Lagrange residual.
    matrix_free: a dict of :class:`ocp.matrix_free.NewtonSettings` (max_newton, el_tol, intervals...).

    Raises ProblemError for bad input and SolveError when IPOPT does not converge or the mesh
    refinement does not meet its tolerance.
    """
    theta0 = problem.check_initial_state(theta0)
    options = SolveOptions.checked(problem, horizon=horizon, terminal=terminal, mesh=mesh,
                                   time_scale=time_scale, guess=guess, ipopt=ipopt, rest_tol=rest_tol, t0=t0,
                                   time_limit=time_limit, mesh_tol=mesh_tol, solver=solver,
                                   matrix_free=matrix_free)
    return pipeline.run(problem, theta0, options)
