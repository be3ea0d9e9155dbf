"""Mutual Information Gap (Chen et al., 2018, "Isolating Sources of Disentanglement in
VAEs"), in disentanglement_lib's definition (``evaluation/metrics/mig.py``) - the default.

1. Codes and factor classes of ``num_train`` random rows (drawn ``batch_size`` at a time).
2. Each latent discretised on its own: ``num_bins`` equal-width bins over its sample range.
3. Plug-in MI (nats) of every (latent, factor) pair; plug-in entropy of every factor among
   the rows drawn (the *empirical* entropy, right on dependent subsets too).
4. Per factor: (largest MI - second largest MI) / entropy; MIG is the mean over factors.

Notes: the plug-in MI has a positive floor, so random codes score slightly above 0 (about
0.036 nats per pair for a 40-class factor, 10,000 points, 20 bins). Equal-width bins are
sensitive to outliers. Chen et al.'s original (sampled z, whole data set, shape excluded,
log-cardinality normaliser) is a *different* metric and is not what this computes.

Defined values: a latent that is constant falls in one bin and carries 0 MI. A factor that
takes a single value among the drawn rows has entropy 0 and no gap to normalise: this
raises a UserError (dlib would return NaN). With one latent there is no second-best latent:
its gap is its MI (the second best counts as 0). Keys: ``discrete_mig`` (headline, dlib's
name), ``mig_per_factor``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dis_eval.errors import UserError
from dis_eval.metrics.utils import (
    Representation,
    discrete_entropy,
    discrete_mutual_info,
    generate_batch_factor_code,
    histogram_discretize,
    require_int,
)

DEFAULTS: dict[str, Any] = {"num_train": 10000, "batch_size": 16, "num_bins": 20}
HEADLINE = "discrete_mig"


def mig_from_codes(codes: np.ndarray, factors: np.ndarray, num_bins: int = 20,
                   factor_names: tuple[str, ...] | None = None) -> dict[str, Any]:
    """MIG of (N, D) codes against (N, F) factor classes (steps 2-4 above)."""
    mi = discrete_mutual_info(histogram_discretize(codes, num_bins), factors)
    entropy = discrete_entropy(factors)
    if np.any(entropy <= 0):
        names = factor_names or tuple(str(j) for j in range(factors.shape[1]))
        bad = [names[j] for j in np.flatnonzero(entropy <= 0)]
        raise UserError(
            f"MIG is undefined: factor(s) {', '.join(bad)} take a single value among the "
            f"{factors.shape[0]} rows drawn; use more rows or a data set where they vary"
        )
    sorted_mi = np.sort(mi, axis=0)[::-1]
    second = sorted_mi[1, :] if mi.shape[0] > 1 else np.zeros(mi.shape[1])
    per_factor = np.divide(sorted_mi[0, :] - second, entropy)
    return {
        "discrete_mig": float(np.mean(per_factor)),
        "mig_per_factor": per_factor.tolist(),
    }


def compute_mig(data: Any, representation: Representation,
                random_state: np.random.RandomState, **settings: Any) -> dict[str, Any]:
    """MIG of ``representation`` on ``data`` (see the module docstring)."""
    s = {**DEFAULTS, **settings}
    num_train = require_int(s, "num_train", 2)
    batch_size = require_int(s, "batch_size", 1)
    num_bins = require_int(s, "num_bins", 2)
    codes, factors = generate_batch_factor_code(data, representation, num_train, random_state,
                                                batch_size)
    return mig_from_codes(codes, factors, num_bins, tuple(data.factor_names))
