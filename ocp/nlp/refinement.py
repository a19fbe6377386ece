"""One mesh-doubling loop for every refinement: solve on a mesh twice as fine until two agree.

Gauss collocation is superconvergent, so one solution says little about its own error; the
difference to the solution on the mesh with every element halved does (Betts, *Practical
Methods for Optimal Control*, 2010, §4.7). Three callers double this way: the finite and
infinite horizons' mesh refinement (``ocp.horizons.mesh_refinement``, meshes as
:class:`ocp.Mesh`), each receding window (``ocp.control.receding``) and the current-value
bridge (``ocp.horizons.current_value``, meshes as element counts). Each gives its own solve,
its own measure of the difference and its own acceptance; the loop is here.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable


@dataclasses.dataclass
class Refinement:
    """The outcome of :func:`double_until_agreed`.

    solution  : the last solution (the finer of the two that agreed, when ``converged``);
                None when a solve failed.
    level     : its mesh (or element count).
    converged : whether two successive solutions met the acceptance.
    history   : [(coarser level, difference to the next level)], one per doubling.
    """

    solution: Any
    level: Any
    converged: bool
    history: list


def double_until_agreed(solve_on: Callable, level, difference: Callable, accept: Callable,
                        more: Callable, coarse=None, finer: Callable = None) -> Refinement:
    """Double ``level`` until ``accept(difference(coarse, fine))``.

    solve_on(level, guess) → a solution on ``level`` warm started from the coarser solution
    ``guess`` (None for the first), or None when it fails; ``coarse`` is the solution on
    ``level`` when the caller has it already. ``more(level, doublings)`` says whether another
    doubling is allowed; ``finer(level)`` doubles (default: ``level.doubled()``, or 2·level
    for an element count)."""
    finer = finer or (lambda current: current.doubled() if hasattr(current, "doubled") else 2 * current)
    if coarse is None:
        coarse = solve_on(level, None)
        if coarse is None:
            return Refinement(None, level, False, [])
    history = []
    while more(level, len(history)):
        next_level = finer(level)
        fine = solve_on(next_level, coarse)
        if fine is None:
            return Refinement(None, next_level, False, history)
        change = difference(coarse, fine)
        history.append((level, change))
        if accept(change):
            return Refinement(fine, next_level, True, history)
        coarse, level = fine, next_level
    return Refinement(coarse, level, False, history)
