"""Matrix-free reference paths for a loss given by value, gradient and HVPs (issue 25).

The discounted OCP of Vastola et al. 2025 (Eq. 2) with f = 0 and a constant metric is
discretised as J itself (continuous Lobatto elements, Gauss quadrature: a variational
integrator) and minimised by trust-region Newton–CG whose Hessian is applied with one batched
HVP call over the quadrature points; nothing of size D × D is formed. Modules: ``mesh`` (elements
and the discount-scaled matrices), ``objective`` (J, ∇J, ∇²J·V, the banded preconditioner),
``newton`` (Steihaug–Toint CG, Eisenstat–Walker forcing; :class:`NewtonSettings`), ``rest``
(the infinite horizon's rest point and curvature range by Lanczos), ``checks`` (EL residual,
mesh agreement) and ``solve`` (the driver ``ocp.horizons.pipeline.run`` dispatches to).
"""
from .newton import NewtonSettings
from .rest import downhill_rest_point
from .solve import solve

__all__ = ["NewtonSettings", "downhill_rest_point", "solve"]
