"""dSprites factors: the one place that knows their names, sizes, values and order; and the
row-major arithmetic of any discrete factor grid.

The official file enumerates images row-major over (color, shape, scale, orientation,
posX, posY) with posY fastest. Colour has a single value and is dropped, as in
disentanglement_lib's ``dsprites_full``, leaving five factors.

``classes_to_index`` / ``index_to_classes`` default to dSprites' sizes; given ``sizes`` they
work on any grid (row-major, last factor fastest).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

FACTOR_NAMES: tuple[str, ...] = ("shape", "scale", "orientation", "posX", "posY")
FACTOR_SIZES: tuple[int, ...] = (3, 6, 40, 32, 32)
NUM_FACTORS = len(FACTOR_SIZES)
NUM_IMAGES = int(np.prod(FACTOR_SIZES))  # 737,280
IMAGE_SIZE = 64
PACKED_BYTES = IMAGE_SIZE * IMAGE_SIZE // 8  # 512 bytes per bit-packed image
SHAPE_NAMES: tuple[str, ...] = ("square", "ellipse", "heart")

# Official-format latents include the constant colour factor in front.
OFFICIAL_LATENT_NAMES: tuple[str, ...] = ("color",) + FACTOR_NAMES
OFFICIAL_LATENT_SIZES: tuple[int, ...] = (1,) + FACTOR_SIZES

# Grids with more combinations than this cannot be indexed in int64 arithmetic.
MAX_GRID_ROWS = 2**62


def grid_rows(sizes: Sequence[int]) -> int:
    """Number of combinations of a grid (a Python int: no overflow)."""
    return math.prod(int(s) for s in sizes)


def grid_strides(sizes: Sequence[int]) -> np.ndarray:
    """Row-major strides of a grid (last factor fastest): index = classes @ strides."""
    if grid_rows(sizes) > MAX_GRID_ROWS:
        raise ValueError(f"a grid of sizes {tuple(sizes)} has too many combinations to index")
    return np.array([math.prod(int(s) for s in sizes[i + 1:]) for i in range(len(sizes))], dtype=np.int64)


# index = sum(classes * STRIDES): posY varies fastest.
STRIDES: np.ndarray = grid_strides(FACTOR_SIZES)


def latent_possible_values() -> dict[str, np.ndarray]:
    """The official ``latents_possible_values`` (metadata printed by DeepMind's notebook)."""
    return {
        "color": np.array([1.0]),
        "shape": np.array([1.0, 2.0, 3.0]),
        "scale": np.linspace(0.5, 1.0, 6),
        # linspace(0, 2*pi, 40) *inclusive*: orientation 0 and 39 draw the same image.
        "orientation": np.linspace(0.0, 2 * np.pi, 40),
        "posX": np.linspace(0.0, 1.0, 32),
        "posY": np.linspace(0.0, 1.0, 32),
    }


def classes_to_index(classes: np.ndarray, sizes: Sequence[int] = FACTOR_SIZES,
                     names: Sequence[str] | None = None) -> np.ndarray:
    """Map factor classes (..., F) to row-major indices into the grid of ``sizes``
    (default: dSprites, i.e. indices into the full official ordering)."""
    sizes = tuple(int(s) for s in sizes)
    if names is None and sizes == FACTOR_SIZES:
        names = FACTOR_NAMES
    classes = np.asarray(classes, dtype=np.int64)
    if classes.shape[-1] != len(sizes):
        cols = f" {tuple(names)}" if names is not None else ""
        raise ValueError(f"factor classes need {len(sizes)} columns{cols}, got shape {classes.shape}")
    if np.any(classes < 0) or np.any(classes >= np.asarray(sizes, dtype=np.int64)):
        named = dict(zip(names, sizes, strict=True)) if names is not None else sizes
        raise ValueError(f"factor classes out of range; sizes are {named}")
    strides = STRIDES if sizes == FACTOR_SIZES else grid_strides(sizes)
    return classes @ strides


def index_to_classes(index: np.ndarray, sizes: Sequence[int] = FACTOR_SIZES) -> np.ndarray:
    """Map row-major indices into the grid of ``sizes`` (default: dSprites' full official
    ordering) to factor classes (..., F)."""
    sizes = tuple(int(s) for s in sizes)
    index = np.asarray(index, dtype=np.int64)
    total = grid_rows(sizes)
    if np.any(index < 0) or np.any(index >= total):
        what = "image index" if sizes == FACTOR_SIZES else "grid index"
        raise ValueError(f"{what} out of range [0, {total})")
    strides = STRIDES if sizes == FACTOR_SIZES else grid_strides(sizes)
    return (index[..., None] // strides) % np.asarray(sizes, dtype=np.int64)


def all_classes() -> np.ndarray:
    """Factor classes of every image, in the official order: shape (737280, 5)."""
    return index_to_classes(np.arange(NUM_IMAGES, dtype=np.int64))


def official_latents(classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Official ``latents_classes`` (int64, N x 6) and ``latents_values`` (float64, N x 6)."""
    classes = np.asarray(classes, dtype=np.int64)
    n = classes.shape[0]
    full = np.zeros((n, 6), dtype=np.int64)
    full[:, 1:] = classes
    values = np.empty((n, 6), dtype=np.float64)
    possible = latent_possible_values()
    for j, name in enumerate(OFFICIAL_LATENT_NAMES):
        values[:, j] = possible[name][full[:, j]]
    return full, values
