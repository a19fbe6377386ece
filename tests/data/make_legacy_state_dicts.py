"""Made tests/data/legacy_state_dicts.pt once, from main at 3256b13 (the per-parameter layout:
counters and RecedingHorizon's plan in the first parameter's state), for
tests/test_optim_contract.py::test_a_state_dict_of_the_per_parameter_layout_loads.

    PYTHONPATH=<a checkout of 3256b13> python tests/data/make_legacy_state_dicts.py
"""
import pathlib
import warnings

import torch

from learning_rules import (
    Ballistic,
    BeliefAdam,
    NaturalGradient,
    OptimalQuadratic,
    RecedingHorizon,
    WeightUncertainty,
)

FACTORIES = {
    "ballistic": lambda p: Ballistic(p, lr=1e-3),
    "natural_gradient": lambda p: NaturalGradient(p, lr=1e-3, metric="fisher"),
    "optimal_quadratic": lambda p: OptimalQuadratic(p, lr=0.1, damping=1.0, refresh_interval=2),
    "belief_adam": lambda p: BeliefAdam(p, lr=3e-3, gamma=1e-3),
    "weight_uncertainty": lambda p: WeightUncertainty(p, lr=0.5, refresh_interval=2),
    "mpc": lambda p: RecedingHorizon(p, lr=5e-3, metric="gradient_squares", replan_interval=4,
                                     trust_radius=0.05),
}


def run(name, steps=5, poisoned=(2,)):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).double()
    inputs, targets = torch.randn(16, 6, dtype=torch.float64), torch.randint(0, 3, (16,))
    optimizer = FACTORIES[name](model.parameters())
    for step in range(steps):
        scale = float("nan") if step in poisoned else 1.0

        def closure(scale=scale):
            optimizer.zero_grad()
            loss = scale * torch.nn.functional.cross_entropy(model(inputs), targets)
            loss.backward()
            return loss
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            optimizer.step(closure)
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "skipped": optimizer.skipped_steps}


if __name__ == "__main__":
    path = pathlib.Path(__file__).with_name("legacy_state_dicts.pt")
    torch.save({name: run(name) for name in FACTORIES}, path)
    print("wrote", path)
