"""SAP score (Kumar et al., 2018, "Variational Inference of Disentangled Latent Concepts from
Unlabeled Observations", Sec. 3), as implemented by disentanglement_lib
(``evaluation/metrics/sap_score.py``).

Codes/factors of ``num_train`` and ``num_test`` random rows (batches of 16). Discrete
factors (the study default): per (latent, factor), a linear SVM (``LinearSVC(C=0.01,
class_weight="balanced")``) on that one latent, its test accuracy; continuous factors:
squared correlation. The score is the mean over factors of the gap between the two best
latents.

The SVM's parameters are pinned to what dlib's ``LinearSVC(C=0.01, class_weight="balanced")``
resolves to under scikit-learn >= 1.3 with one feature (primal solver, squared hinge, l2,
tol 1e-4, 1,000 iterations); the primal solver draws no random numbers.

Defined values: a constant latent gets the accuracy of a constant prediction; one latent
only has no second best (counted as 0). A factor with a single value among the training rows
raises a UserError (no classifier can be trained). The (latent, factor) fits run in
parallel threads (``n_jobs``; liblinear releases the GIL); each fit is deterministic, so the
score does not depend on ``n_jobs``. Keys: ``SAP_score`` (headline, dlib's name),
``score_matrix``.
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from dis_eval.errors import UserError
from dis_eval.metrics.utils import Representation, train_test_codes

DEFAULTS: dict[str, Any] = {"num_train": 10000, "num_test": 5000, "batch_size": 16,
                            "continuous_factors": False, "n_jobs": None}
HEADLINE = "SAP_score"


def score_matrix(codes: np.ndarray, factors: np.ndarray, codes_test: np.ndarray,
                 factors_test: np.ndarray, continuous: bool,
                 factor_names: tuple[str, ...] | None = None, n_jobs: int | None = None) -> np.ndarray:
    """(D, F) matrix of per-latent predictability of each factor."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC

    d, f = codes.shape[1], factors.shape[1]
    m = np.zeros((d, f))
    for j in range(f):
        if not continuous and np.unique(factors[:, j]).size < 2:
            name = factor_names[j] if factor_names else str(j)
            raise UserError(f"SAP needs factor {name} to take at least two values among the training rows")

    def cell(ij: tuple[int, int]) -> float:
        i, j = ij
        mu, y = codes[:, i], factors[:, j]
        if continuous:
            cov = np.cov(mu, y, ddof=1)
            return cov[0, 1] ** 2 / (cov[0, 0] * cov[1, 1]) if cov[0, 0] > 1e-12 else 0.0
        clf = LinearSVC(C=0.01, class_weight="balanced", penalty="l2",
                        loss="squared_hinge", dual=False, tol=1e-4, max_iter=1000)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(mu[:, None], y)
        return float(np.mean(clf.predict(codes_test[:, i][:, None]) == factors_test[:, j]))

    cells = [(i, j) for i in range(d) for j in range(f)]
    workers = min(len(cells), n_jobs or os.cpu_count() or 1)
    if workers > 1 and not continuous:  # liblinear trains without the GIL
        with ThreadPoolExecutor(max_workers=workers) as pool:
            values = list(pool.map(cell, cells))
    else:
        values = [cell(c) for c in cells]
    for (i, j), v in zip(cells, values, strict=True):
        m[i, j] = v
    return m


def sap_from_codes(codes: np.ndarray, factors: np.ndarray, codes_test: np.ndarray,
                   factors_test: np.ndarray, continuous: bool = False,
                   factor_names: tuple[str, ...] | None = None, n_jobs: int | None = None) -> dict[str, Any]:
    """SAP of (N, D) codes against (N, F) factor classes (training and test rows): the mean over
    factors of the gap between the two most predictive latents of :func:`score_matrix`."""
    m = score_matrix(codes, factors, codes_test, factors_test, continuous, factor_names, n_jobs)
    srt = np.sort(m, axis=0)
    second = srt[-2, :] if m.shape[0] > 1 else np.zeros(m.shape[1])
    return {"SAP_score": float(np.mean(srt[-1, :] - second)), "score_matrix": m.tolist()}


def compute_sap(data: Any, representation: Representation,
                random_state: np.random.RandomState, **settings: Any) -> dict[str, Any]:
    """SAP score of ``representation`` on ``data`` (see the module docstring)."""
    s = {**DEFAULTS, **settings}
    codes, factors, codes_t, factors_t = train_test_codes(data, representation, random_state, s)
    return sap_from_codes(codes, factors, codes_t, factors_t, bool(s["continuous_factors"]),
                          tuple(data.factor_names), s["n_jobs"])
