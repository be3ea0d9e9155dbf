"""``GroundTruthData``: the rows present, their factors, sampling, and bit-packed images on a device.

Sampling follows disentanglement_lib (Locatello et al., 2019, ``dsprites.DSprites`` and
``util.SplitDiscreteStateSpace``) so that metrics fed the same ``np.random.RandomState``
draw the same factors: on the full grid, one ``randint(size, size=n)`` per factor column in
factor order. On a subset (dependent dSprites, or a partial file) only present rows can be
drawn: uniform present rows, and for "one factor fixed" present rows sharing that value.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from dis_eval.data.factors import (
    FACTOR_NAMES,
    FACTOR_SIZES,
    IMAGE_SIZE,
    NUM_FACTORS,
    NUM_IMAGES,
    PACKED_BYTES,
    classes_to_index,
    index_to_classes,
)
from dis_eval.errors import UserError


class NoImagesError(UserError):
    """Raised by ``images()`` on a factors-only data object (``GroundTruthData.grid()``)."""


def unpack_images(packed: torch.Tensor) -> torch.Tensor:
    """Bit-packed (n, 512) uint8 (np.packbits order, MSB first) -> float (n, 1, 64, 64) in {0, 1}.

    One vectorised torch op on ``packed.device``: no per-image Python.
    """
    shifts = torch.arange(7, -1, -1, device=packed.device, dtype=torch.uint8)
    bits = (packed.unsqueeze(-1) >> shifts) & 1
    return bits.reshape(packed.shape[0], 1, IMAGE_SIZE, IMAGE_SIZE).to(torch.float32)


class GroundTruthData:
    """dSprites rows present (full set or a subset), their factor classes, and their images.

    Positions ``0..len-1`` address present rows in increasing full-set index order;
    ``indices[pos]`` is the row's index in the official ordering.
    """

    factor_names: tuple[str, ...] = FACTOR_NAMES
    factor_sizes: tuple[int, ...] = FACTOR_SIZES
    num_factors: int = NUM_FACTORS

    def __init__(
        self,
        indices: np.ndarray,
        packed: np.ndarray | torch.Tensor | None,
        device: str | torch.device = "cpu",
        info: dict[str, Any] | None = None,
    ) -> None:
        indices = np.asarray(indices, dtype=np.int64)
        if indices.ndim != 1:
            raise ValueError("indices must be one-dimensional")
        if len(indices) and (np.any(np.diff(indices) <= 0) or indices[0] < 0 or indices[-1] >= NUM_IMAGES):
            raise ValueError("indices must be sorted, unique and within the full set")
        self.indices = indices
        self.classes = index_to_classes(indices)
        self.is_full_grid = len(indices) == NUM_IMAGES
        self.device = torch.device(device)
        if packed is not None:
            if isinstance(packed, np.ndarray):
                packed = torch.from_numpy(np.ascontiguousarray(packed))
            if packed.dtype != torch.uint8 or tuple(packed.shape) != (len(indices), PACKED_BYTES):
                raise ValueError(f"packed images must be uint8 ({len(indices)}, {PACKED_BYTES}), got {packed.dtype} {tuple(packed.shape)}")
            packed = packed.to(self.device)
        self._packed: torch.Tensor | None = packed
        self.info: dict[str, Any] = dict(info or {})
        self._groups: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def grid(cls, indices: np.ndarray | None = None, info: dict[str, Any] | None = None) -> GroundTruthData:
        """Factors only, no images: the full grid, or the given full-set indices (for metric tests)."""
        idx = np.arange(NUM_IMAGES, dtype=np.int64) if indices is None else np.unique(np.asarray(indices, dtype=np.int64))
        return cls(idx, None, "cpu", {"source": "grid", **(info or {})})

    def restrict(self, indices: np.ndarray, info: dict[str, Any] | None = None) -> GroundTruthData:
        """A new data object holding only the given full-set indices (which must be present)."""
        indices = np.unique(np.asarray(indices, dtype=np.int64))
        pos = self._indices_to_positions(indices)
        packed = None if self._packed is None else self._packed[torch.from_numpy(pos).to(self.device)]
        return GroundTruthData(indices, packed, self.device, {**self.info, **(info or {})})

    def to(self, device: str | torch.device) -> GroundTruthData:
        """The same rows with the packed store moved to ``device``."""
        return GroundTruthData(self.indices, self._packed, device, self.info)

    # ---- basic facts ----------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.indices)

    def __repr__(self) -> str:
        kind = "full grid" if self.is_full_grid else "subset"
        imgs = "no images" if self._packed is None else f"images on {self.device}"
        return f"GroundTruthData({len(self)} rows, {kind}, {imgs})"

    @property
    def has_images(self) -> bool:
        return self._packed is not None

    @property
    def packed(self) -> torch.Tensor:
        """The bit-packed store: one uint8 tensor (len, 512) on ``device``."""
        if self._packed is None:
            raise NoImagesError(self._no_images_message())
        return self._packed

    # ---- index <-> factor conversion ------------------------------------------------------
    def _indices_to_positions(self, idx: np.ndarray) -> np.ndarray:
        if self.is_full_grid:
            return idx
        pos = np.searchsorted(self.indices, idx)
        pos_c = np.minimum(pos, len(self.indices) - 1)
        ok = (pos < len(self.indices)) & (self.indices[pos_c] == idx) if len(self.indices) else np.zeros(idx.shape, bool)
        if not np.all(ok):
            missing = int(np.size(ok) - np.count_nonzero(ok))
            raise ValueError(f"{missing} of {np.size(ok)} factor combinations are not present in this data set ({len(self)} rows)")
        return pos_c

    def factors_to_positions(self, factors: np.ndarray) -> np.ndarray:
        """Positions (0..len-1) of the present rows with these factor classes (n, 5)."""
        factors = np.asarray(factors, dtype=np.int64)
        return self._indices_to_positions(classes_to_index(factors))

    def positions_to_factors(self, positions: np.ndarray) -> np.ndarray:
        return self.classes[np.asarray(positions, dtype=np.int64)]

    # ---- sampling ---------------------------------------------------------------------------
    def sample_positions(self, n: int, random_state: np.random.RandomState) -> np.ndarray:
        """Uniformly drawn present rows."""
        if len(self) == 0:
            raise ValueError("cannot sample from an empty data set")
        return random_state.randint(len(self), size=n)

    def sample_factors(self, n: int, random_state: np.random.RandomState) -> np.ndarray:
        """Factor classes (n, 5). Full grid: one ``randint(size, size=n)`` per column, exactly as
        disentanglement_lib's ``SplitDiscreteStateSpace.sample_latent_factors``; subset: the
        classes of uniformly drawn present rows."""
        if self.is_full_grid:
            factors = np.zeros((n, NUM_FACTORS), dtype=np.int64)
            for k, size in enumerate(FACTOR_SIZES):
                factors[:, k] = random_state.randint(size, size=n)
            return factors
        return self.classes[self.sample_positions(n, random_state)]

    def _group(self, factor: int) -> tuple[np.ndarray, np.ndarray]:
        """Positions sorted by the factor's value, and where each value's run starts."""
        if factor not in self._groups:
            col = self.classes[:, factor]
            order = np.argsort(col, kind="stable")
            starts = np.searchsorted(col[order], np.arange(FACTOR_SIZES[factor] + 1))
            self._groups[factor] = (order, starts)
        return self._groups[factor]

    def sample_fixed_factor(self, n: int, factor: int, random_state: np.random.RandomState) -> np.ndarray:
        """Factor classes (n, 5) that all share factor ``factor`` with the first draw.

        Full grid: ``sample_factors`` then column ``factor`` set to row 0's value, as
        disentanglement_lib's FactorVAE/beta-VAE scores do. Subset: ``sample_factors`` picks
        the value (row 0), then all n rows are drawn uniformly among present rows sharing it.
        """
        if not 0 <= factor < NUM_FACTORS:
            raise ValueError(f"factor must be in 0..{NUM_FACTORS - 1}, got {factor}")
        factors = self.sample_factors(n, random_state)
        if self.is_full_grid:
            factors[:, factor] = factors[0, factor]
            return factors
        order, starts = self._group(factor)
        value = factors[0, factor]
        lo, hi = starts[value], starts[value + 1]
        return self.classes[order[lo + random_state.randint(hi - lo, size=n)]]

    # ---- observations ----------------------------------------------------------------------
    def _no_images_message(self) -> str:
        return (
            "this data object holds factors only (GroundTruthData.grid()); load images with "
            "load_data(DataSpec(source=...)) after `dis-eval prepare dsprites`"
        )

    def images(self, positions: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Float images (n, 1, 64, 64) in {0, 1} on ``device``, unpacked from the packed store."""
        packed = self.packed
        if isinstance(positions, torch.Tensor):
            pos = positions.to(device=self.device, dtype=torch.long)
        else:
            pos = torch.as_tensor(np.asarray(positions, dtype=np.int64), device=self.device)
        return unpack_images(packed[pos])

    def sample_observations_from_factors(self, factors: np.ndarray, random_state: np.random.RandomState) -> np.ndarray:
        """Images (n, 64, 64, 1) float32 for these factor classes (disentanglement_lib-compatible).

        disentanglement_lib draws the constant colour factor with ``randint(1, size=n)``; that
        draw is repeated here so the random state advances identically.
        """
        factors = np.asarray(factors, dtype=np.int64)
        random_state.randint(1, size=len(factors))
        imgs = self.images(self.factors_to_positions(factors))
        return imgs.permute(0, 2, 3, 1).cpu().numpy()

    def sample(self, n: int, random_state: np.random.RandomState) -> tuple[np.ndarray, np.ndarray]:
        """(factors, observations) of n uniformly drawn rows, as disentanglement_lib's ``sample``."""
        factors = self.sample_factors(n, random_state)
        return factors, self.sample_observations_from_factors(factors, random_state)
