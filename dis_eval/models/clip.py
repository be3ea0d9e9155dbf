"""Echo's clip factor (Brekelmans et al. 2019, App. B; docs/echo.md): the one place it is computed.

With |f| <= M and every scale <= r, the remainder of the Echo sum after d terms is at most
M r^d / (1 - r); r solves M r^d / (1 - r) = precision (float32: 2^-23). Pure arithmetic (no
torch), so a ``ModelSpec`` can compute it without building a model.
"""

from __future__ import annotations

import math
from functools import lru_cache

# The remainder bound the clip factor guarantees by default: float32's machine epsilon.
FLOAT32_PRECISION = 2.0**-23
# f = tanh(a / 16) (the authors' "tanh16" for dSprites): bounded by M = 1, wider linear range.
F_INPUT_SCALE = 16.0
F_BOUND = 1.0




@lru_cache(maxsize=64)
def clip_factor(d_max: int, f_bound: float = F_BOUND, precision: float = FLOAT32_PRECISION) -> float:
    """The largest scale r with M r^d_max / (1 - r) = precision (App. B), by Brent's method.

    d_max = 64 gives 0.7622 (the authors' dSprites value), 63 gives 0.7591, 100 gives 0.8373.
    """
    if d_max < 1:
        raise ValueError(f"d_max must be >= 1, got {d_max}")
    if f_bound <= 0 or not 0 < precision < 1:
        raise ValueError("f_bound must be > 0 and precision in (0, 1)")

    # Solve in log space: d log r - log(1 - r) - log(precision / M) = 0, increasing in r.
    target = math.log(precision / f_bound)

    def g(r: float) -> float:
        return d_max * math.log(r) - math.log1p(-r) - target

    lo, hi = 1e-300, 1.0 - 1e-15
    if g(lo) > 0:  # precision >= M / (1 - 0): any r works; no finite clip needed
        raise ValueError("precision is not below the bound M; the clip factor is undefined")
    from scipy.optimize import brentq

    return float(brentq(g, lo, hi, xtol=1e-15, rtol=8.9e-16, maxiter=500))


def truncation_bound(r: float, terms: int, f_bound: float = F_BOUND) -> float:
    """Upper bound on the Echo sum's remainder after ``terms`` terms: M r^terms / (1 - r)."""
    return f_bound * r**terms / (1.0 - r)


def echo_terms(d_max: int, batch_size: int) -> int:
    """Terms actually summed: sampling without replacement, excluding self, leaves B - 1 others."""
    return max(0, min(d_max, batch_size - 1))
