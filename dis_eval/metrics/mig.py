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

The gap of step 4 has one definition, :func:`mig_gaps`, which the MI heatmap
(``dis_eval.plots.mi_heatmap``) uses too, so the figure's gaps are MIG's.

Defined values: a latent that is constant falls in one bin and carries 0 MI. A factor that
takes a single value among the drawn rows has entropy 0 and no gap to normalise: its gap is
undefined (NaN in :func:`mig_gaps`), and the score raises a UserError (dlib would return
NaN). With one latent there is no second-best latent: the second best counts as 0, so the
gap is that latent's MI over the entropy (dlib would fail on the missing row). Keys:
``discrete_mig`` (headline, dlib's name), ``mig_per_factor``, and per factor the latent with the
largest MI and that MI (``top_latent_per_factor``, ``top_mi_per_factor``: what the warnings of
``dis_eval.metrics.activity`` check against the latents' rates).
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


def mig_gaps(mi: np.ndarray, entropy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Step 4 per factor, from the MI matrix (D latents, F factors) and the entropies (F,).

    Returns the normalised gaps (F,) = (largest MI - second largest MI) / entropy, NaN where
    the entropy is 0, and the two latents holding the largest and second largest MI (F, 2;
    ties go to the lower latent; -1 where there is no second latent, whose MI counts as 0).
    """
    mi = np.asarray(mi, dtype=np.float64)
    entropy = np.asarray(entropy, dtype=np.float64)
    order = np.argsort(-mi, axis=0, kind="stable")
    ranked = np.take_along_axis(mi, order, axis=0)
    if mi.shape[0] > 1:
        second, top2 = ranked[1], order[:2].T
    else:
        second = np.zeros(mi.shape[1])
        top2 = np.stack([order[0], np.full(mi.shape[1], -1)], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        gaps = np.where(entropy > 0, np.divide(ranked[0] - second, entropy), np.nan)
    return gaps, top2


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
    per_factor, top2 = mig_gaps(mi, entropy)
    return {
        "discrete_mig": float(np.mean(per_factor)),
        "mig_per_factor": per_factor.tolist(),
        "top_latent_per_factor": top2[:, 0].tolist(),
        "top_mi_per_factor": mi[top2[:, 0], np.arange(mi.shape[1])].tolist(),
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
