import numpy as np
import pytest
import torch


def random_spd(rng, dim, condition):
    """A dense SPD matrix with eigenvalues log-spaced in [1/condition, 1]."""
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    eigenvalues = np.geomspace(1.0 / condition, 1.0, dim) if dim > 1 else np.array([1.0 / condition])
    return q @ np.diag(eigenvalues) @ q.T


@pytest.fixture
def rng():
    return np.random.default_rng(20251126)


def closure_for(model, inputs, targets, optimizer, sign=1.0, calls=None):
    """A torch.optim closure: zero_grad, ``sign`` × MSE of ``model`` on the batch, backward;
    ``calls`` (a list) records whether grad mode was on at each call."""
    def closure():
        if calls is not None:
            calls.append(torch.is_grad_enabled())
        optimizer.zero_grad()
        loss = sign * torch.nn.functional.mse_loss(model(inputs), targets)
        loss.backward()
        return loss
    return closure
