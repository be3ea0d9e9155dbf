"""A user's own ground truth: a factors file read into a ``GroundTruthData`` without images.

Format: an ``.npz`` (``np.savez(path, factors=..., factor_names=...)``) holding

- ``factors``: (N, F) integer classes (0, 1, 2, ...), one row per data row, in the order of
  the rows of the codes to score (row i of the codes is the code of row i of the factors).
  A 1-D array is one factor. Floats are accepted when every value is a whole number.
- ``factor_names`` (optional): F distinct, non-empty strings. Default ``factor0``, ``factor1``...

Other arrays in the file are ignored (one file may hold both ``codes`` and ``factors``).
Read with ``allow_pickle=False``: nothing in the file can run. Every problem is a one-line
``UserError``.

Rows are taken as they are: a factor combination may occur in several rows (e.g. several
images of the same factors, each with its own code) and combinations may be missing. The
number of classes of a factor is its largest class + 1 (a class with no row is never drawn).
Sampling (``dis_eval.data.sampling``) draws *rows* uniformly, and "rows sharing factor k" among
the rows present, so metrics see the file's empirical distribution. When the rows are exactly
the full grid (every combination once, in any order) the draws are disentanglement_lib's.

The data object's ``indices`` are the row numbers 0..N-1 (its "full ordering" is the file's
order), so a codes file's optional ``rows`` names rows of the factors file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from dis_eval.data.ground_truth import GroundTruthData
from dis_eval.errors import UserError
from dis_eval.npz import read_npz_arrays

FACTORS_KEY = "factors"
NAMES_KEY = "factor_names"


def load_factors_file(path: str | os.PathLike) -> GroundTruthData:
    """Read a factors ``.npz`` (module docstring) into a ``GroundTruthData`` without images:
    one row per file row, in order; ``factor_names`` from the file or ``factor0``...; ``info``
    records the source path and the number of distinct factor combinations."""
    path = Path(path)
    arrays = read_npz_arrays(path, "factors file", FACTORS_KEY, [NAMES_KEY],
                             example="np.savez(path, factors=classes.astype(np.int64))")
    raw, names_raw = arrays[FACTORS_KEY], arrays.get(NAMES_KEY)
    classes = factor_classes(raw, path.name)
    names = factor_names(names_raw, classes.shape[1], path.name) if names_raw is not None else None
    distinct = int(np.unique(classes, axis=0).shape[0])
    info = {"source": str(path), "factors_file": str(path), "distinct_combinations": distinct}
    return GroundTruthData.from_factors(classes, names, info=info)


def factor_classes(raw: Any, where: str = "factors") -> np.ndarray:
    """(N, F) int64 factor classes from an array, or a one-line UserError saying what is wrong."""
    arr = np.asarray(raw)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise UserError(f"{where}: '{FACTORS_KEY}' must be a 2-D array (rows, factors), got shape {arr.shape}")
    if arr.shape[0] < 2:
        raise UserError(f"{where}: '{FACTORS_KEY}' has {arr.shape[0]} row(s); metrics need at least two rows")
    if arr.dtype == np.bool_:
        arr = arr.astype(np.int64)
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)):
            raise UserError(f"{where}: '{FACTORS_KEY}' contains NaN or infinite values; give integer classes")
        if not np.all(arr == np.round(arr)):
            raise UserError(f"{where}: '{FACTORS_KEY}' must hold integer classes (0, 1, 2, ...), got fractional "
                            "values; discretise continuous factors first (e.g. with np.digitize)")
        if np.abs(arr).max() >= 2**53:
            raise UserError(f"{where}: '{FACTORS_KEY}' has classes too large to be exact as floats; store integers")
        arr = arr.astype(np.int64)
    elif not np.issubdtype(arr.dtype, np.integer):
        raise UserError(f"{where}: '{FACTORS_KEY}' must hold integer classes, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.unsignedinteger) and arr.max() > np.iinfo(np.int64).max:
        raise UserError(f"{where}: '{FACTORS_KEY}' has classes too large for int64")
    arr = arr.astype(np.int64)
    if arr.min() < 0:
        col = int(np.flatnonzero((arr < 0).any(axis=0))[0])
        raise UserError(f"{where}: '{FACTORS_KEY}' has negative classes (factor column {col}); classes are 0, 1, 2, ...")
    return arr


def factor_names(raw: Any, num_factors: int, where: str = "factors") -> tuple[str, ...]:
    """F distinct non-empty names from an array of strings, or a one-line UserError."""
    arr = np.asarray(raw)
    if arr.dtype.kind == "S":
        try:
            arr = np.char.decode(arr, "utf-8")
        except UnicodeDecodeError:
            raise UserError(f"{where}: '{NAMES_KEY}' are not UTF-8 text") from None
    if arr.dtype.kind != "U":
        raise UserError(f"{where}: '{NAMES_KEY}' must be strings, got dtype {arr.dtype}")
    if arr.ndim != 1 or arr.shape[0] != num_factors:
        raise UserError(f"{where}: '{NAMES_KEY}' must name each of the {num_factors} factor(s) once, "
                        f"got shape {arr.shape}")
    names = tuple(str(n).strip() for n in arr)
    if any(not n for n in names):
        raise UserError(f"{where}: '{NAMES_KEY}' has an empty name")
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise UserError(f"{where}: '{NAMES_KEY}' repeats {', '.join(dup)}; names must be distinct")
    return names
