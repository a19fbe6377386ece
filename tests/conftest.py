import numpy as np
import pytest


def random_spd(rng, dim, condition):
    """A dense SPD matrix with eigenvalues log-spaced in [1/condition, 1]."""
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    eigenvalues = np.geomspace(1.0 / condition, 1.0, dim) if dim > 1 else np.array([1.0 / condition])
    return q @ np.diag(eigenvalues) @ q.T


@pytest.fixture
def rng():
    return np.random.default_rng(20251126)
