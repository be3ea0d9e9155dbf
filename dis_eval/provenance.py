"""What produced a number, recorded beside every score: library versions, the code's commit, the
time, and checksums of the rows and images scored and of a codes file.

A value that cannot be known (no git checkout, no images) is ``None`` with a reason beside it
(``<name>_undefined``), never a guess.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import platform
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

# The package's folder: the commit is that of the git checkout holding it.
_PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def library_versions() -> dict[str, str]:
    """Versions of Python and the numerical libraries a score depends on."""
    import numpy
    import scipy
    import sklearn
    import torch

    return {"python": platform.python_version(), "numpy": numpy.__version__, "scipy": scipy.__version__,
            "scikit-learn": sklearn.__version__, "torch": torch.__version__}


@lru_cache(maxsize=1)
def code_commit() -> dict[str, Any]:
    """``{"commit": sha, "dirty": bool}`` of the git checkout dis-eval runs from, or
    ``{"commit": None, "commit_undefined": why}`` (an installed package, no git)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(_PACKAGE_ROOT), *args], capture_output=True, text=True,
                              check=True, timeout=10).stdout.strip()

    try:
        sha = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError) as exc:
        return {"commit": None, "commit_undefined": f"not run from a git checkout ({type(exc).__name__})"}
    return {"commit": sha, "dirty": dirty}


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def stamp() -> dict[str, Any]:
    """``{"versions": ..., "code": {commit, dirty}, "evaluated_at": ...}`` for a metrics record."""
    return {"versions": library_versions(), "code": code_commit(), "evaluated_at": utc_now()}


def sha256_arrays(*arrays: np.ndarray) -> str:
    """SHA-256 over arrays' dtypes, shapes and bytes (C order)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def data_checksums(data: Any) -> dict[str, Any]:
    """Checksums of what a score was computed on: ``rows_sha256`` (the rows' indices in the
    source's ordering and their factor classes: the subset and its ground truth) and
    ``images_sha256`` (the rows' bit-packed images; None with a reason for factors-only data)."""
    out: dict[str, Any] = {"rows_sha256": sha256_arrays(np.asarray(data.indices, dtype=np.int64),
                                                        np.asarray(data.classes, dtype=np.int64))}
    if not data.has_images:
        out["images_sha256"] = None
        out["images_sha256_undefined"] = "factors only: no images in this data"
    else:
        out["images_sha256"] = sha256_arrays(data.packed.cpu().numpy())
    return out
