"""Reading a user's ``.npz`` file (codes, factor classes): plain arrays only, never a pickle, and
every problem a one-line ``UserError`` naming the file, the array and the fix."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from dis_eval.errors import UserError


def read_npz_arrays(path: str | os.PathLike, what: str, required: str, optional: Iterable[str] = (),
                    example: str = "np.savez(path, codes=codes)") -> dict[str, np.ndarray]:
    """The arrays ``required`` and those of ``optional`` present in the ``.npz`` at ``path``.

    ``what`` names the file in messages ("codes file"); ``example`` shows how to write a good one.
    Loaded with ``allow_pickle=False``: an object array is refused, nothing in the file runs.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"{what} {path} does not exist")
    if path.is_dir():
        raise UserError(f"{what} {path} is a directory; give the .npz file")
    try:
        npz = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same one-line error
        raise UserError(f"cannot read {what} {path} as .npz ({type(exc).__name__}: {exc})") from None
    if not hasattr(npz, "files"):  # a bare .npy array
        raise UserError(f"{path.name} is a single array, not an .npz; save it with {example}")
    with npz:
        if required not in npz.files:
            raise UserError(f"{path.name} has no '{required}' array (keys: {', '.join(npz.files) or 'none'}); "
                            f"save it with {example}")
        keys = [required, *(k for k in optional if k in npz.files)]
        return {key: _read_array(npz, key, path, example) for key in keys}


def _read_array(npz: np.lib.npyio.NpzFile, key: str, path: Path, example: str) -> np.ndarray:
    try:
        return np.asarray(npz[key])
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise UserError(f"{path.name}: '{key}' is an object array (a pickle); store plain numbers or "
                            f"strings, e.g. {example}") from None
        raise UserError(f"{path.name}: cannot read '{key}' ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - a damaged zip member
        raise UserError(f"{path.name}: cannot read '{key}' ({type(exc).__name__}: {exc}); "
                        "the file may be truncated") from None
