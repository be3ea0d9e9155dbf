"""Modularity and explicitness (Ridgeway & Mozer, 2018, "Learning Deep Disentangled
Embeddings With the F-Statistic Loss", Sec. 3), as implemented by disentanglement_lib
(``evaluation/metrics/modularity_explicitness.py``).

Codes/factors of ``num_train`` and ``num_test`` random rows (batches of 16).
- Modularity: MI matrix of the ``num_bins``-bin discretised training codes against the
  factors (MIG's estimator); per latent 1 - (sum of squared MI - max) / (max * (F - 1));
  latents with no MI score 0; mean over latents.
- Explicitness: codes standardised with the training mean/std; per factor a logistic
  regression (scikit-learn defaults pinned: lbfgs, C=1, 100 iterations) and its one-vs-rest
  ROC-AUC, macro-averaged over the factor's classes, on the training and the test rows;
  mean over factors.

Defined values (where dlib would crash or return NaN): a constant latent is standardised to 0
(dlib divides by a zero std); test classes missing from the training rows and classes with no
positive or no negative test row are left out of that factor's ROC-AUC average (it is
undefined for them). A factor with one value among the training rows raises a UserError.
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from dis_eval.errors import UserError
from dis_eval.metrics.utils import (
    Representation,
    discrete_mutual_info,
    histogram_discretize,
    require_int,
    train_test_codes,
)

DEFAULTS: dict[str, Any] = {"num_train": 10000, "num_test": 5000, "batch_size": 16, "num_bins": 20,
                            "n_jobs": None}
HEADLINE = "modularity_score"


def modularity(mi: np.ndarray) -> float:
    """Mean over latents of 1 - deviation from an ideal one-factor MI profile."""
    sq = np.square(mi)
    mx = np.max(sq, axis=1)
    num = np.sum(sq, axis=1) - mx
    den = mx * (sq.shape[1] - 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = 1.0 - num / den
    score[mx == 0.0] = 0.0
    return float(np.mean(score))


def _auc(y: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    ind = (y[:, None] == classes[None, :]).astype(int)
    keep = (ind.sum(axis=0) > 0) & (ind.sum(axis=0) < len(y))
    return float(roc_auc_score(ind[:, keep], proba[:, keep], average="macro"))


def explicitness_per_factor(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                            y_test: np.ndarray) -> tuple[float, float]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=1.0, solver="lbfgs", max_iter=100, tol=1e-4, fit_intercept=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x_train, y_train)
    return (_auc(y_train, clf.predict_proba(x_train), clf.classes_),
            _auc(y_test, clf.predict_proba(x_test), clf.classes_))


def modularity_explicitness_from_codes(codes: np.ndarray, factors: np.ndarray,
                                       codes_test: np.ndarray, factors_test: np.ndarray,
                                       num_bins: int = 20,
                                       factor_names: tuple[str, ...] | None = None,
                                       n_jobs: int | None = None) -> dict[str, Any]:
    """Modularity and explicitness of (N, D) codes against (N, F) factor classes."""
    from threadpoolctl import threadpool_limits

    for j in range(factors.shape[1]):
        if np.unique(factors[:, j]).size < 2:
            name = factor_names[j] if factor_names else str(j)
            raise UserError(f"explicitness needs factor {name} to take at least two values among the training rows")
    mi = discrete_mutual_info(histogram_discretize(codes, num_bins), factors)
    mean = codes.mean(axis=0)
    std = codes.std(axis=0)
    std = np.where(std > 0, std, 1.0)  # constant latent -> 0 after centring
    x_train = (codes - mean) / std
    x_test = (codes_test - mean) / std
    jobs = [(x_train, factors[:, j], x_test, factors_test[:, j]) for j in range(factors.shape[1])]
    workers = min(len(jobs), n_jobs or os.cpu_count() or 1)
    # small dense problems: one BLAS thread per fit, factors fitted in parallel threads
    with threadpool_limits(limits=1, user_api="blas"):
        if workers > 1:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                aucs = list(pool.map(lambda a: explicitness_per_factor(*a), jobs))
        else:
            aucs = [explicitness_per_factor(*a) for a in jobs]
    return {
        "modularity_score": modularity(mi),
        "explicitness_score_train": float(np.mean([a[0] for a in aucs])),
        "explicitness_score_test": float(np.mean([a[1] for a in aucs])),
    }


def compute_modularity_explicitness(data: Any, representation: Representation,
                                    random_state: np.random.RandomState,
                                    **settings: Any) -> dict[str, Any]:
    """Modularity and explicitness of ``representation`` on ``data`` (module docstring)."""
    s = {**DEFAULTS, **settings}
    codes, factors, codes_t, factors_t = train_test_codes(data, representation, random_state, s)
    num_bins = require_int(s, "num_bins", 2)
    return modularity_explicitness_from_codes(codes, factors, codes_t, factors_t, num_bins,
                                              tuple(data.factor_names), s["n_jobs"])
