"""FactorVAE score (Kim & Mnih, 2018, "Disentangling by Factorising", Sec. 4), as
implemented by disentanglement_lib (``evaluation/metrics/factor_vae.py``).

1. Global variances: codes of ``num_variance_estimate`` random rows (asked in batches of 64),
   variance per latent with ddof=1.
2. Active latents: standard deviation >= ``prune_threshold`` (0.05 in the unsupervised
   study; dlib's code default is 0). Latents of zero variance are *never* active, at any
   threshold: dlib would divide 0 by 0 and numpy's ``argmin`` returns a NaN's index, so a
   collapsed latent would win every vote. This is the only deviation from dlib and it only
   matters with ``prune_threshold=0`` and a collapsed latent.
3. One vote: factor k uniform; ``batch_size`` rows sharing factor k, drawn by the data object
   (``data.sample_fixed_factor_batches``: on the full grid dlib's draw, a batch with column k
   set to the first row's value; on any other set of rows, only among present rows sharing
   it); per-latent variance (ddof=1) over the batch divided by the global variance, over
   active latents; vote (k, argmin).
4. Majority-vote classifier: each latent predicts the factor with most training votes. The
   score is the accuracy on ``num_eval`` fresh votes.

Random numbers are consumed exactly as dlib does (variance sample, training votes, then
evaluation votes; per vote ``randint(num_factors)`` then the batch), so with the same
``RandomState`` the votes - and the scores - are identical to the reference on the full grid.

Defined values: no active latent (e.g. constant codes) gives train and eval accuracy 0
(dlib's definition). A constant or random representation otherwise scores about chance
(1 / number of factors), not 0. Orientation's 40 classes include two identical images
(0 and 2*pi) and symmetric shapes, so perfect scores need not be reachable by an encoder.

Result keys: ``train_accuracy``, ``eval_accuracy`` (headline), ``num_active_latents`` (the
true count), ``vote_latent_per_factor`` (per factor, the latent most of its training votes went
to, -1 without votes: what the warnings of ``dis_eval.metrics.activity`` check). dlib reports ``num_active_dims`` = total number of latents (a bug); it is added
under that name only with ``report_dlib_fields=True`` (for parity checks).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dis_eval.metrics.utils import (
    Representation,
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


def active_latents(global_var: np.ndarray, prune_threshold: float) -> np.ndarray:
    """Latents whose standard deviation reaches the threshold; zero variance is never active."""
    return (np.sqrt(global_var) >= prune_threshold) & (global_var > 0)


def _vote_counts(batch_codes: np.ndarray, ks: np.ndarray, num_factors: int,
                 global_var: np.ndarray, active: np.ndarray) -> np.ndarray:
    """(F, D) vote counts from vote batches' codes (V, B, D) and their fixed factors (V,)."""
    local_var = np.var(batch_codes, axis=1, ddof=1)  # (V, D), same reduction as dlib's per batch
    ratio = local_var[:, active] / global_var[active]
    argmin = np.flatnonzero(active)[np.argmin(ratio, axis=1)]
    votes = np.zeros((num_factors, global_var.shape[0]), dtype=np.int64)
    np.add.at(votes, (np.asarray(ks, dtype=np.int64), argmin), 1)
    return votes


def _no_active(report_dlib_fields: bool) -> dict[str, Any]:
    result: dict[str, Any] = {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_latents": 0}
    if report_dlib_fields:
        result["num_active_dims"] = 0
    return result


def _score(train_votes: np.ndarray, eval_votes: np.ndarray, active: np.ndarray,
           report_dlib_fields: bool) -> dict[str, Any]:
    """Step 4: the majority-vote classifier's accuracies."""
    num_latents = train_votes.shape[1]
    classifier = np.argmax(train_votes, axis=0)
    cols = np.arange(num_latents)
    train_acc = np.sum(train_votes[classifier, cols]) / np.sum(train_votes)
    eval_acc = np.sum(eval_votes[classifier, cols]) / np.sum(eval_votes)
    # per factor, the latent most of its training votes went to (-1: the factor got no vote)
    vote_latent = np.where(train_votes.sum(axis=1) > 0, np.argmax(train_votes, axis=1), -1)
    result = {
        "train_accuracy": float(train_acc),
        "eval_accuracy": float(eval_acc),
        "num_active_latents": int(active.sum()),
        "vote_latent_per_factor": vote_latent.tolist(),
    }
    if report_dlib_fields:
        result["num_active_dims"] = int(num_latents)  # dlib's field: len(mask) = all latents
    return result


def factor_vae_from_codes(variance_codes: np.ndarray, train_codes: np.ndarray, train_factors: np.ndarray,
                          eval_codes: np.ndarray, eval_factors: np.ndarray, num_factors: int,
                          prune_threshold: float = 0.05,
                          report_dlib_fields: bool = False) -> dict[str, Any]:
    """FactorVAE score from arrays (steps 1-4): codes of the variance sample (N, D); codes of
    the training and evaluation vote batches (V, B, D), each batch sharing the factor given
    in ``train_factors`` / ``eval_factors`` (V,)."""
    global_var = np.var(np.asarray(variance_codes), axis=0, ddof=1)
    active = active_latents(global_var, prune_threshold)
    if not active.any():
        return _no_active(report_dlib_fields)
    train_votes = _vote_counts(np.asarray(train_codes), train_factors, num_factors, global_var, active)
    eval_votes = _vote_counts(np.asarray(eval_codes), eval_factors, num_factors, global_var, active)
    return _score(train_votes, eval_votes, active, report_dlib_fields)


def compute_factor_vae(data: Any, representation: Representation,
                       random_state: np.random.RandomState, **settings: Any) -> dict[str, Any]:
    """FactorVAE score of ``representation`` on ``data`` (see the module docstring)."""
    s = {**DEFAULTS, **settings}
    batch_size = require_int(s, "batch_size", 2)
    num_train = require_int(s, "num_train", 1)
    num_eval = require_int(s, "num_eval", 1)
    num_var = require_int(s, "num_variance_estimate", 2)
    threshold = float(s["prune_threshold"])
    report = bool(s["report_dlib_fields"])
    rep = representation

    # 1. global variances (draw order: the variance sample first, in one draw)
    var_codes = represent(rep, data.sample_positions(num_var, random_state), _VARIANCE_BATCH)
    global_var = np.var(var_codes, axis=0, ddof=1)
    # 2. active latents; zero variance is never active (no NaN may vote); none: no votes drawn
    active = active_latents(global_var, threshold)
    if not active.any():
        return _no_active(report)
    # 3. votes, drawn in dlib's order: all training votes, then all evaluation votes
    ks_train, pos_train = data.sample_fixed_factor_batches(num_train, batch_size, random_state)
    ks_eval, pos_eval = data.sample_fixed_factor_batches(num_eval, batch_size, random_state)
    train_votes = _vote_counts(represent_batches(rep, pos_train), ks_train, data.num_factors, global_var, active)
    eval_votes = _vote_counts(represent_batches(rep, pos_eval), ks_eval, data.num_factors, global_var, active)
    # 4. majority-vote classifier
    return _score(train_votes, eval_votes, active, report)
