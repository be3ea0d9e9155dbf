"""BetaVAE score (Higgins et al., 2017, "beta-VAE", Sec. 3), as implemented by
disentanglement_lib with scikit-learn (``evaluation/metrics/beta_vae.py``,
``compute_beta_vae_sklearn``).

One point: factor k uniform; two batches of ``batch_size`` rows where pair i shares factor k;
the feature is the mean over the batch of |code(x1_i) - code(x2_i)|, the label is k.
A logistic regression is trained on ``num_train`` points and scored on ``num_eval`` fresh
ones; the score is its evaluation accuracy.

Random draws follow dlib exactly on the full grid (per point: ``randint(num_factors)``, two
``sample_factors`` calls, column k of the second batch overwritten by the first's). On a
dependent subset the second row of each pair is drawn among present rows sharing factor k
with the first (dlib's overwrite could name rows that do not exist).

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
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from dis_eval.errors import UserError
from dis_eval.metrics.fast_draws import replay_pattern
from dis_eval.metrics.utils import Representation, fast_grid, represent_batches, require_int

DEFAULTS: dict[str, Any] = {"batch_size": 64, "num_train": 10000, "num_eval": 5000}
HEADLINE = "eval_accuracy"


class _SharedFactorSampler:
    """Draw, for given rows, partner rows sharing factor k among the present rows."""

    def __init__(self, data: Any) -> None:
        self.classes = np.asarray(data.classes, dtype=np.int64)
        self._groups: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def partners(self, positions: np.ndarray, k: int, rs: np.random.RandomState) -> np.ndarray:
        if k not in self._groups:
            order = np.argsort(self.classes[:, k], kind="stable")
            size = int(self.classes[:, k].max()) + 1
            counts = np.bincount(self.classes[:, k], minlength=size)
            starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
            self._groups[k] = (order, starts, counts)
        order, starts, counts = self._groups[k]
        values = self.classes[positions, k]
        return order[starts[values] + rs.randint(counts[values])]


def _draw_pairs(data: Any, batch_size: int, num_points: int, rs: np.random.RandomState,
                sampler: _SharedFactorSampler | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    nf = data.num_factors
    if sampler is None and fast_grid(data):  # dlib's draws, replayed in bulk (see fast_draws)
        cols = [(s, batch_size) for s in data.factor_sizes]
        vals = replay_pattern(rs, [(nf, 1)] + cols + cols, num_points)
        labels = vals[0][:, 0]
        f1 = np.stack(vals[1: 1 + nf], axis=2)
        f2 = np.stack(vals[1 + nf:], axis=2)
        rows = np.arange(num_points)
        f2[rows, :, labels] = f1[rows, :, labels]
    elif sampler is None:  # full grid through the data object: dlib's draws, call by call
        labels = np.empty(num_points, dtype=np.int64)
        f1 = np.empty((num_points, batch_size, nf), dtype=np.int64)
        f2 = np.empty_like(f1)
        for i in range(num_points):
            k = rs.randint(nf)
            labels[i] = k
            f1[i] = data.sample_factors(batch_size, rs)
            f2[i] = data.sample_factors(batch_size, rs)
            f2[i][:, k] = f1[i][:, k]
    else:
        labels = np.empty(num_points, dtype=np.int64)
        pos1 = np.empty((num_points, batch_size), dtype=np.int64)
        pos2 = np.empty((num_points, batch_size), dtype=np.int64)
        for i in range(num_points):
            k = rs.randint(nf)
            labels[i] = k
            pos1[i] = data.sample_positions(batch_size, rs)
            pos2[i] = sampler.partners(pos1[i], k, rs)
        return labels, pos1, pos2
    pos1 = np.asarray(data.factors_to_positions(f1.reshape(-1, nf))).reshape(num_points, batch_size)
    pos2 = np.asarray(data.factors_to_positions(f2.reshape(-1, nf))).reshape(num_points, batch_size)
    return labels, pos1, pos2


def _features(rep: Representation, pos1: np.ndarray, pos2: np.ndarray) -> np.ndarray:
    if getattr(rep, "batch_invariant", False):
        both = represent_batches(rep, np.concatenate([pos1, pos2], axis=0))
        c1, c2 = both[: len(pos1)], both[len(pos1):]
    else:
        # dlib asks for batch 1 then batch 2 of each point, in turn
        inter = np.stack([pos1, pos2], axis=1).reshape(-1, pos1.shape[1])
        both = represent_batches(rep, inter).reshape(len(pos1), 2, pos1.shape[1], -1)
        c1, c2 = both[:, 0], both[:, 1]
    return np.mean(np.abs(c1 - c2), axis=1)


def compute_beta_vae(data: Any, representation: Representation,
                     random_state: np.random.RandomState, **settings: Any) -> dict[str, Any]:
    """BetaVAE score of ``representation`` on ``data`` (see the module docstring)."""
    s = {**DEFAULTS, **settings}
    batch_size = require_int(s, "batch_size", 1)
    num_train = require_int(s, "num_train", 2)
    num_eval = require_int(s, "num_eval", 1)
    sampler = None if data.is_full_grid else _SharedFactorSampler(data)

    y_train, p1, p2 = _draw_pairs(data, batch_size, num_train, random_state, sampler)
    x_train = _features(representation, p1, p2)
    if np.unique(y_train).size < 2:
        raise UserError(
            f"BetaVAE score needs training points of at least two factors; num_train={num_train} drew one"
        )
    model = LogisticRegression(C=1.0, solver="lbfgs", max_iter=100, tol=1e-4,
                               fit_intercept=True, random_state=random_state)
    with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x_train, y_train)
    train_acc = float(np.mean(model.predict(x_train) == y_train))

    y_eval, p1, p2 = _draw_pairs(data, batch_size, num_eval, random_state, sampler)
    x_eval = _features(representation, p1, p2)
    eval_acc = float(np.mean(model.predict(x_eval) == y_eval))
    return {
        "train_accuracy": train_acc,
        "eval_accuracy": eval_acc,
        "converged": bool(np.all(model.n_iter_ < model.max_iter)),
    }
