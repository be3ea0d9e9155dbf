"""Interventional Robustness Score (Suter et al., 2019, "Robustly Disentangled Causal
Mechanisms", Sec. 4), as implemented by disentanglement_lib (``evaluation/metrics/irs.py``;
settings of its ``config/sample/irs`` gin file: 10,000 points, batches of 16, 20 bins,
``diff_quantile`` 0.99).

Codes/factors of ``num_train`` random rows. As in dlib the *factors* are discretised with the
``num_bins``-bin histogram discretiser (so orientation's 40 classes are merged into 20 bins).
Latents of zero variance are dropped. For each factor i and each of its (binned) values,
the ``diff_quantile`` quantile of |z - E[z | g_i]| over the rows with that value; averaged
over values, divided by each latent's largest deviation from its mean; IRS matrix
= 1 - that. Per latent the best factor's entry; the score is their mean weighted by the
latents' largest deviations.

Defined values: no varying latent gives IRS 0 (dlib's definition). Keys: ``IRS`` (headline),
``num_active_latents`` (the true count). dlib's ``num_active_dims`` is the *sum of the active
codes' values* (a bug); it is reported under that name only with ``report_dlib_fields=True``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dis_eval.metrics.utils import (
    Representation,
    generate_batch_factor_code,
    histogram_discretize,
    require,
    require_int,
)

DEFAULTS: dict[str, Any] = {"num_train": 10000, "batch_size": 16, "num_bins": 20,
                            "diff_quantile": 0.99, "report_dlib_fields": False}
HEADLINE = "IRS"


def _irs_score(codes: np.ndarray, factors_discrete: np.ndarray,
               diff_quantile: float = 0.99) -> dict[str, Any]:
    """IRS of (N, D') varying codes against (N, F) discrete factors."""
    num_lat = codes.shape[1]
    max_dev = np.max(np.abs(codes - codes.mean(axis=0)), axis=0)
    cum = np.zeros((num_lat, factors_discrete.shape[1]))
    for i in range(factors_discrete.shape[1]):
        values = np.unique(factors_discrete[:, i])
        for v in values:
            match = factors_discrete[:, i] == v
            group = codes[match, :]
            diffs = np.abs(group - np.mean(group, axis=0))
            cum[:, i] += np.percentile(diffs, q=diff_quantile * 100, axis=0)
        cum[:, i] /= values.shape[0]
    irs_matrix = 1.0 - cum / max_dev[:, None]
    per_latent = irs_matrix.max(axis=1)
    if np.sum(max_dev) > 0.0:
        score = np.average(per_latent, weights=max_dev)
    else:
        score = np.mean(per_latent)
    return {"IRS": float(score), "irs_per_latent": per_latent.tolist()}


def irs_from_codes(codes: np.ndarray, factors: np.ndarray, num_bins: int = 20,
                   diff_quantile: float = 0.99, report_dlib_fields: bool = False) -> dict[str, Any]:
    """IRS of (N, D) codes against (N, F) factor classes: latents of zero variance dropped, the
    factors discretised into ``num_bins`` equal-width bins, then the score (module docstring)."""
    codes = np.asarray(codes)
    active = codes.var(axis=0) > 0.0
    if not active.any():
        out: dict[str, Any] = {"IRS": 0.0, "irs_per_latent": [], "num_active_latents": 0}
    else:
        out = _irs_score(codes[:, active], histogram_discretize(factors, num_bins), diff_quantile)
        out["num_active_latents"] = int(active.sum())
    if report_dlib_fields:
        out["num_active_dims"] = float(np.sum(codes[:, active]))  # dlib: sum of the values
    return out


def compute_irs(data: Any, representation: Representation,
                random_state: np.random.RandomState, **settings: Any) -> dict[str, Any]:
    """IRS of ``representation`` on ``data`` (see the module docstring)."""
    s = {**DEFAULTS, **settings}
    num_train = require_int(s, "num_train", 2)
    batch_size = require_int(s, "batch_size", 1)
    num_bins = require_int(s, "num_bins", 2)
    q = float(s["diff_quantile"])
    require(0.0 < q <= 1.0, f"IRS diff_quantile must be in (0, 1], got {q}")
    codes, factors = generate_batch_factor_code(data, representation, num_train, random_state, batch_size)
    return irs_from_codes(codes, factors, num_bins, q, bool(s["report_dlib_fields"]))
