"""Sphere-embedding math of the architecture map: stress majorization on the unit
sphere, pairwise distances and the kernel density drawn under the points (numpy only).
"""

from __future__ import annotations

import numpy as np


def _pairwise(features: np.ndarray) -> np.ndarray:
    sq = np.sum(features ** 2, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * features @ features.T, 0.0)
    np.fill_diagonal(d2, 0.0)
    return np.sqrt(d2)


def _normalize_rows(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    small = norm[:, 0] < 1e-9
    if small.any():
        x = x.copy()
        x[small] = rng.normal(size=(int(small.sum()), 3))
        norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / norm


def _sphere_embedding(features: np.ndarray, *, iterations: int, seed: int
                      ) -> tuple[np.ndarray, float]:
    """Place points on the unit sphere so that great-circle distances follow param distances.

    Target: the largest param distance maps to half a great circle (``pi``), others in
    proportion. Start: the first three principal components, centered, pushed onto the
    sphere. Then spherical stress majorization: each step is SMACOF's Guttman transform on
    chord lengths (``2 sin(theta / 2)``) followed by a projection back onto the sphere.
    Returns the points and the relative stress ``sum (d - t)^2 / sum t^2`` of the chords.
    """
    n = features.shape[0]
    rng = np.random.default_rng(seed)
    if n == 0:
        return np.zeros((0, 3)), 0.0
    dist = _pairwise(features)
    top = float(dist.max())
    if n == 1 or top <= 0:
        return np.tile([0.0, 0.0, 1.0], (n, 1)), 0.0
    target = 2.0 * np.sin(np.pi * dist / top / 2.0)
    centered = features - features.mean(axis=0)
    u, s, _ = np.linalg.svd(centered, full_matrices=False)
    init = np.zeros((n, 3))
    k = min(3, u.shape[1])
    init[:, :k] = u[:, :k] * s[:k]
    init += 1e-3 * rng.normal(size=init.shape) * max(float(s[0]), 1e-9)
    x = _normalize_rows(init, rng)
    for _ in range(iterations):
        chord = np.sqrt(np.maximum(2.0 - 2.0 * (x @ x.T), 0.0))
        ratio = np.where(chord > 1e-12, target / np.maximum(chord, 1e-12), 0.0)
        np.fill_diagonal(ratio, 0.0)
        guttman = (ratio.sum(axis=1, keepdims=True) * x - ratio @ x) / n
        x = _normalize_rows(guttman, rng)
    chord = np.sqrt(np.maximum(2.0 - 2.0 * (x @ x.T), 0.0))
    stress = float(np.sum((chord - target) ** 2) / max(np.sum(target ** 2), 1e-300))
    return x, stress


def _sphere_density(xyz: np.ndarray, grid: np.ndarray, kappa: float = 12.0) -> np.ndarray:
    """Von Mises-Fisher kernel density of the points at the grid's unit vectors."""
    if xyz.shape[0] == 0:
        return np.zeros(grid.shape[:-1])
    flat = grid.reshape(-1, 3)
    density = np.exp(kappa * (flat @ xyz.T - 1.0)).sum(axis=1)
    return density.reshape(grid.shape[:-1])
