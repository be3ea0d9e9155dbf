"""Writing the full set in the official ``.npz`` format, streamed and atomic."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from dis_eval.atomic import atomic_path
from dis_eval.data.factors import (
    IMAGE_SIZE,
    NUM_IMAGES,
    PACKED_BYTES,
    all_classes,
    official_latents,
)
from dis_eval.data.official.format import CHUNK_IMAGES, official_metadata, progress_bar


def write_npz(
    path: str | os.PathLike[str],
    packed_chunks: Iterator[np.ndarray] | np.ndarray,
    *,
    source: str,
    progress: bool = False,
    compresslevel: int = 1,
) -> None:
    """Write the full set in the official ``.npz`` format, atomically.

    ``packed_chunks`` yields bit-packed images (k, 512) in the official order, 737,280 in all.
    ``imgs`` is streamed into the zip (never held unpacked), ``latents_*`` are generated from
    the factor grid, and ``metadata`` is a plain dict (object array) like the official one,
    with ``source`` recording where the images came from. Nothing is left at ``path`` on error.
    """
    path = Path(path)
    if isinstance(packed_chunks, np.ndarray):
        arr = packed_chunks
        packed_chunks = (arr[i : i + CHUNK_IMAGES] for i in range(0, len(arr), CHUNK_IMAGES))
    with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as handle:
        with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=compresslevel, allowZip64=True) as zf:
            with zf.open("imgs.npy", "w", force_zip64=True) as fh:
                header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False, "shape": (NUM_IMAGES, IMAGE_SIZE, IMAGE_SIZE)}
                np.lib.format.write_array_header_1_0(fh, header)
                written = 0
                bar = progress_bar(NUM_IMAGES, f"writing {path.name}", progress)
                for chunk in packed_chunks:
                    if chunk.ndim != 2 or chunk.shape[1] != PACKED_BYTES or chunk.dtype != np.uint8:
                        raise ValueError(f"packed chunk must be uint8 (k, {PACKED_BYTES}), got {chunk.dtype} {chunk.shape}")
                    fh.write(np.unpackbits(chunk, axis=1).tobytes())
                    written += len(chunk)
                    bar.update(len(chunk))
                bar.close()
                if written != NUM_IMAGES:
                    raise ValueError(f"expected {NUM_IMAGES} images, got {written}")
            classes6, values6 = official_latents(all_classes())
            for key, arr in (("latents_classes", classes6), ("latents_values", values6),
                             ("metadata", np.array(official_metadata(source), dtype=object))):
                with zf.open(f"{key}.npy", "w", force_zip64=True) as fh:
                    np.lib.format.write_array(fh, arr, allow_pickle=True)
