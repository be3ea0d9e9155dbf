"""BetaVAE score (Higgins et al., 2017, "beta-VAE", Sec. 3), as implemented by
disentanglement_lib with scikit-learn (``evaluation/metrics/beta_vae.py``,
``compute_beta_vae_sklearn``).

One point: factor k uniform; two batches of ``batch_size`` rows where pair i shares factor k;
the feature is the mean over the batch of |code(x1_i) - code(x2_i)|, the label is k.
A logistic regression is trained on ``num_train`` points and scored on ``num_eval`` fresh
ones; the score is its evaluation accuracy.

The pairs are drawn by the data object (``data.sample_paired_batches``): on the full grid
exactly dlib's draws (per point: ``randint(num_factors)``, two batches, column k of the
second overwritten by the first's); on any other set of rows the second row of each pair is
drawn among present rows sharing factor k with the first (dlib's overwrite could name rows
that do not exist).

The classifier is scikit-learn's ``LogisticRegression`` with its parameters pinned to
dlib's effective ones under scikit-learn >= 0.22 (lbfgs, C=1, 100 iterations, multinomial
loss); dlib passes the metric's ``RandomState`` to it, and so do we (lbfgs draws nothing).
Convergence warnings are silenced; ``converged`` says whether lbfgs converged.

Defined values: constant codes give all-zero features; the classifier then predicts the most
frequent training label (about chance, 1 / number of factors). Fewer than two distinct
labels among the training points raises a UserError.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from dis_eval.errors import UserError
from dis_eval.metrics.utils import Representation, represent_batches, require_int

DEFAULTS: dict[str, Any] = {"batch_size": 64, "num_train": 10000, "num_eval": 5000}
HEADLINE = "eval_accuracy"


def _pair_codes(rep: Representation, pos1: np.ndarray, pos2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes (P, B, D) of both batches of every point."""
    if getattr(rep, "batch_invariant", False):
        both = represent_batches(rep, np.concatenate([pos1, pos2], axis=0))
        c1, c2 = both[: len(pos1)], both[len(pos1):]
    else:
        # dlib asks for batch 1 then batch 2 of each point, in turn
        inter = np.stack([pos1, pos2], axis=1).reshape(-1, pos1.shape[1])
        both = represent_batches(rep, inter).reshape(len(pos1), 2, pos1.shape[1], -1)
        c1, c2 = both[:, 0], both[:, 1]
    return c1, c2


def pair_features(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Per point the mean over its batch of |code(x1_i) - code(x2_i)|: (P, B, D) -> (P, D)."""
    return np.mean(np.abs(np.asarray(first) - np.asarray(second)), axis=1)


def beta_vae_from_codes(train_first: np.ndarray, train_second: np.ndarray, train_labels: np.ndarray,
                        eval_first: np.ndarray, eval_second: np.ndarray, eval_labels: np.ndarray,
                        random_state: np.random.RandomState | None = None) -> dict[str, Any]:
    """BetaVAE score from arrays: codes (P, B, D) of the two batches of every point, where
    pair i of point p shares the factor ``labels[p]``; a logistic regression on
    :func:`pair_features` is fitted on the training points and scored on the evaluation points."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    train_features = pair_features(train_first, train_second)
    eval_features = pair_features(eval_first, eval_second)
    train_labels = np.asarray(train_labels)
    if np.unique(train_labels).size < 2:
        raise UserError(
            f"BetaVAE score needs training points of at least two factors; num_train={len(train_labels)} drew one"
        )
    model = LogisticRegression(C=1.0, solver="lbfgs", max_iter=100, tol=1e-4,
                               fit_intercept=True, random_state=random_state)
    with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(train_features, train_labels)
    train_acc = float(np.mean(model.predict(train_features) == train_labels))
    eval_acc = float(np.mean(model.predict(eval_features) == np.asarray(eval_labels)))
    return {
        "train_accuracy": train_acc,
        "eval_accuracy": eval_acc,
        "converged": bool(np.all(model.n_iter_ < model.max_iter)),
    }


def compute_beta_vae(data: Any, representation: Representation,
                     random_state: np.random.RandomState, **settings: Any) -> dict[str, Any]:
    """BetaVAE score of ``representation`` on ``data`` (see the module docstring)."""
    s = {**DEFAULTS, **settings}
    batch_size = require_int(s, "batch_size", 1)
    num_train = require_int(s, "num_train", 2)
    num_eval = require_int(s, "num_eval", 1)
    # draw order as dlib: training points, then evaluation points (fitting draws nothing)
    y_train, p1, p2 = data.sample_paired_batches(num_train, batch_size, random_state)
    train_first, train_second = _pair_codes(representation, p1, p2)
    if np.unique(y_train).size < 2:  # before drawing the evaluation points
        raise UserError(
            f"BetaVAE score needs training points of at least two factors; num_train={num_train} drew one"
        )
    y_eval, p1, p2 = data.sample_paired_batches(num_eval, batch_size, random_state)
    eval_first, eval_second = _pair_codes(representation, p1, p2)
    return beta_vae_from_codes(train_first, train_second, y_train, eval_first, eval_second, y_eval,
                               random_state)
