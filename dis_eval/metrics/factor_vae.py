"""FactorVAE score (Kim & Mnih, 2018, "Disentangling by Factorising", Sec. 4), as
implemented by disentanglement_lib (``evaluation/metrics/factor_vae.py``).

1. Global variances: codes of ``num_variance_estimate`` random rows (asked in batches of 64),
   variance per latent with ddof=1.
2. Active latents: standard deviation >= ``prune_threshold`` (0.05 in the unsupervised
   study; dlib's code default is 0). Latents of zero variance are *never* active, at any
   threshold: dlib would divide 0 by 0 and numpy's ``argmin`` returns a NaN's index, so a
   collapsed latent would win every vote. This is the only deviation from dlib and it only
   matters with ``prune_threshold=0`` and a collapsed latent.
3. One vote: factor k uniform; ``batch_size`` rows sharing factor k (on the full grid: dlib's
   draw, ``sample_factors`` then column k set to the first row's value; on a dependent
   subset: drawn only among present rows sharing it); per-latent variance (ddof=1) over the
   batch divided by the global variance, over active latents; vote (k, argmin).
4. Majority-vote classifier: each latent predicts the factor with most training votes. The
   score is the accuracy on ``num_eval`` fresh votes.

Random numbers are consumed exactly as dlib does (variance sample, training votes, then
evaluation votes; per vote ``randint(num_factors)`` then ``sample_factors``), so with the same
``RandomState`` the votes - and the scores - are identical to the reference.

Defined values: no active latent (e.g. constant codes) gives train and eval accuracy 0
(dlib's definition). A constant or random representation otherwise scores about chance
(1 / number of factors), not 0. Orientation's 40 classes include two identical images
(0 and 2*pi) and symmetric shapes, so perfect scores need not be reachable by an encoder.

Result keys: ``train_accuracy``, ``eval_accuracy`` (headline), ``num_active_latents`` (the
true count). dlib reports ``num_active_dims`` = total number of latents (a bug); it is added
under that name only with ``report_dlib_fields=True`` (for parity checks).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dis_eval.metrics.fast_draws import grid_factor_batches
from dis_eval.metrics.utils import (
    Representation,
    fast_grid,
    represent,
    represent_batches,
    require_int,
)

DEFAULTS: dict[str, Any] = {
    "batch_size": 64,
    "num_train": 10000,
    "num_eval": 5000,
    "num_variance_estimate": 10000,
    "prune_threshold": 0.05,
    "report_dlib_fields": False,
}
HEADLINE = "eval_accuracy"

# dlib's _compute_variances encodes the variance sample in batches of this size.
_VARIANCE_BATCH = 64


def sample_fixed_factor_batch(data: Any, batch_size: int, factor: int,
                              random_state: np.random.RandomState) -> np.ndarray:
    """``batch_size`` factor rows sharing factor ``factor`` (dlib's draw on the full grid)."""
    if data.is_full_grid:
        factors = np.array(data.sample_factors(batch_size, random_state), dtype=np.int64)
        factors[:, factor] = factors[0, factor]
        return factors
    return np.asarray(data.sample_fixed_factor(batch_size, factor, random_state), dtype=np.int64)


def _draw_votes(data: Any, batch_size: int, num_votes: int,
                random_state: np.random.RandomState) -> tuple[np.ndarray, np.ndarray]:
    if fast_grid(data):  # the same draws, replayed in bulk (see fast_draws)
        factors, ks = grid_factor_batches(data.factor_sizes, batch_size, num_votes, random_state,
                                          lead=data.num_factors)
        rows = np.arange(num_votes)
        factors[rows, :, ks] = factors[rows, 0, ks][:, None]
    else:
        ks = np.empty(num_votes, dtype=np.int64)
        factors = np.empty((num_votes, batch_size, data.num_factors), dtype=np.int64)
        for v in range(num_votes):
            ks[v] = random_state.randint(data.num_factors)
            factors[v] = sample_fixed_factor_batch(data, batch_size, int(ks[v]), random_state)
    positions = data.factors_to_positions(factors.reshape(-1, data.num_factors))
    return ks, np.asarray(positions).reshape(num_votes, batch_size)


def _votes(rep: Representation, ks: np.ndarray, positions: np.ndarray, num_factors: int,
           global_var: np.ndarray, active: np.ndarray) -> np.ndarray:
    codes = represent_batches(rep, positions)  # (V, B, D)
    local_var = np.var(codes, axis=1, ddof=1)  # (V, D), same reduction as dlib's per batch
    ratio = local_var[:, active] / global_var[active]
    argmin = np.flatnonzero(active)[np.argmin(ratio, axis=1)]
    votes = np.zeros((num_factors, global_var.shape[0]), dtype=np.int64)
    np.add.at(votes, (ks, argmin), 1)
    return votes


def compute_factor_vae(data: Any, representation: Representation,
                       random_state: np.random.RandomState, **settings: Any) -> dict[str, Any]:
    """FactorVAE score of ``representation`` on ``data`` (see the module docstring)."""
    s = {**DEFAULTS, **settings}
    batch_size = require_int(s, "batch_size", 2)
    num_train = require_int(s, "num_train", 1)
    num_eval = require_int(s, "num_eval", 1)
    num_var = require_int(s, "num_variance_estimate", 2)
    threshold = float(s["prune_threshold"])

    # 1. global variances (draw order: the variance sample first, in one sample_factors call)
    var_factors = np.asarray(data.sample_factors(num_var, random_state), dtype=np.int64)
    rep = representation
    var_codes = represent(rep, data.factors_to_positions(var_factors), _VARIANCE_BATCH)
    global_var = np.var(var_codes, axis=0, ddof=1)
    num_latents = global_var.shape[0]
    # 2. active latents; zero variance is never active (no NaN may vote)
    active = (np.sqrt(global_var) >= threshold) & (global_var > 0)
    result: dict[str, Any] = {}
    if not active.any():
        result = {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_latents": 0}
        if s["report_dlib_fields"]:
            result["num_active_dims"] = 0
        return result

    # 3. votes, drawn in dlib's order: all training votes, then all evaluation votes
    ks_train, pos_train = _draw_votes(data, batch_size, num_train, random_state)
    ks_eval, pos_eval = _draw_votes(data, batch_size, num_eval, random_state)
    train_votes = _votes(rep, ks_train, pos_train, data.num_factors, global_var, active)
    eval_votes = _votes(rep, ks_eval, pos_eval, data.num_factors, global_var, active)

    # 4. majority-vote classifier
    classifier = np.argmax(train_votes, axis=0)
    cols = np.arange(num_latents)
    train_acc = np.sum(train_votes[classifier, cols]) / np.sum(train_votes)
    eval_acc = np.sum(eval_votes[classifier, cols]) / np.sum(eval_votes)
    result = {
        "train_accuracy": float(train_acc),
        "eval_accuracy": float(eval_acc),
        "num_active_latents": int(active.sum()),
    }
    if s["report_dlib_fields"]:
        result["num_active_dims"] = int(num_latents)  # dlib's field: len(mask) = all latents
    return result
