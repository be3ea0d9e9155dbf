"""Cached codes: ``EncodedData`` (one row of codes per data row) and the one codes validator
every stage uses (encoders' outputs, codes files, representations handed to metrics)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dis_eval.errors import UserError


@dataclass
class EncodedData:
    """Cached encoder outputs for every present row of a data object (row = position).

    ``mean`` (n, D) float32: f(x) for Echo, the Gaussian mean for VAEs, the code of any other
    encoder. ``aux`` (n, D) or None: log s(x) (clip factor included) for Echo, the log-variance
    for VAEs. ``family``: "echo", "vae" or None (a plain code function). ``d_max``: Echo's
    term budget (the sample representation sums min(d_max, batch - 1) terms). ``rows``: when
    only some rows were encoded, their positions (the others hold NaN and must not be used).
    """

    mean: np.ndarray
    aux: np.ndarray | None = None
    family: str | None = None
    d_max: int | None = None
    info: dict[str, Any] = field(default_factory=dict)
    rows: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.rows is None:
            self.mean = validate_codes(self.mean, None, "codes")
        else:  # only the encoded rows must be finite
            validate_codes(np.asarray(self.mean)[self.rows], len(self.rows), "encoder output")
        if self.aux is not None:
            if np.shape(self.aux) != np.shape(self.mean):
                raise UserError(f"aux codes have shape {np.shape(self.aux)}, mean codes {np.shape(self.mean)}: they must match")
            if self.rows is None:
                self.aux = validate_codes(self.aux, self.mean.shape[0], "aux codes")
            else:
                validate_codes(np.asarray(self.aux)[self.rows], len(self.rows), "encoder aux output")

    def __len__(self) -> int:
        return int(self.mean.shape[0])

    @property
    def num_latents(self) -> int:
        return int(self.mean.shape[1])

    def ensure(self, positions: np.ndarray) -> None:
        """Codes of ``positions`` are ready: cached codes always are (``LazyCodes`` encodes here)."""

    def ensure_some(self) -> None:
        """At least one row is encoded: always, for cached codes."""


def validate_codes(codes: Any, num_rows: int | None, what: str = "codes",
                   rows_of: str = "the data set has") -> np.ndarray:
    """(n, D) finite float array, or a one-line UserError saying what is wrong.

    ``num_rows``: the rows expected (None: any); ``rows_of`` says where that count comes from.
    """
    arr = np.asarray(codes)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise UserError(f"{what} must be a 2-D array (rows, latents) with at least one latent, got shape {arr.shape}")
    if arr.dtype.kind not in "iuf":  # not bool, complex, timedelta (numpy counts it a number), ...
        raise UserError(f"{what} must be real numbers, got dtype {arr.dtype}")
    if num_rows is not None and arr.shape[0] != num_rows:
        raise UserError(f"{what} have {arr.shape[0]} rows but {rows_of} {num_rows}; give one code per row, in that order")
    arr = arr.astype(np.float32 if arr.dtype.itemsize <= 4 else np.float64, copy=False)
    bad = ~np.isfinite(arr)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        raise UserError(f"{what} contain {int(bad.sum())} NaN/infinite values (first at row {int(rows[0])}); metrics need finite codes")
    return arr
