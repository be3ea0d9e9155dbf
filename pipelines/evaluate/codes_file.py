"""Codes files: ``.npz`` with ``codes`` (one row per data row, in the data set's row order) and
optionally ``rows`` (the rows' indices in the official full ordering) and ``aux`` / ``family`` /
``d_max`` (for the sample representation). Read with ``allow_pickle=False``: nothing in a codes
file can run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from dis_eval.errors import UserError
from dis_eval.npz import read_npz_arrays


def load_codes_file(path: str | os.PathLike, data: Any) -> tuple[Any, Any]:
    """(EncodedData, data restricted to the file's rows) from a codes .npz."""
    from dis_eval.encode import EncodedData, validate_codes

    path = Path(path)
    arrays = read_npz_arrays(path, "codes file", "codes", ("aux", "family", "d_max", "rows"),
                             example="np.savez(path, codes=codes.astype(np.float32))")
    codes = validate_codes(arrays["codes"], None, f"{path.name}: codes")
    aux = arrays.get("aux")
    family = str(arrays["family"]) if "family" in arrays else None
    d_max = int(arrays["d_max"]) if "d_max" in arrays else None
    if "rows" in arrays:
        rows = np.asarray(arrays["rows"])
        if rows.ndim != 1 or rows.shape[0] != codes.shape[0] or not np.issubdtype(rows.dtype, np.integer):
            raise UserError(f"{path.name}: 'rows' must be one integer index per code row ({codes.shape[0]}), got shape {rows.shape}")
        if np.unique(rows).size != rows.size:
            raise UserError(f"{path.name}: 'rows' has repeated indices")
        order = np.argsort(rows)
        rows, codes = rows[order], codes[order]
        aux = aux[order] if aux is not None else None
        missing = np.setdiff1d(rows, data.indices, assume_unique=True)
        if missing.size:
            raise UserError(f"{path.name}: {missing.size} of its rows are not in the data set (first: index {int(missing[0])})")
        if rows.size != len(data):
            data = data.restrict(rows, {"rows_from_codes": int(rows.size)})
    elif codes.shape[0] != len(data):
        raise UserError(f"{path.name} has {codes.shape[0]} code rows but the data set has {len(data)}; "
                        "give one code per data row in its order, or add 'rows' (official indices)")
    return EncodedData(codes, aux, family, d_max), data


def save_codes_file(path: str | os.PathLike, codes: Any, data: Any) -> None:
    """Write ``codes`` (``EncodedData`` of every row of ``data``) as a codes file, atomically."""
    from dis_eval.atomic import atomic_path

    arrays = {"codes": codes.mean, "rows": data.indices}
    if codes.aux is not None:
        arrays["aux"] = codes.aux
    if codes.family is not None:
        arrays["family"] = np.array(codes.family)
    if codes.d_max is not None:
        arrays["d_max"] = np.array(codes.d_max)
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)
