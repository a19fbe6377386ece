"""Guards that no test watched (issue 19, "tests that would not catch a regression"): each test
here fails when the guard it names is removed (tried, docs/reliability.md)."""
import math

import numpy as np
import pytest
import torch

import learning_rules
import ocp
import problems
from ocp.control import receding
from ocp.horizons import pipeline
from ocp.nlp import transcription
from ocp.nlp.transcription import transcription_for


# -- learning_rules/base.py: the final guard on computed updates ---------------------------------
def test_a_nan_update_from_finite_gradients_is_skipped_not_written():
    """Ballistic with ε = 0 at a zero gradient: −lr·g/√v = 0/0, NaN from finite input; only the
    one finiteness flag of RuleOptimizer._commit stands between it and the parameters."""
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    optimizer = learning_rules.Ballistic([p], lr=0.1, eps=0.0)
    optimizer.zero_grad()
    (0.0 * p.sum()).backward()                       # a finite (zero) gradient
    optimizer.step()
    with pytest.warns(RuntimeWarning, match="non-finite values"):    # warned when the count is read
        assert torch.equal(p.detach(), torch.tensor([1.0, -2.0])) and optimizer.skipped_steps == 1


def test_an_infinite_update_from_a_finite_metric_is_skipped():
    """NaturalGradient with a callable metric that is zero and no damping: g/0 = ±inf."""
    p = torch.nn.Parameter(torch.tensor([1.0, 3.0]))
    optimizer = learning_rules.NaturalGradient([p], lr=0.1,
                                               metric=lambda param, grad: torch.zeros_like(param),
                                               damping=0.0)
    optimizer.zero_grad()
    (p ** 2).sum().backward()
    optimizer.step()
    with pytest.warns(RuntimeWarning, match="non-finite values"):
        assert torch.equal(p.detach(), torch.tensor([1.0, 3.0])) and optimizer.skipped_steps == 1


# -- ocp: the one place a failing IPOPT status is promoted to success ----------------------------
def _stats(status, primal, dual):
    return {"return_status": status, "iterations": {"inf_pr": [1.0, primal], "inf_du": [1.0, dual]}}


@pytest.mark.parametrize("stats, promoted", [
    (_stats("Search_Direction_Becomes_Too_Small", 1e-12, 1e-13), True),
    (_stats("Search_Direction_Becomes_Too_Small", 1e-6, 1e-13), False),     # primal residual not at round-off
    (_stats("Search_Direction_Becomes_Too_Small", 1e-12, 1e-5), False),     # dual residual not at round-off
    (_stats("Maximum_Iterations_Exceeded", 1e-14, 1e-14), False),           # any other failure stays one
    ({"return_status": "Search_Direction_Becomes_Too_Small", "iterations": {}}, False),   # no history
])
def test_only_a_step_below_round_off_at_round_off_residuals_counts_as_converged(stats, promoted):
    assert transcription._converged_at_roundoff(stats) is promoted


def test_a_search_direction_failure_with_large_residuals_is_a_solve_error(monkeypatch):
    problem = problems.get("quadratic").problem
    mesh = ocp.Mesh(8, 3)
    built = transcription_for(problem, mesh, False, False)
    real = built.solver

    class Stalled:
        def __call__(self, **args):
            return real(**args)

        def stats(self):
            stalled = _stats("Search_Direction_Becomes_Too_Small", 1e-3, 1e-3)
            return {**real.stats(), "success": False, **stalled}
    monkeypatch.setattr(built, "solver", Stalled())
    with pytest.raises(ocp.SolveError, match="Search_Direction_Becomes_Too_Small"):
        ocp.solve(problem, [1.0, 1.0], horizon=2.0, mesh=mesh)


# -- ocp/horizons/pipeline.py: guesses that fail, a continuation that does not reach rest ------------------
def test_failed_guesses_are_counted_and_all_failing_raises(monkeypatch):
    problem = problems.get("quadratic").problem
    real = pipeline.solve_window
    calls = []

    def first_guess_fails(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise ocp.SolveError("invented failure", "Invented_Failure", 3)
        return real(*args, **kwargs)
    monkeypatch.setattr(pipeline, "solve_window", first_guess_fails)
    guesses = [np.array([1.0, 1.0]), np.array([0.0, 0.0])]
    # (the coarse mesh is deliberate: mesh_tol=inf keeps it, without the refinement check)
    trajectory = ocp.solve(problem, [1.0, 1.0], horizon=2.0, mesh=ocp.Mesh(8, 3), guess=guesses,
                           mesh_tol=math.inf)
    assert trajectory.stats["failed_guesses"] == 1 and trajectory.stats["solves"] == 1

    def every_guess_fails(*args, **kwargs):
        raise ocp.SolveError("invented failure", "Invented_Failure", 3)
    monkeypatch.setattr(pipeline, "solve_window", every_guess_fails)
    with pytest.raises(ocp.SolveError, match="Invented_Failure"):
        ocp.solve(problem, [1.0, 1.0], horizon=2.0, mesh=ocp.Mesh(8, 3), guess=guesses)


# -- ocp/control/receding.py: a window whose mesh did not converge --------------------------------------
def test_an_unconverged_receding_window_is_recorded_and_refused(monkeypatch):
    problem = problems.get("quadratic", gamma=2.0).problem
    real = receding._window
    seen = []

    def second_window_still_changing(*args, **kwargs):
        window, change = real(*args, **kwargs)
        seen.append(1)
        return window, (2e-4 if len(seen) == 2 else math.nan if len(seen) == 3 else change)
    monkeypatch.setattr(receding, "_window", second_window_still_changing)
    path = receding.receding_windows(problem, [1.0, 1.0], duration=4 * receding.KEEP_WINDOW / 2.0,
                                     mesh=ocp.Mesh(10, 4))
    starts = [start for start, _ in path.stats["unconverged_windows"]]
    assert starts == pytest.approx([receding.KEEP_WINDOW / 2.0, 2 * receding.KEEP_WINDOW / 2.0])
    with pytest.raises(ocp.SolveError, match="did not converge"):
        receding.require_converged(path)
