"""The packed sidecar of a full-set file: ``<file>.packed.npy`` (377 MB, bit-packed images)
and ``<file>.packed.json`` (the source file's git blob id). Inflating 3 GB of images takes
~15 s; the sidecar loads in ~1 s and is ignored whenever the source file changed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from dis_eval.atomic import atomic_path, atomic_write_json
from dis_eval.data.factors import NUM_IMAGES, PACKED_BYTES
from dis_eval.data.official.checksum import git_blob_id
from dis_eval.data.official.format import LoadedImages


def write_cache(path: str | os.PathLike[str], packed: np.ndarray, source: str) -> None:
    """Store the packed sidecar of a full-set file just written from ``packed`` (saves the first load)."""
    loaded = LoadedImages(np.arange(NUM_IMAGES, dtype=np.int64), packed, {"source": source}, True)
    write_loaded_cache(Path(path), git_blob_id(path), loaded)


def cache_paths(path: Path) -> tuple[Path, Path]:
    """The packed sidecar of a full-set file and its JSON stamp."""
    return path.with_name(path.name + ".packed.npy"), path.with_name(path.name + ".packed.json")


def read_cache(path: Path, blob: str) -> LoadedImages | None:
    """The sidecar's images when it belongs to this very file (same blob id), else None."""
    arr_path, stamp_path = cache_paths(path)
    try:
        stamp = json.loads(stamp_path.read_text())
        if stamp.get("source_blob_id") != blob:
            return None
        packed = np.load(arr_path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    if packed.shape != (NUM_IMAGES, PACKED_BYTES) or packed.dtype != np.uint8:
        return None
    return LoadedImages(np.arange(NUM_IMAGES, dtype=np.int64), packed, dict(stamp.get("metadata", {})), True)


def write_loaded_cache(path: Path, blob: str, loaded: LoadedImages) -> None:
    """Store ``loaded``'s packed images beside ``path`` (a failure only warns: loading stays slow)."""
    import warnings

    from dis_eval.errors import UserError

    arr_path, stamp_path = cache_paths(path)
    try:
        with atomic_path(arr_path, suffix=".npy") as tmp, open(tmp, "wb") as f:
            np.save(f, loaded.packed, allow_pickle=False)
        meta = {"source": str(loaded.metadata.get("source", "official"))}
        atomic_write_json(stamp_path, {"source_blob_id": blob, "metadata": meta}, indent=None)
    except (OSError, UserError) as exc:
        warnings.warn(f"could not write the packed cache beside {path} ({exc}); loading stays slow", stacklevel=3)
