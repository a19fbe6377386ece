"""The figure of a network's optimal path against the learning rules' paths (issue 25).

Left: every path projected on the top two principal directions of the optimal path's
displacement θ(t) − θ0 (the right singular vectors of its samples, numpy's SVD: a path in
D = 5,000 dimensions moves mostly in a few); right: the training loss L(θ(t)) along each path.
"""
from __future__ import annotations

import numpy as np

from ocp.results.files import atomic_savefig


def principal_directions(reference_theta, count=2) -> np.ndarray:
    """(count, D): the top right singular vectors of the reference's displacement from its start."""
    displacement = np.asarray(reference_theta, float) - np.asarray(reference_theta, float)[0]
    _, _, vt = np.linalg.svd(displacement, full_matrices=False)
    return vt[:count]


def path_comparison(path, reference, paths, loss, title=""):
    """Draw the figure to ``path`` (PNG and PDF beside it).

    reference : (t, theta) of the optimal path; paths : {label: (t, theta)} of the rules;
    loss      : θ (D,) → L(θ), a float. Returns the projected coordinates by label (for tests)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t_ref, theta_ref = (np.asarray(part, float) for part in reference)
    directions = principal_directions(theta_ref)
    origin = theta_ref[0]
    projected = {"optimal": (theta_ref - origin) @ directions.T}
    figure, (plane, losses) = plt.subplots(1, 2, figsize=(10, 4))
    plane.plot(*projected["optimal"][:, :2].T, "k-", lw=2.2, label="optimal (reference)")
    losses.plot(t_ref, [loss(theta) for theta in theta_ref], "k-", lw=2.2, label="optimal (reference)")
    for label, (t, theta) in paths.items():
        t, theta = np.asarray(t, float), np.asarray(theta, float)
        projected[label] = (theta - origin) @ directions.T
        plane.plot(*projected[label][:, :2].T, "--", lw=1.2, label=label)
        losses.plot(t, [loss(point) for point in theta], "--", lw=1.2, label=label)
    plane.set_xlabel("principal direction 1")
    plane.set_ylabel("principal direction 2")
    plane.set_title("paths in the optimal path's top two directions")
    losses.set_xlabel("t")
    losses.set_ylabel("training loss L(θ(t))")
    losses.set_yscale("log")
    losses.legend(fontsize=7)
    if title:
        figure.suptitle(title)
    try:
        figure.tight_layout()
        for suffix in (".png", ".pdf"):
            atomic_savefig(figure, f"{path}{suffix}", dpi=110)
    finally:
        plt.close(figure)
    return projected
