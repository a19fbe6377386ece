"""A scenario's loss, drift and metric on torch tensors: the native call or the CasADi bridge.

The torch rules call L(θ), f(θ) and G(θ) (Vastola, Gershman & Rajan 2025, Eq. 2) on tensors.
Which way each formula runs is decided once per scenario and formula, at the first call, by
one probe at the scenario's θ0 (float64, a leaf that requires grad, in a clean thread so no
torch.func transform or no_grad mode of the caller is in force):

1. **native** (the formula is written with :mod:`problems.ops` or torch): the call returns a
   tensor of the right shape, connected to θ by autograd (or the formula does not depend on
   θ at all), whose value agrees with the formula's on numeric CasADi values at the probe to
   1e-8 relative. Native calls cost no copy and run on any device and dtype.
2. **bridge** (the formula is written for CasADi, or numpy, values): the call raises inside the
   casadi package, raises CasADi's "unsupported operand" TypeError between a CasADi value and a
   tensor, hands the tensor to numpy (torch's refusal to convert a tensor that requires grad),
   or returns a CasADi value. The formula then runs through :mod:`problems.torch_bridge`
   (CasADi on the CPU in float64; every derivative exact).
3. **error**: anything else (another exception, a result that is not a tensor, of the wrong
   shape, disconnected from θ, or disagreeing with CasADi) is an :class:`ocp.ProblemError`,
   one line naming the scenario and the formula: no silent fallback hides a bug in torch code.

A formula that CasADi cannot evaluate never gets here: the engine refuses it when the
scenario is built (:class:`problems.Scenario` names the scenario in that error).
"""
from __future__ import annotations

import os
import re
import threading
import traceback

import casadi
import numpy as np
import torch

import ocp

from . import torch_bridge
from .loss_shift import ShiftedLoss

NATIVE, BRIDGE = "native", "bridge"
AGREEMENT = 1e-8
_CASADI_DIR = os.path.dirname(os.path.abspath(casadi.__file__))
_TORCH_TENSOR_FILE = os.path.join(os.path.dirname(os.path.abspath(torch.__file__)), "_tensor.py")
_CASADI_OPERAND = re.compile(r"unsupported operand type\(s\).*'(DM|SX|MX)'")
_CASADI_TYPES = (casadi.SX, casadi.MX, casadi.DM)


def evaluate(scenario, piece: str, theta):
    """``piece`` ('loss', 'drift' or 'metric') of ``scenario`` at the 1-D tensor θ, the way
    :func:`path` decides; differentiable by autograd and torch.func either way."""
    problem = scenario.problem
    if path(scenario, piece) == NATIVE:
        return torch_bridge.formula(problem, piece)(theta, **scenario.torch_constants(theta))
    if not isinstance(theta, torch.Tensor) or tuple(theta.shape) != (problem.dim,):
        shape = tuple(theta.shape) if isinstance(theta, torch.Tensor) else type(theta).__name__
        raise ocp.ProblemError(f"{scenario.name}: {piece} expects θ as a tensor of shape ({problem.dim},), "
                               f"got {shape}")
    return _bridged(problem, piece, theta)


def compiled(problem, piece: str) -> torch_bridge.CompiledFunction:
    """The CasADi Function the bridge evaluates for ``piece``: a loss shifted by a declared
    loss_minimum compiles its raw loss (one Function for every L*; L* is subtracted in torch)."""
    function = torch_bridge.formula(problem, piece)
    raw = function.loss if isinstance(function, ShiftedLoss) else function
    return torch_bridge.compile_formula(problem, piece, raw)


def _bridged(problem, piece, theta):
    function = torch_bridge.formula(problem, piece)
    value = torch_bridge.bridged(problem, piece, theta, compiled(problem, piece))
    return value - function.minimum if isinstance(function, ShiftedLoss) else value


def path(scenario, piece: str) -> str:
    """'native' or 'bridge' for ``piece`` of ``scenario`` (decided at the first call and kept
    while the formula is the same callable); an ocp.ProblemError for a formula that runs neither way."""
    function = torch_bridge.formula(scenario.problem, piece)
    decided = scenario.__dict__.setdefault("_torch_paths", {})
    if piece in decided and decided[piece][0] is function:
        return decided[piece][1]
    way = _in_clean_thread(lambda: _probe(scenario, piece))
    decided[piece] = (function, way)
    return way


def _in_clean_thread(task):
    """``task()`` in a new thread: torch.func transforms, no_grad and inference mode are
    thread-local, so the probe sees plain autograd whatever the caller is inside."""
    box = {}

    def run():
        try:
            box["value"] = task()
        except BaseException as exc:   # re-raised in the caller's thread
            box["error"] = exc
    worker = threading.Thread(target=run, name="lossnav-torch-probe")
    worker.start()
    worker.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def _probe(scenario, piece: str) -> str:
    problem = scenario.problem
    function = torch_bridge.formula(problem, piece)
    theta = torch.tensor(_probe_point(scenario), dtype=torch.float64, requires_grad=True)
    try:
        value = function(theta, **scenario.torch_constants(theta))
    except Exception as exc:          # classified below: CasADi-written, or an error naming the scenario
        if _written_for_casadi(exc):
            return BRIDGE
        raise ocp.ProblemError(
            f"{scenario.name}: its {piece} fails on torch tensors ({type(exc).__name__}: {_first_line(exc)}) "
            "and not because it is written in CasADi; write it with problems.ops (native torch) or with "
            "casadi functions (run through CasADi for torch)") from None
    if isinstance(value, _CASADI_TYPES):
        return BRIDGE
    _check_native(scenario, piece, theta, value)
    return NATIVE


def _probe_point(scenario) -> np.ndarray:
    """θ0 (its first dim entries where the state carries more), or ones where there is none."""
    dim = scenario.problem.dim
    start = np.asarray(getattr(scenario, "theta0", np.ones(dim)), dtype=float).reshape(-1)
    return start[:dim].copy() if start.size >= dim else np.ones(dim)


def _written_for_casadi(exc) -> bool:
    """Whether ``exc`` says the formula handed the tensor to CasADi or numpy (rule 2)."""
    for frame in traceback.extract_tb(exc.__traceback__):
        filename = os.path.abspath(frame.filename)
        if filename.startswith(_CASADI_DIR + os.sep):
            return True
        if filename == _TORCH_TENSOR_FILE and frame.name == "__array__":
            return True
    return isinstance(exc, TypeError) and bool(_CASADI_OPERAND.search(str(exc)))


def _check_native(scenario, piece, theta, value) -> None:
    """Rule 1: a connected tensor of the right shape that agrees with CasADi, else rule 3."""
    problem = scenario.problem
    shape = torch_bridge.output_shape(problem, piece)
    where = f"{scenario.name}: its {piece} on torch tensors"
    if not isinstance(value, torch.Tensor):
        raise ocp.ProblemError(f"{where} returns {type(value).__name__}, not a tensor; write it with "
                               "problems.ops (native torch) or casadi functions (run through CasADi)")
    if (value.numel() != 1) if piece == "loss" else (tuple(value.shape) != shape):
        raise ocp.ProblemError(f"{where} has shape {tuple(value.shape)}, expected {shape}")
    if value.grad_fn is None and _depends_on_theta(problem, piece):
        raise ocp.ProblemError(f"{where} is not connected to θ by autograd (a detach, .item() or numpy "
                               "step?): its gradient would be lost")
    reference = _casadi_value(problem, piece, theta.detach().numpy())
    native = value.detach().reshape(-1).numpy()
    gap = float(np.abs(native - reference).max())
    if not gap <= AGREEMENT * max(1.0, float(np.abs(reference).max())):
        raise ocp.ProblemError(f"{where} disagrees with the same formula on CasADi values at θ0 (max "
                               f"difference {gap:.3g}); the engine and the torch rules would see different "
                               "problems")


def _casadi_value(problem, piece, point) -> np.ndarray:
    """The formula at ``point`` on numeric CasADi values (DM: no symbolic graph, so a large
    constant costs no compile), flat in row-major order; through the compiled Function for a
    formula that needs symbols."""
    function = torch_bridge.formula(problem, piece)
    constants = {key: casadi.DM(np.asarray(problem.constants[key], dtype=float).reshape(shape))
                 for key, shape in torch_bridge.constant_shapes(problem)}
    try:
        value = function(casadi.DM(point), **constants)
        if isinstance(value, (casadi.SX, casadi.MX)):
            value = casadi.evalf(value)
        return np.asarray(casadi.DM(value).full(), dtype=float).reshape(-1)
    except Exception:   # e.g. casadi.gradient inside the formula: symbols only; the same value compiled
        tensor = torch.as_tensor(point, dtype=torch.float64)
        return _bridged(problem, piece, tensor).detach().reshape(-1).numpy()


def _depends_on_theta(problem, piece) -> bool:
    """Whether the formula depends on θ at all (structurally, in CasADi)."""
    function = compiled(problem, piece)
    return bool(casadi.depends_on(function.outputs[0], function.inputs[0]))


def _first_line(exc) -> str:
    lines = str(exc).strip().splitlines()
    return " ".join(lines[0].split()) if lines else ""
