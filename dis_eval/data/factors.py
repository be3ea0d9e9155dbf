"""dSprites factors: the one place that knows their names, sizes, values and order.

The official file enumerates images row-major over (color, shape, scale, orientation,
posX, posY) with posY fastest. Colour has a single value and is dropped, as in
disentanglement_lib's ``dsprites_full``, leaving five factors.
"""

from __future__ import annotations

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

# index = sum(classes * STRIDES): posY varies fastest.
STRIDES: np.ndarray = np.array(
    [int(np.prod(FACTOR_SIZES[i + 1 :])) for i in range(NUM_FACTORS)], dtype=np.int64
)


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


def classes_to_index(classes: np.ndarray) -> np.ndarray:
    """Map factor classes (..., 5) to indices into the full official ordering."""
    classes = np.asarray(classes, dtype=np.int64)
    if classes.shape[-1] != NUM_FACTORS:
        raise ValueError(
            f"factor classes need {NUM_FACTORS} columns {FACTOR_NAMES}, got shape {classes.shape}"
        )
    if np.any(classes < 0) or np.any(classes >= np.asarray(FACTOR_SIZES)):
        raise ValueError(f"factor classes out of range; sizes are {dict(zip(FACTOR_NAMES, FACTOR_SIZES, strict=True))}")
    return classes @ STRIDES


def index_to_classes(index: np.ndarray) -> np.ndarray:
    """Map indices into the full official ordering to factor classes (..., 5)."""
    index = np.asarray(index, dtype=np.int64)
    if np.any(index < 0) or np.any(index >= NUM_IMAGES):
        raise ValueError(f"image index out of range [0, {NUM_IMAGES})")
    return (index[..., None] // STRIDES) % np.asarray(FACTOR_SIZES, dtype=np.int64)


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
