"""Unsupervised scores of disentanglement_lib (``evaluation/metrics/unsupervised_metrics.py``,
Locatello et al., 2019, Sec. 4): they use the codes only, not the factors.

Codes of ``num_train`` random rows (batches of 16); C = their covariance (ddof=1).
- ``gaussian_total_correlation``: KL(N(0, C) || N(0, diag C)) = (sum log C_ii - log det C) / 2.
- ``gaussian_wasserstein_correlation``: squared 2-Wasserstein distance between N(0, C) and
  N(0, diag C) = 2 tr C - 2 tr sqrt(C diag(C)); ``..._norm`` divides it by tr C.
- ``mutual_info_score``: mean plug-in MI (nats) over pairs of distinct latents of the
  ``num_bins``-bin discretised codes.

Defined values (dlib returns NaN or inf here): latents of zero variance are left out of the
two Gaussian scores (they correlate with nothing); with fewer than one varying latent both
are 0, and so is the normalised Wasserstein score. With one latent there is no pair:
``mutual_info_score`` is 0. ``num_varying_latents`` says how many latents entered.
Headline: ``gaussian_total_correlation`` (lower is more factorised).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dis_eval.metrics.utils import (
    Representation,
    discrete_mutual_info,
    generate_batch_factor_code,
    histogram_discretize,
    require_int,
)

DEFAULTS: dict[str, Any] = {"num_train": 10000, "batch_size": 16, "num_bins": 20}
HEADLINE = "gaussian_total_correlation"


def gaussian_total_correlation(cov: np.ndarray) -> float:
    return float(0.5 * (np.sum(np.log(np.diag(cov))) - np.linalg.slogdet(cov)[1]))


def gaussian_wasserstein_correlation(cov: np.ndarray) -> float:
    import scipy.linalg

    sqrtm = scipy.linalg.sqrtm(cov * np.expand_dims(np.diag(cov), axis=1))
    return float(np.real(2 * np.trace(cov) - 2 * np.trace(sqrtm)))


def unsupervised_from_codes(codes: np.ndarray, num_bins: int = 20) -> dict[str, Any]:
    d = codes.shape[1]
    varying = np.var(codes, axis=0) > 0
    out: dict[str, Any] = {"num_varying_latents": int(varying.sum())}
    if varying.any():
        # same memory layout as dlib's (latents, points) transpose: bit-identical covariance
        sel = codes if varying.all() else np.ascontiguousarray(codes[:, varying])
        cov = np.atleast_2d(np.cov(np.ascontiguousarray(sel).T))
        out["gaussian_total_correlation"] = gaussian_total_correlation(cov)
        out["gaussian_wasserstein_correlation"] = gaussian_wasserstein_correlation(cov)
        out["gaussian_wasserstein_correlation_norm"] = (
            out["gaussian_wasserstein_correlation"] / float(np.sum(np.diag(cov))))
    else:
        out["gaussian_total_correlation"] = 0.0
        out["gaussian_wasserstein_correlation"] = 0.0
        out["gaussian_wasserstein_correlation_norm"] = 0.0
    if d > 1:
        disc = histogram_discretize(codes, num_bins)
        mi = discrete_mutual_info(disc, disc)
        np.fill_diagonal(mi, 0)
        out["mutual_info_score"] = float(np.sum(mi) / (d**2 - d))
    else:
        out["mutual_info_score"] = 0.0
    return out


def compute_unsupervised(data: Any, representation: Representation,
                         random_state: np.random.RandomState, **settings: Any) -> dict[str, Any]:
    """Unsupervised scores of ``representation`` on ``data`` (see the module docstring)."""
    s = {**DEFAULTS, **settings}
    num_train = require_int(s, "num_train", 2)
    batch_size = require_int(s, "batch_size", 1)
    num_bins = require_int(s, "num_bins", 2)
    codes, _ = generate_batch_factor_code(data, representation, num_train, random_state, batch_size)
    return unsupervised_from_codes(codes, num_bins)
