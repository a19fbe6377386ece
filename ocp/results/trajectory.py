"""The solution of a discounted OCP: samples, energies, costates and the interpolant.

A trajectory is a sequence of *elements*; each holds consecutive sample points and is
exactly one polynomial in a local coordinate: the collocation polynomial in the
transcription's coordinate s (``scale > 0``: s = (t − t_a)/(scale + t − t_a), the
algebraic infinite-horizon map started at t_a) or a polynomial in t (``scale == 0``:
finite-horizon elements and the pieces carried by the policy integrator).
``traj(t)`` evaluates those polynomials, never a linear interpolation.
"""
from __future__ import annotations

import json
import zipfile
import zlib
from dataclasses import dataclass, field

import numpy as np

from ..errors import FileFormatError, OCPError
from ..nlp.collocation import lagrange_basis
from ..nlp.time_maps import element_coordinate
from . import files

ARRAY_KEYS = ("t", "theta", "velocity", "kinetic", "potential", "costate")


@dataclass
class Trajectory:
    """θ(t) with velocity, undiscounted kinetic and potential terms and current-value costate.

    ``costate`` is λ(t) = ∇V(θ(t)) (current value, i.e. without the e^{−γt} factor),
    recovered from the NLP multipliers; the optimal velocity is the minimiser of
    ℓ(t, θ, u) + λᵀu, so for the DiscountedOCP λ = −(1/η) G (θ̇ − f).
    ``elements`` is an (m, 4) table: first and last sample index, t_a and scale.
    """

    t: np.ndarray
    theta: np.ndarray
    velocity: np.ndarray
    kinetic: np.ndarray
    potential: np.ndarray
    costate: np.ndarray
    objective: float
    elements: np.ndarray
    stats: dict = field(default_factory=dict)

    def __post_init__(self):
        if np.any(np.diff(self.t) <= 0):
            raise OCPError("trajectory times must be strictly increasing")

    def __len__(self):
        return len(self.t)

    @property
    def discounted_energy(self) -> np.ndarray:
        """e^{−γ(t − t_0)}(kinetic + potential): the integrand of the objective (discounted from the
        start)."""
        gamma = self.stats.get("gamma", 0.0)
        return np.exp(-gamma * (self.t - self.t[0])) * (self.kinetic + self.potential)

    def __call__(self, t):
        """θ at times t (scalar or array) from the element polynomials."""
        t_query = np.atleast_1d(np.asarray(t, dtype=float))
        if np.any(t_query < self.t[0] - 1e-12) or np.any(t_query > self.t[-1] * (1 + 1e-12) + 1e-12):
            raise ValueError(f"times must lie in [{self.t[0]}, {self.t[-1]}]")
        first = self.t[self.elements[:, 0].astype(int)]
        which = np.clip(np.searchsorted(first, t_query, side="right") - 1, 0, len(first) - 1)
        out = np.empty((len(t_query), self.theta.shape[1]))
        for e in np.unique(which):
            i0, i1, t_a, scale = self.elements[e]
            idx = slice(int(i0), int(i1) + 1)
            mask = which == e
            nodes, _ = element_coordinate(self.t[idx], t_a, scale)
            query, _ = element_coordinate(t_query[mask], t_a, scale)
            out[mask] = lagrange_basis(nodes, query).T @ self.theta[idx]
        return out[0] if np.ndim(t) == 0 else out

    # -- persistence ---------------------------------------------------------------
    def save(self, path) -> None:
        """Write an .npz at exactly ``path`` (no extension added) with keys t, theta, velocity,
        kinetic, potential, costate, objective, elements, stats and ``checksum`` (SHA-256 of the
        others, :func:`ocp.files.array_digest`). Atomic (:func:`ocp.files.atomic_write`): a
        reader sees the previous file or the complete new one, never a partial write."""
        arrays = {key: np.asarray(getattr(self, key)) for key in ARRAY_KEYS}
        arrays.update(objective=np.float64(self.objective), elements=np.asarray(self.elements),
                      stats=np.array(json.dumps(self.stats, default=_jsonable)))
        with files.atomic_write(path, "wb") as handle:
            np.savez(handle, checksum=np.array(files.array_digest(arrays)), **arrays)

    @classmethod
    def load(cls, path) -> "Trajectory":
        """The trajectory :meth:`save` wrote at ``path``; :class:`ocp.FileFormatError` naming the
        file when it is missing, not a saved trajectory, truncated or corrupted (checksum)."""
        try:
            with np.load(path, allow_pickle=False) as data:
                contents = {key: data[key] for key in data.files}
        except FileNotFoundError:
            raise FileFormatError(f"{path} does not exist") from None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, KeyError) as exc:
            raise FileFormatError(f"{path}: not a saved lossnav trajectory, or truncated/corrupted "
                                  f"({type(exc).__name__}: {' '.join(str(exc).split())})") from None
        required = (*ARRAY_KEYS, "objective", "elements", "stats", "checksum")
        missing = [key for key in required if key not in contents]
        if missing:
            raise FileFormatError(f"{path}: not a saved lossnav trajectory (no {', '.join(missing)})")
        checksum = str(contents.pop("checksum"))
        if files.array_digest(contents) != checksum:
            raise FileFormatError(f"{path}: content does not match its checksum (corrupted); refused")
        try:
            arrays = {key: np.asarray(contents[key], dtype=float) for key in ARRAY_KEYS}
            return cls(objective=float(contents["objective"]),
                       elements=np.asarray(contents["elements"], float),
                       stats=json.loads(str(contents["stats"])), **arrays)
        except (TypeError, ValueError, OCPError) as exc:
            raise FileFormatError(f"{path}: not a valid trajectory ({' '.join(str(exc).split())})") from None

    def summary(self) -> dict:
        """A JSON-friendly summary (used by the CLI's --json)."""
        keep = ("success", "iterations", "solves", "build_time", "solve_time", "mesh", "horizon", "gamma",
                "reached_rest", "t0", "policy_from", "junction_mismatch", "mesh_refinement")
        return {
            "objective": self.objective,
            "theta0": self.theta[0].tolist(),
            "theta_final": self.theta[-1].tolist(),
            "t_final": float(self.t[-1]),
            "points": len(self.t),
            **{key: self.stats[key] for key in keep if key in self.stats},
        }

    # -- plots (ocp/plotting.py; matplotlib is imported only here) ----------------------
    def plot(self, path=None, problem=None, title: str = ""):
        """θ(t), the kinetic and potential terms and, given a 2-D ``problem`` (the
        DiscountedOCP solved), the phase plane over the loss's contours (Fig. 3). Saved to
        ``path`` when given; returns the matplotlib Figure."""
        from .plotting import plot_trajectory
        return plot_trajectory(self, path, problem=problem, title=title)

    def compare(self, other, path=None, problem=None, labels=("trajectory", "reference"), title: str = ""):
        """This trajectory against ``other`` (e.g. a learning rule against the collocation
        reference): θ(t) of both, |θ − θ_other|(t), and the phase plane for a 2-D ``problem``."""
        from .plotting import compare_trajectories
        return compare_trajectories(self, other, path, problem=problem, labels=labels, title=title)


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def concatenate(first: Trajectory, second: Trajectory) -> Trajectory:
    """Join two trajectories where ``second`` starts at the last time of ``first``."""
    drop = 1 if np.isclose(second.t[0], first.t[-1], rtol=1e-14, atol=0) else 0
    if second.t[0] < first.t[-1] and not drop:
        raise OCPError("second trajectory starts before the first ends")
    elements = np.asarray(second.elements, dtype=float).reshape(-1, 4).copy()
    if len(elements) == 0 or len(second.t) <= drop:   # nothing after first's end
        return Trajectory(objective=first.objective, elements=first.elements, stats=dict(first.stats),
                          **{key: getattr(first, key) for key in ARRAY_KEYS})
    offset = len(first.t) - drop
    elements[:, :2] += offset
    joined = {key: np.concatenate([getattr(first, key), getattr(second, key)[drop:]])
              for key in ARRAY_KEYS}
    return Trajectory(objective=first.objective, elements=np.vstack([first.elements, elements]),
                      stats=dict(first.stats), **joined)
