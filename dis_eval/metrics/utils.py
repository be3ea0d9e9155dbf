"""Shared pieces of the metric suite: asking a representation for codes in
disentanglement_lib's batch structure, settings checks, the histogram discretiser and
plug-in mutual information.

Metrics draw nothing themselves: every random row comes from the data object
(``data.sample_batches`` and friends, :mod:`dis_eval.data.sampling`), which consumes the
``numpy.random.RandomState`` exactly as ``disentanglement_lib`` (Locatello et al., 2019)
does on the full grid. The estimators here match ``disentanglement_lib.evaluation.metrics.utils``
in definition and in floating-point results.
"""

from __future__ import annotations

from collections.abc import Callable
from math import log
from typing import Any

import numpy as np

from dis_eval.encode.codes import validate_codes
from dis_eval.errors import UserError

Representation = Callable[[np.ndarray], np.ndarray]


# --------------------------------------------------------------------------- validation
def _checked(codes: Any, num_rows: int) -> np.ndarray:
    """The representation's answer as a finite (num_rows, D) array, or a one-line UserError
    (the project's one codes validator, :func:`dis_eval.encode.codes.validate_codes`)."""
    return validate_codes(codes, num_rows, "representation codes", rows_of="the call asked for")


def require(cond: bool, message: str) -> None:
    """Raise a one-line UserError unless ``cond`` holds (settings checks)."""
    if not cond:
        raise UserError(message)


def require_int(settings: dict[str, Any], name: str, minimum: int) -> int:
    value = settings[name]
    if isinstance(value, bool) or int(value) != value:
        raise UserError(f"setting {name}={value!r} must be an integer")
    value = int(value)
    if value < minimum:
        raise UserError(f"setting {name}={value} is too small: the metric needs at least {minimum}")
    return value


# --------------------------------------------------------------------------- codes of rows
def represent(rep: Representation, positions: np.ndarray, batch_size: int) -> np.ndarray:
    """Codes of ``positions``, asking ``rep`` in chunks of ``batch_size`` as dlib does.

    The chunking matters only for batch-dependent representations (the Echo sample draws
    each observation's noise from the rest of its batch). A representation that declares
    ``batch_invariant = True`` (a cached mean lookup) is asked once for all rows.
    """
    positions = np.asarray(positions, dtype=np.int64)
    n = positions.shape[0]
    if getattr(rep, "batch_invariant", False) or n <= batch_size:
        return _checked(rep(positions), n)
    full = (n // batch_size) * batch_size
    if hasattr(rep, "batched") and full > 0:  # vectorised over whole batches, then the rest
        head = rep.batched(positions[:full].reshape(-1, batch_size))
        head = _checked(head.reshape(full, -1), full)
        if full == n:
            return head
        tail = _checked(rep(positions[full:]), n - full)
        return np.concatenate([head, tail], axis=0)
    parts = [rep(positions[i : i + batch_size]) for i in range(0, n, batch_size)]
    first = _checked(parts[0], min(batch_size, n))
    out = np.empty((n, first.shape[1]), dtype=np.float64)
    for k, part in enumerate(parts):
        lo = k * batch_size
        out[lo : lo + batch_size] = _checked(part, min(batch_size, n - lo))
    return out


def represent_batches(rep: Representation, positions: np.ndarray) -> np.ndarray:
    """Codes for a (num_batches, batch, ...) array of positions, one call per batch.

    Returns (num_batches, batch, D). Batch-invariant representations get one call.
    """
    positions = np.asarray(positions, dtype=np.int64)
    nb, b = positions.shape[:2]
    flat = positions.reshape(nb * b)
    if getattr(rep, "batch_invariant", False):
        codes = _checked(rep(flat), nb * b)
    elif hasattr(rep, "batched"):
        codes = _checked(np.asarray(rep.batched(positions)).reshape(nb * b, -1), nb * b)
    else:
        codes = represent(rep, flat, b)
    return codes.reshape(nb, b, codes.shape[1])


def generate_batch_factor_code(data: Any, rep: Representation, num_points: int,
                               random_state: np.random.RandomState,
                               batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Codes (num_points, D) and factor classes (num_points, F) of random rows, drawn by the
    data object ``batch_size`` at a time (``data.sample_batches``) and asked in those batches.

    Note the orientation: rows are points (dlib returns the transpose).
    """
    positions = data.sample_batches(num_points, batch_size, random_state)
    codes = represent(rep, positions, batch_size)
    return codes, np.asarray(data.classes[positions], dtype=np.int64)


def train_test_codes(data: Any, rep: Representation, random_state: np.random.RandomState,
                     settings: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(codes, factors, test codes, test factors): ``num_train`` then ``num_test`` random rows,
    drawn in batches of ``batch_size`` (settings of DCI, SAP, modularity/explicitness), in dlib's
    order: all training rows first."""
    num_train = require_int(settings, "num_train", 2)
    num_test = require_int(settings, "num_test", 1)
    batch_size = require_int(settings, "batch_size", 1)
    codes, factors = generate_batch_factor_code(data, rep, num_train, random_state, batch_size)
    codes_t, factors_t = generate_batch_factor_code(data, rep, num_test, random_state, batch_size)
    return codes, factors, codes_t, factors_t


# --------------------------------------------------------------------------- discretisation / MI
def histogram_discretize(codes: np.ndarray, num_bins: int = 20) -> np.ndarray:
    """Per-column equal-width binning over the column's own range (dlib's
    ``_histogram_discretize``): ``digitize(x, histogram(x, num_bins) edges[:-1])``.

    Input (N, D); output int64 (N, D) with bin labels 1..num_bins. One outlier stretches
    the range and empties the inner bins: a known weakness of this estimator.
    """
    codes = np.asarray(codes)
    out = np.empty(codes.shape, dtype=np.int64)
    for j in range(codes.shape[1]):
        edges = np.histogram(codes[:, j], num_bins)[1]
        out[:, j] = np.digitize(codes[:, j], edges[:-1])
    return out


def _dense_labels(x: np.ndarray) -> tuple[np.ndarray, int]:
    """Map labels to 0..k-1 in sorted order (what sklearn's ``np.unique`` encoding does)."""
    uniq, inv = np.unique(x, return_inverse=True)
    return inv.reshape(-1), uniq.shape[0]


def mutual_info_labels(a: np.ndarray, b: np.ndarray) -> float:
    """Plug-in mutual information (nats) of two label vectors.

    Numerically identical to ``sklearn.metrics.mutual_info_score(a, b)``: the same
    contingency (rows ``a``, columns ``b``), the same non-zero order (row-major) and the same
    floating-point expression, without sklearn's sparse-matrix overhead.
    """
    ai, ka = _dense_labels(a)
    bi, kb = _dense_labels(b)
    return _mi_from_dense(ai, ka, bi, kb)


def _mi_from_dense(ai: np.ndarray, ka: int, bi: np.ndarray, kb: int) -> float:
    if ka == 1 or kb == 1:
        return 0.0
    cont = np.bincount(ai * kb + bi, minlength=ka * kb).reshape(ka, kb)
    nzx, nzy = np.nonzero(cont)
    nz_val = cont[nzx, nzy]
    total = cont.sum()
    pi = cont.sum(axis=1)
    pj = cont.sum(axis=0)
    log_cont = np.log(nz_val)
    cont_nm = nz_val / total
    outer = pi.take(nzx).astype(np.int64) * pj.take(nzy).astype(np.int64)
    log_outer = -np.log(outer) + log(pi.sum()) + log(pj.sum())
    mi = cont_nm * (log_cont - log(total)) + cont_nm * log_outer
    mi = np.where(np.abs(mi) < np.finfo(mi.dtype).eps, 0.0, mi)
    return float(np.clip(mi.sum(), 0.0, None))


def discrete_mutual_info(codes_discrete: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """MI matrix (D latents, F factors) in nats; arguments are (N, D) and (N, F).

    Same values as dlib's ``discrete_mutual_info`` (which calls
    ``mutual_info_score(factor, code)``: factor labels are the contingency rows).
    """
    dense_codes = [_dense_labels(codes_discrete[:, i]) for i in range(codes_discrete.shape[1])]
    dense_factors = [_dense_labels(factors[:, j]) for j in range(factors.shape[1])]
    m = np.zeros((len(dense_codes), len(dense_factors)))
    for i, (ci, kc) in enumerate(dense_codes):
        for j, (fj, kf) in enumerate(dense_factors):
            m[i, j] = _mi_from_dense(fj, kf, ci, kc)
    return m


def discrete_entropy(factors: np.ndarray) -> np.ndarray:
    """Plug-in entropy (nats) of each column of (N, F), as dlib (``mutual_info_score(y, y)``)."""
    out = np.zeros(factors.shape[1])
    for j in range(factors.shape[1]):
        fj, k = _dense_labels(factors[:, j])
        out[j] = _mi_from_dense(fj, k, fj, k)
    return out


def to_builtin(value: Any) -> Any:
    """Numpy scalars/arrays -> plain Python (for JSON)."""
    if isinstance(value, dict):
        return {str(k): to_builtin(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_builtin(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value
