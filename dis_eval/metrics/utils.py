"""Shared pieces of the metric suite: sampling in disentanglement_lib's batch structure,
input validation, the histogram discretiser and plug-in mutual information.

Everything here mirrors ``disentanglement_lib.evaluation.metrics.utils`` (Locatello et al.,
2019) in definition *and* in the order random numbers are consumed, so that a metric run
with the same ``numpy.random.RandomState`` draws the very same factors as the reference.
"""

from __future__ import annotations

from collections.abc import Callable
from math import log
from typing import Any

import numpy as np

from dis_eval.errors import UserError
from dis_eval.metrics.fast_draws import grid_factor_batches

Representation = Callable[[np.ndarray], np.ndarray]


# --------------------------------------------------------------------------- validation
def check_codes(codes: Any, num_rows: int, where: str = "representation") -> np.ndarray:
    """Return ``codes`` as a float64 (num_rows, D) array or raise a one-line UserError."""
    arr = np.asarray(codes)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise UserError(f"{where} must return a 2-D array (rows, latents), got shape {arr.shape}")
    if arr.shape[0] != num_rows:
        raise UserError(
            f"{where} returned {arr.shape[0]} rows for {num_rows} inputs; it must give one code per row"
        )
    if arr.shape[1] == 0:
        raise UserError(f"{where} returned codes with 0 latent dimensions")
    if not np.issubdtype(arr.dtype, np.number):
        raise UserError(f"{where} returned non-numeric codes (dtype {arr.dtype})")
    if not np.all(np.isfinite(arr)):
        bad = int(np.sum(~np.isfinite(arr)))
        raise UserError(
            f"{where} returned {bad} NaN or infinite code values; fix the encoder/codes (metrics need finite codes)"
        )
    return arr


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


# --------------------------------------------------------------------------- sampling
def represent(rep: Representation, positions: np.ndarray, batch_size: int) -> np.ndarray:
    """Codes of ``positions``, asking ``rep`` in chunks of ``batch_size`` as dlib does.

    The chunking matters only for batch-dependent representations (the Echo sample draws
    each observation's noise from the rest of its batch). A representation that declares
    ``batch_invariant = True`` (a cached mean lookup) is asked once for all rows.
    """
    positions = np.asarray(positions, dtype=np.int64)
    n = positions.shape[0]
    if getattr(rep, "batch_invariant", False) or n <= batch_size:
        return check_codes(rep(positions), n)
    full = (n // batch_size) * batch_size
    if hasattr(rep, "batched") and full > 0:  # vectorised over whole batches, then the rest
        head = rep.batched(positions[:full].reshape(-1, batch_size))
        head = check_codes(head.reshape(full, -1), full)
        if full == n:
            return head
        tail = check_codes(rep(positions[full:]), n - full)
        return np.concatenate([head, tail], axis=0)
    parts = [rep(positions[i : i + batch_size]) for i in range(0, n, batch_size)]
    first = check_codes(parts[0], min(batch_size, n))
    out = np.empty((n, first.shape[1]), dtype=np.float64)
    for k, part in enumerate(parts):
        lo = k * batch_size
        out[lo : lo + batch_size] = check_codes(part, min(batch_size, n - lo))
    return out


def represent_batches(rep: Representation, positions: np.ndarray) -> np.ndarray:
    """Codes for a (num_batches, batch, ...) array of positions, one call per batch.

    Returns (num_batches, batch, D). Batch-invariant representations get one call.
    """
    positions = np.asarray(positions, dtype=np.int64)
    nb, b = positions.shape[:2]
    flat = positions.reshape(nb * b)
    if getattr(rep, "batch_invariant", False):
        codes = check_codes(rep(flat), nb * b)
    elif hasattr(rep, "batched"):
        codes = check_codes(np.asarray(rep.batched(positions)).reshape(nb * b, -1), nb * b)
    else:
        codes = represent(rep, flat, b)
    return codes.reshape(nb, b, codes.shape[1])


def fast_grid(data: Any) -> bool:
    """True when ``data.sample_factors`` is the full grid's dlib sampler (one
    ``randint(size, size=n)`` per factor column), so draws may be replayed in bulk."""
    from dis_eval.data import GroundTruthData

    return (isinstance(data, GroundTruthData) and data.is_full_grid
            and type(data).sample_factors is GroundTruthData.sample_factors)


def sample_factor_batches(data: Any, num_points: int, random_state: np.random.RandomState,
                          batch_size: int) -> np.ndarray:
    """Factor classes for ``num_points`` draws, drawn ``batch_size`` at a time.

    Same random-number consumption as dlib's ``generate_batch_factor_code`` (one
    ``sample_factors`` call per batch, the last batch possibly short).
    """
    chunks = []
    i = 0
    if fast_grid(data) and num_points >= batch_size:
        nb = num_points // batch_size
        f, _ = grid_factor_batches(data.factor_sizes, batch_size, nb, random_state)
        chunks.append(f.reshape(nb * batch_size, -1))
        i = nb * batch_size
    while i < num_points:
        m = min(num_points - i, batch_size)
        chunks.append(data.sample_factors(m, random_state))
        i += m
    return np.concatenate(chunks, axis=0).astype(np.int64)


def generate_batch_factor_code(data: Any, rep: Representation, num_points: int,
                               random_state: np.random.RandomState,
                               batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Codes (num_points, D) and factor classes (num_points, F) of random rows.

    Note the orientation: rows are points (dlib returns the transpose).
    """
    factors = sample_factor_batches(data, num_points, random_state, batch_size)
    positions = data.factors_to_positions(factors)
    codes = represent(rep, positions, batch_size)
    return codes, factors


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
