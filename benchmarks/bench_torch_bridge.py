"""Benchmark: what a loss written in plain CasADi costs the torch rules, against problems.ops.

Problem: ridge logistic regression L(θ) = (1/n) Σ_i softplus(−y_i x_iᵀθ) + (λ/2)|θ|² on n
seeded samples in D dimensions (λ = 0.5), once written with problems.ops (native torch) and
once in plain CasADi (``casadi.mtimes(casadi.DM(X), θ)``: through problems.torch_bridge).

What is measured, side by side in one run, per D (float64, CPU, one thread, best of 5):

* first call: the bridge's CasADi compile of L and ∇L plus the path probe (native: the probe);
* value + gradient: ``loss(θ).backward()``, the step of a first-order rule;
* HVP: ``torch.autograd.grad(∇L·v, θ)`` with ∇L from ``create_graph=True`` (double backward);
* vmap of the gradient over a batch of 32 points (``torch.func.vmap(torch.func.grad(L))``);
* exact Hessian as learning_rules computes it (``is_grads_batched``): the dense-Jacobian path.

The ratios bridge/native are the price of writing the loss in CasADi. The two agree to
round-off (the largest relative gap of value, gradient and HVP is printed too). This script
reports; it never fails.

Usage: ``python benchmarks/bench_torch_bridge.py [--quick]`` (``--quick``: D = 3 and 30 only).
"""
from __future__ import annotations

import argparse
import time

import casadi
import numpy as np
import torch

import ocp
from learning_rules import curvature
from problems import Scenario, ops

SAMPLES = 200
REPEATS = 5


def ops_loss(theta, X, Y, lam):
    return ops.sum(ops.softplus(-Y * (X @ theta))) / X.shape[0] + 0.5 * lam * ops.dot(theta, theta)


def casadi_loss_for(X, Y):
    def casadi_loss(theta, lam):
        margins = casadi.DM(Y) * casadi.mtimes(casadi.DM(X), theta)
        return casadi.sum1(casadi.log1p(casadi.exp(-margins))) / X.shape[0] + 0.5 * lam * casadi.sumsqr(theta)
    return casadi_loss


def scenario(loss, dim, constants):
    class Ridge(Scenario):
        name = "bench_ridge"
        defaults = {"gamma": 1.0}

        def build(self, params):
            return ocp.DiscountedOCP(dim=dim, loss=loss, gamma=params["gamma"], constants=constants)

        def default_theta0(self):
            return np.full(dim, 0.1)
    return Ridge()


def best(task) -> float:
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        task()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(case, theta, direction, batch) -> dict:
    loss = case.torch_loss
    start = time.perf_counter()
    loss(theta)
    first = time.perf_counter() - start

    def value_and_gradient():
        leaf = theta.clone().requires_grad_(True)
        loss(leaf).backward()

    def hvp():
        leaf = theta.clone().requires_grad_(True)
        (gradient,) = torch.autograd.grad(loss(leaf), leaf, create_graph=True)
        return torch.autograd.grad(gradient @ direction, leaf)[0]

    def exact_hessian():
        leaf = theta.clone().requires_grad_(True)
        _, grads = curvature.closure_with_graph(lambda: loss(leaf), [leaf])
        return curvature.exact_hessian(grads, [leaf])

    vmapped = torch.func.vmap(torch.func.grad(loss))
    leaf = theta.clone().requires_grad_(True)
    value = loss(leaf)
    (gradient,) = torch.autograd.grad(value, leaf, create_graph=True)
    return {"first": first, "grad": best(value_and_gradient), "hvp": best(hvp),
            "vmap": best(lambda: vmapped(batch)), "hessian": best(exact_hessian),
            "values": (value.detach(), gradient.detach(), hvp())}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="D = 3 and 30 only")
    dims = (3, 30) if parser.parse_args().quick else (3, 30, 300)
    torch.set_num_threads(1)
    print(f"ridge logistic, n = {SAMPLES}, float64, CPU, 1 thread; times in ms (best of {REPEATS}), "
          "ratio = bridge / native")
    print(f"{'D':>5} {'what':<22} {'native':>10} {'bridge':>10} {'ratio':>8}")
    for dim in dims:
        rng = np.random.default_rng(dim)
        X = rng.normal(size=(SAMPLES, dim)) / np.sqrt(dim)
        Y = np.where(rng.uniform(size=SAMPLES) < 0.5, 1.0, -1.0)
        native = scenario(ops_loss, dim, {"X": X, "Y": Y, "lam": 0.5})
        bridged = scenario(casadi_loss_for(X, Y), dim, {"lam": 0.5})
        theta = torch.tensor(rng.normal(size=dim), dtype=torch.float64)
        direction = torch.tensor(rng.normal(size=dim), dtype=torch.float64)
        batch = torch.tensor(rng.normal(size=(32, dim)), dtype=torch.float64)
        results = [measure(case, theta, direction, batch) for case in (native, bridged)]
        for key, label in (("first", "first call (compile)"), ("grad", "value + gradient"),
                           ("hvp", "HVP (double backward)"), ("vmap", "vmap grad, batch 32"),
                           ("hessian", "exact Hessian")):
            a, b = results[0][key] * 1e3, results[1][key] * 1e3
            print(f"{dim:>5} {label:<22} {a:>10.3f} {b:>10.3f} {b / a:>8.2f}")
        gaps = [float((x - y).abs().max() / y.abs().max()) for x, y in zip(results[1]["values"],
                                                                          results[0]["values"], strict=True)]
        print(f"{dim:>5} {'max relative gap':<22} {max(gaps):>10.1e}")


if __name__ == "__main__":
    main()
