"""DCI: disentanglement, completeness, informativeness (Eastwood & Williams, 2018, "A
Framework for the Quantitative Evaluation of Disentangled Representations"), as implemented
by disentanglement_lib (``evaluation/metrics/dci.py``).

Codes/factors of ``num_train`` and ``num_test`` random rows (batches of 16). Per factor, a
gradient-boosted tree classifier on all latents; its (absolute) feature importances form the
(latents x factors) importance matrix R.
- disentanglement: per latent 1 - H_F(R[i, :] normalised) (entropy base = number of factors),
  weighted by the latent's share of total importance;
- completeness: per factor 1 - H_D(R[:, j] normalised) (base = number of latents), weighted by
  the factor's share;
- informativeness: the classifiers' *accuracy* (mean over factors) on the training and test
  rows. dlib computes accuracies but names them ``train_err``/``test_err`` internally; the keys
  here say what they hold: ``informativeness_train_accuracy``, ``informativeness_test_accuracy``.
  (The original paper used Lasso/random-forest regressors and reported an error.)

The tree backend is part of the metric's identity and recorded in the settings:
- ``backend="gbt"`` (default): scikit-learn's ``GradientBoostingClassifier()`` with its
  defaults, exactly what dlib fits (100 stages, depth 3, learning rate 0.1; pinned in
  ``GBT_PARAMS``). ``random_state=0`` is fixed: with all features considered at every split it
  only breaks ties between equally good splits (e.g. duplicated latents), which dlib leaves to
  numpy's global RNG. This is the slow one (one boosted model per factor, a tree per class and
  stage: orientation alone fits 40 trees a stage), so it runs on ``n_jobs`` threads (None: all
  CPUs of the machine): the factors' models in parallel and the trees of each stage in a shared
  pool, each tree with the random draw scikit-learn's sequential fit would give it, and each
  tree built by scikit-learn's own Cython tree builder without the per-tree Python validation
  (:mod:`dis_eval.metrics.parallel_boosting`). The trees, the importance matrix and the scores
  are bit-identical to scikit-learn's sequential fit and to dlib (its tie-breaking pinned the
  same way) at any thread count, ``n_jobs=1`` included. The result's ``fit`` records the
  threads, the mode, who built the trees and the scikit-learn version.
- ``backend="hist"``: ``HistGradientBoostingClassifier`` (100 iterations, depth 3, no early
  stopping, random_state 0); importance = total split gain per latent (HGB has no impurity
  importances). *Not* numerically the reference: report it under its name (its measured
  difference from ``gbt`` is in docs/metric-pitfalls.md). Faster only at large sample counts;
  at a few hundred points its per-iteration overhead (x classes) makes it slower than ``gbt``.

Defined values: constant codes get zero importances; dlib then weighs all latents/factors
equally and D = C = 0 (entropy of uniform rows). A factor with a single value among the
training rows raises a UserError.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from dis_eval.errors import UserError
from dis_eval.metrics.parallel_boosting import (
    FitInfo,
    FittedFactor,
    fit_gradient_boosting,
    resolve_threads,
)
from dis_eval.metrics.utils import Representation, require, train_test_codes

DEFAULTS: dict[str, Any] = {"num_train": 10000, "num_test": 5000, "batch_size": 16,
                            "backend": "gbt", "n_jobs": None}
HEADLINE = "disentanglement"
BACKENDS = ("gbt", "hist")


# dlib's ``GradientBoostingClassifier()``: scikit-learn's defaults, pinned so that a new
# release's defaults cannot change the metric; random_state 0 breaks split ties (docstring).
GBT_PARAMS: dict[str, Any] = {
    "loss": "log_loss", "learning_rate": 0.1, "n_estimators": 100, "subsample": 1.0,
    "max_depth": 3, "min_samples_split": 2, "min_samples_leaf": 1, "max_features": None,
    "random_state": 0}


def _fit_hist(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
              y_test: np.ndarray) -> FittedFactor:
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1, max_depth=3,
                                           early_stopping=False, random_state=0)
    model.fit(x_train, y_train)
    importance = np.zeros(x_train.shape[1])
    for stage in model._predictors:
        for tree in stage:
            nodes = tree.nodes[~tree.nodes["is_leaf"].astype(bool)]
            np.add.at(importance, nodes["feature_idx"], nodes["gain"])
    if importance.sum() > 0:
        importance = importance / importance.sum()
    return FittedFactor(importance, float(np.mean(model.predict(x_train) == y_train)),
                        float(np.mean(model.predict(x_test) == y_test)))


def _fit_hist_factors(codes: np.ndarray, factors: np.ndarray, codes_test: np.ndarray,
                      factors_test: np.ndarray, threads: int) -> tuple[list[FittedFactor], FitInfo]:
    import sklearn
    from threadpoolctl import threadpool_limits

    f = factors.shape[1]
    workers = min(f, threads)
    jobs = [(codes, factors[:, j], codes_test, factors_test[:, j]) for j in range(f)]
    # OpenMP inside each fit, shared out so that the factors' threads fill the CPUs once
    with threadpool_limits(limits=max(1, threads // workers), user_api="openmp"):
        if workers > 1:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                out = list(pool.map(lambda a: _fit_hist(*a), jobs))
        else:
            out = [_fit_hist(*a) for a in jobs]
    return out, FitInfo(threads, "factors" if workers > 1 else "sequential", sklearn.__version__)


def fit_factors(codes: np.ndarray, factors: np.ndarray, codes_test: np.ndarray,
                factors_test: np.ndarray, backend: str = "gbt", n_jobs: int | None = None,
                factor_names: tuple[str, ...] | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, FitInfo]:
    """(D, F) importances, per-factor train/test accuracies and how they were fitted; one
    classifier per factor, on ``n_jobs`` threads (None: all CPUs). ``gbt`` gives the same
    values at any thread count (:mod:`dis_eval.metrics.parallel_boosting`)."""
    require(backend in BACKENDS, f"DCI backend must be one of {BACKENDS}, got {backend!r}")
    threads = resolve_threads(n_jobs)
    f = factors.shape[1]
    for j in range(f):
        if np.unique(factors[:, j]).size < 2:
            name = factor_names[j] if factor_names else str(j)
            raise UserError(f"DCI needs factor {name} to take at least two values among the training rows")
    if backend == "gbt":
        out, info = fit_gradient_boosting(GBT_PARAMS, codes, [factors[:, j] for j in range(f)],
                                          codes_test, [factors_test[:, j] for j in range(f)],
                                          threads)
    else:
        out, info = _fit_hist_factors(codes, factors, codes_test, factors_test, threads)
    imp = np.stack([o.importance for o in out], axis=1)
    return (imp, np.array([o.train_accuracy for o in out]),
            np.array([o.test_accuracy for o in out]), info)


def disentanglement(imp: np.ndarray) -> float:
    """Importance-weighted mean over latents of 1 - entropy (base F) of each latent's row."""
    import scipy.stats

    per_code = 1.0 - scipy.stats.entropy(imp.T + 1e-11, base=imp.shape[1])
    if imp.sum() == 0.0:
        imp = np.ones_like(imp)
    weights = imp.sum(axis=1) / imp.sum()
    return float(np.sum(per_code * weights))


def completeness(imp: np.ndarray) -> float:
    """Importance-weighted mean over factors of 1 - entropy (base D) of each factor's column."""
    import scipy.stats

    per_factor = 1.0 - scipy.stats.entropy(imp + 1e-11, base=imp.shape[0])
    if imp.sum() == 0.0:
        imp = np.ones_like(imp)
    weights = imp.sum(axis=0) / imp.sum()
    return float(np.sum(per_factor * weights))


def dci_from_codes(codes: np.ndarray, factors: np.ndarray, codes_test: np.ndarray,
                   factors_test: np.ndarray, backend: str = "gbt", n_jobs: int | None = None,
                   factor_names: tuple[str, ...] | None = None) -> dict[str, Any]:
    imp, train_acc, test_acc, fit = fit_factors(codes, factors, codes_test, factors_test,
                                                backend, n_jobs, factor_names)
    if imp.shape[0] == 1:  # entropy base 1 is undefined: one latent is trivially complete
        c_score = 1.0 if imp.sum() > 0 else 0.0
    else:
        c_score = completeness(imp)
    return {
        "disentanglement": disentanglement(imp),
        "completeness": c_score,
        "informativeness_train_accuracy": float(np.mean(train_acc)),
        "informativeness_test_accuracy": float(np.mean(test_acc)),
        "importance_matrix": imp.tolist(),
        "fit": fit.to_dict(),
    }


def compute_dci(data: Any, representation: Representation,
                random_state: np.random.RandomState, **settings: Any) -> dict[str, Any]:
    """DCI of ``representation`` on ``data`` (see the module docstring)."""
    s = {**DEFAULTS, **settings}
    codes, factors, codes_t, factors_t = train_test_codes(data, representation, random_state, s)
    return dci_from_codes(codes, factors, codes_t, factors_t, str(s["backend"]), s["n_jobs"],
                          tuple(data.factor_names))
