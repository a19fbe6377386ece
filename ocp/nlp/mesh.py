"""The collocation mesh and the IPOPT settings every transcription starts from."""
from __future__ import annotations

from dataclasses import dataclass

from ..checks import count
from ..errors import ProblemError
from .collocation import element_scheme


@dataclass(frozen=True)
class Mesh:
    """Collocation mesh: ``intervals`` elements of ``degree`` on a ``scheme``.

    With an infinite horizon the last element always uses Legendre points, which avoid
    the singular end s = 1.
    """

    intervals: int = 40
    degree: int = 5
    scheme: str = "legendre"

    def __post_init__(self):
        if not isinstance(self.scheme, str):          # (element_scheme's cache needs a hashable name)
            raise ProblemError(f"scheme must be 'legendre' or 'radau', got {self.scheme!r}")
        count("degree", self.degree)
        try:
            element_scheme(self.scheme, self.degree)  # validates scheme and degree
        except ValueError as exc:                     # the engine's family, as documented
            raise ProblemError(str(exc)) from None
        count("intervals", self.intervals)

    def doubled(self) -> Mesh:
        """The same mesh with every element halved: twice the intervals."""
        return Mesh(2 * self.intervals, self.degree, self.scheme)


IPOPT_DEFAULTS = {
    "tol": 1e-12,
    # An "acceptable" stop only at round-off: KKT errors ≤ 1e-9 (transcription.ROUNDOFF_KKT, the
    # test that also accepts Search_Direction_Becomes_Too_Small) for 10 iterations in a row. A
    # solve whose dual infeasibility stalls at 1.7e-12 against tol 1e-12 (belief_adam, γ = 0,
    # 80 elements, casadi 3.8.2) otherwise ran to max_iter and was refused as non-converged.
    "acceptable_iter": 10,
    "acceptable_tol": 1e-9,
    "acceptable_dual_inf_tol": 1e-9,
    "acceptable_constr_viol_tol": 1e-9,
    "acceptable_compl_inf_tol": 1e-9,
    "max_iter": 500,
    "print_level": 0,
    "sb": "yes",
    "nlp_scaling_method": "none",  # keep the discount weights as they are
    # Iterative refinement only when the residual test asks for it (residual_ratio_max
    # still guards the accuracy): saves a back-solve per step on large systems.
    "min_refinement_steps": 0,
}
COUPLED_ORDERING = {"mumps_pivot_order": 0}
"""MUMPS ordering AMD when the Hessian has dense coupled blocks (a loss or metric coupling
the coordinates): MUMPS's automatic choice was ~20× slower there at D = 100
(benchmarks/bench_scaling.py), and no faster on separable problems."""
