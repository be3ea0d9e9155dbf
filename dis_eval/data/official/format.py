"""The official dSprites file format: file names, keys, checksums, metadata, latent checks.

DeepMind's ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`` holds ``imgs`` (uint8 0/1,
737280 x 64 x 64), ``latents_values`` (float64, 737280 x 6), ``latents_classes`` (int64,
737280 x 6, colour first) and ``metadata`` (a pickled Python 2 dict). The ``.hdf5`` twin
stores ``imgs``, ``latents/classes`` and ``latents/values``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dis_eval.data.factors import (
    NUM_IMAGES,
    OFFICIAL_LATENT_NAMES,
    OFFICIAL_LATENT_SIZES,
    PACKED_BYTES,
    all_classes,
    latent_possible_values,
    official_latents,
)
from dis_eval.errors import UserError

OFFICIAL_NPZ_NAME = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
OFFICIAL_HDF5_NAME = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.hdf5"
OFFICIAL_URL = (
    "https://github.com/deepmind/dsprites-dataset/raw/master/" + OFFICIAL_NPZ_NAME
)
# Upstream git blob ids (``git hash-object``): the only checksums of the official files that
# anyone can recompute (see docs/metric-pitfalls.md, and checksum.git_blob_id).
OFFICIAL_NPZ_BLOB_ID = "d98996d3f8ee1550e06b9d4ed78d0beb478910d5"
OFFICIAL_HDF5_BLOB_ID = "3c8de5d40afa425dfd9de811d71248449aae238b"

REQUIRED_NPZ_KEYS = ("imgs", "latents_classes", "latents_values", "metadata")
CHUNK_IMAGES = 16384  # images decoded per chunk when streaming (64 MB unpacked)

_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def count_on_pixels(packed: np.ndarray) -> np.ndarray:
    """On-pixels per bit-packed image (n, 512) -> int64 (n,)."""
    counts = np.bitwise_count(packed) if hasattr(np, "bitwise_count") else _POPCOUNT[packed]
    return counts.sum(axis=1, dtype=np.int64)


def mean_pixel(packed: np.ndarray) -> float:
    """Mean pixel value of bit-packed images."""
    return float(count_on_pixels(packed).sum() / (packed.shape[0] * PACKED_BYTES * 8))

@dataclass
class LoadedImages:
    """Rows read from an official-format file: full-set indices (sorted), packed images, metadata."""

    indices: np.ndarray  # int64 (n,), sorted, unique
    packed: np.ndarray  # uint8 (n, 512)
    metadata: dict[str, Any] = field(default_factory=dict)
    full: bool = False  # True when the file is a complete, correctly ordered official set


def metadata_dict(raw: Any) -> dict[str, Any]:
    """The official metadata is a 0-d object array holding a dict (pickled, latin1)."""
    try:
        value = raw[()] if isinstance(raw, np.ndarray) else raw
    except Exception:  # noqa: BLE001 - any odd object: treat as absent
        return {}
    return dict(value) if isinstance(value, dict) else {}


def official_metadata(source: str) -> dict[str, Any]:
    """Metadata dict compatible with the official one, plus ``source`` provenance."""
    return {
        "date": "April 2017",
        "description": (
            "Disentanglement test Sprites dataset. Procedurally generated 2D shapes, from 6 "
            "disentangled latent factors (color, shape, scale, orientation, posX, posY), "
            "in the official order with posY fastest."
        ),
        "version": 1,
        "latents_names": OFFICIAL_LATENT_NAMES,
        "latents_possible_values": latent_possible_values(),
        "latents_sizes": np.array(OFFICIAL_LATENT_SIZES, dtype=np.int64),
        "author": "lmatthey@google.com",
        "title": "dSprites dataset",
        "source": source,
    }


def check_latents(classes6: np.ndarray, values6: np.ndarray | None, name: str) -> None:
    if classes6.dtype != np.int64 or classes6.shape != (NUM_IMAGES, 6):
        raise UserError(
            f"{name}: latents_classes must be int64 {(NUM_IMAGES, 6)}, got {classes6.dtype} "
            f"{classes6.shape}; pass the official dSprites file or re-run `dis-eval prepare dsprites`"
        )
    expected = np.zeros((NUM_IMAGES, 6), dtype=np.int64)
    expected[:, 1:] = all_classes()
    if not np.array_equal(classes6, expected):
        raise UserError(
            f"{name}: latents_classes are not in the official order (posY fastest); "
            "the file is not an official-format dSprites set"
        )
    if values6 is not None:
        if values6.dtype != np.float64 or values6.shape != (NUM_IMAGES, 6):
            raise UserError(
                f"{name}: latents_values must be float64 {(NUM_IMAGES, 6)}, got {values6.dtype} "
                f"{values6.shape}"
            )
        _, exp_values = official_latents(expected[:, 1:])
        if not np.allclose(values6, exp_values, rtol=0, atol=1e-6):
            raise UserError(f"{name}: latents_values do not match the official latent grid")

def check_metadata_sizes(metadata: dict[str, Any], name: str) -> None:
    sizes = metadata.get("latents_sizes")
    if sizes is None:
        return
    sizes = tuple(int(s) for s in np.asarray(sizes).ravel())
    if sizes not in (OFFICIAL_LATENT_SIZES, OFFICIAL_LATENT_SIZES[1:]) and metadata.get("version") not in ("1_downsampled",):
        raise UserError(f"{name}: metadata latents_sizes {sizes} differ from dSprites' {OFFICIAL_LATENT_SIZES}")


def progress_bar(total: int, desc: str, enabled: bool) -> Any:
    """A tqdm bar over images (disabled unless ``enabled``)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img", unit_scale=True, disable=not enabled, leave=False)
