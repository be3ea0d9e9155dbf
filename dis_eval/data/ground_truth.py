"""``GroundTruthData``: the rows of a discrete factor grid that a data set holds, their factor
classes, every random draw of rows (through :mod:`dis_eval.data.sampling`), and optional
bit-packed images on a device.

The grid is any list of factors with a number of classes each (``factor_names``,
``factor_sizes``); dSprites' five factors (:mod:`dis_eval.data.factors`) are the default.
Rows are given either as indices into the grid's row-major order (dSprites: the official
ordering, posY fastest; the full grid, a dependent subset, a partial file) or as factor
classes row by row (a user's factors file, where combinations may repeat or be missing:
:func:`dis_eval.data.factors_file.load_factors_file`).

Sampling: on the full grid (every combination present once) exactly disentanglement_lib's
draws; otherwise uniformly among the rows present (see :mod:`dis_eval.data.sampling`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from dis_eval.data.factors import (
    FACTOR_NAMES,
    FACTOR_SIZES,
    IMAGE_SIZE,
    PACKED_BYTES,
    classes_to_index,
    grid_rows,
    grid_strides,
    index_to_classes,
)
from dis_eval.data.sampling import RowSampler
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


def default_factor_names(num_factors: int) -> tuple[str, ...]:
    """Names of a grid's factors when none are given: ``factor0``, ``factor1``, ..."""
    return tuple(f"factor{k}" for k in range(num_factors))


def _grid_description(sizes: Sequence[int] | None, names: Sequence[str] | None
                      ) -> tuple[tuple[int, ...], tuple[str, ...]]:
    sizes = FACTOR_SIZES if sizes is None else tuple(int(s) for s in sizes)
    if not sizes or any(s < 1 for s in sizes):
        raise ValueError(f"factor sizes must be one or more positive integers, got {sizes}")
    if names is None:
        names = FACTOR_NAMES if sizes == FACTOR_SIZES else default_factor_names(len(sizes))
    names = tuple(str(n) for n in names)
    if len(names) != len(sizes):
        raise ValueError(f"{len(names)} factor names for {len(sizes)} factors")
    if len(set(names)) != len(names) or any(not n for n in names):
        raise ValueError(f"factor names must be distinct and non-empty, got {names}")
    return sizes, names


class GroundTruthData:
    """The rows of a discrete factor grid present in a data set, their classes and images.

    Positions ``0..len-1`` address the rows; ``indices[pos]`` is the row's index in the
    source's full ordering (sorted, unique): for grid rows, the grid's row-major index (for
    dSprites the official ordering); for a user's factors file, the row number in the file.
    ``classes[pos]`` are the row's factor classes (0 <= class < size).

    Construction: ``GroundTruthData(indices, packed, device, info)`` (grid rows, dSprites
    unless ``factor_sizes`` says otherwise), ``GroundTruthData.grid(indices, factor_sizes=...)``
    (factors only) or ``GroundTruthData.from_factors(classes, factor_names)`` (rows given by
    their classes, in order, repeats allowed).
    """

    def __init__(
        self,
        indices: np.ndarray,
        packed: np.ndarray | torch.Tensor | None = None,
        device: str | torch.device = "cpu",
        info: dict[str, Any] | None = None,
        *,
        factor_sizes: Sequence[int] | None = None,
        factor_names: Sequence[str] | None = None,
        classes: np.ndarray | None = None,
    ) -> None:
        self.factor_sizes, self.factor_names = _grid_description(factor_sizes, factor_names)
        indices = np.asarray(indices, dtype=np.int64)
        if indices.ndim != 1:
            raise ValueError("indices must be one-dimensional")
        if len(indices) and (np.any(np.diff(indices) <= 0) or indices[0] < 0):
            raise ValueError("indices must be sorted, unique and non-negative")
        total = grid_rows(self.factor_sizes)
        self.indices = indices
        # _grid_rows: indices are the rows' grid indices (classes follow from them)
        self._grid_rows = classes is None
        if classes is None:
            if len(indices) and indices[-1] >= total:
                raise ValueError(f"indices must be within the grid of {total} combinations")
            self.classes = index_to_classes(indices, self.factor_sizes)
            self.is_full_grid = len(indices) == total
            grid_to_position = None
        else:
            classes = np.asarray(classes)
            if classes.shape != (len(indices), len(self.factor_sizes)) or not np.issubdtype(classes.dtype, np.integer):
                raise ValueError(f"classes must be integers of shape ({len(indices)}, {len(self.factor_sizes)}), "
                                 f"got {classes.dtype} {classes.shape}")
            classes = classes.astype(np.int64, copy=False)
            if len(classes) and (classes.min() < 0 or np.any(classes.max(axis=0) >= np.asarray(self.factor_sizes))):
                raise ValueError(f"factor classes out of range; sizes are {self.factor_sizes}")
            self.classes = classes
            self.is_full_grid, grid_to_position = self._full_grid_map(classes, total)
        self.device = torch.device(device)
        if packed is not None:
            if isinstance(packed, np.ndarray):
                packed = torch.from_numpy(np.ascontiguousarray(packed))
            if packed.dtype != torch.uint8 or tuple(packed.shape) != (len(indices), PACKED_BYTES):
                raise ValueError(f"packed images must be uint8 ({len(indices)}, {PACKED_BYTES}), got {packed.dtype} {tuple(packed.shape)}")
            packed = packed.to(self.device)
        self._packed: torch.Tensor | None = packed
        self.info: dict[str, Any] = dict(info or {})
        self.sampler = RowSampler(self.factor_sizes, self.classes, self.is_full_grid, grid_to_position)
        self._lookup: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def _full_grid_map(self, classes: np.ndarray, total: int) -> tuple[bool, np.ndarray | None]:
        """(every combination present exactly once?, grid index -> position or None for identity)."""
        if len(classes) != total:
            return False, None
        keys = classes @ grid_strides(self.factor_sizes)
        if not np.all(np.bincount(keys, minlength=total) == 1):
            return False, None
        if np.array_equal(keys, np.arange(total)):
            return True, None
        to_pos = np.empty(total, dtype=np.int64)
        to_pos[keys] = np.arange(total)
        return True, to_pos

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def grid(cls, indices: np.ndarray | None = None, info: dict[str, Any] | None = None, *,
             factor_sizes: Sequence[int] | None = None,
             factor_names: Sequence[str] | None = None) -> GroundTruthData:
        """Factors only, no images: the full grid of ``factor_sizes`` (default dSprites'), or the
        rows with the given row-major grid indices (sorted and de-duplicated)."""
        sizes, names = _grid_description(factor_sizes, factor_names)
        if indices is None:
            if grid_rows(sizes) > 2**31:
                raise ValueError(f"the full grid of sizes {sizes} is too large to hold row by row")
            idx = np.arange(grid_rows(sizes), dtype=np.int64)
        else:
            idx = np.unique(np.asarray(indices, dtype=np.int64))
        return cls(idx, None, "cpu", {"source": "grid", **(info or {})}, factor_sizes=sizes, factor_names=names)

    @classmethod
    def from_factors(cls, classes: np.ndarray, factor_names: Sequence[str] | None = None,
                     factor_sizes: Sequence[int] | None = None,
                     info: dict[str, Any] | None = None) -> GroundTruthData:
        """Rows given by their factor classes (n, F), in this order (position i = row i;
        ``indices`` = 0..n-1). Combinations may repeat or be missing. ``factor_sizes``
        defaults to each column's largest class + 1. No images."""
        classes = np.asarray(classes)
        if classes.ndim != 2 or classes.shape[1] == 0 or not np.issubdtype(classes.dtype, np.integer):
            raise ValueError(f"classes must be a 2-D integer array (rows, factors), got {classes.dtype} {classes.shape}")
        if factor_sizes is None:
            factor_sizes = tuple(int(m) + 1 for m in classes.max(axis=0)) if len(classes) else (1,) * classes.shape[1]
        names = default_factor_names(classes.shape[1]) if factor_names is None else factor_names
        return cls(np.arange(len(classes), dtype=np.int64), None, "cpu", {"source": "factors", **(info or {})},
                   factor_sizes=factor_sizes, factor_names=names, classes=classes)

    def _derived(self, indices: np.ndarray, packed: torch.Tensor | None, device: str | torch.device,
                 info: dict[str, Any], classes: np.ndarray) -> GroundTruthData:
        return GroundTruthData(indices, packed, device, info, factor_sizes=self.factor_sizes,
                               factor_names=self.factor_names,
                               classes=None if self._grid_rows else classes)

    def restrict(self, indices: np.ndarray, info: dict[str, Any] | None = None) -> GroundTruthData:
        """A new data object holding only the rows with these ``indices`` (which must be present)."""
        indices = np.unique(np.asarray(indices, dtype=np.int64))
        pos = self._indices_to_positions(indices)
        packed = None if self._packed is None else self._packed[torch.from_numpy(pos).to(self.device)]
        return self._derived(indices, packed, self.device, {**self.info, **(info or {})}, self.classes[pos])

    def to(self, device: str | torch.device) -> GroundTruthData:
        """The same rows with the packed store moved to ``device``."""
        return self._derived(self.indices, self._packed, device, self.info, self.classes)

    # ---- basic facts ----------------------------------------------------------------------
    @property
    def num_factors(self) -> int:
        return len(self.factor_sizes)

    def __len__(self) -> int:
        return len(self.indices)

    def __repr__(self) -> str:
        kind = "full grid" if self.is_full_grid else "subset"
        imgs = "no images" if self._packed is None else f"images on {self.device}"
        grid = "" if self.factor_sizes == FACTOR_SIZES else f", factor sizes {self.factor_sizes}"
        return f"GroundTruthData({len(self)} rows, {kind}{grid}, {imgs})"

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
    def _indices_to_positions(self, idx: np.ndarray, what: str = "rows") -> np.ndarray:
        if self._grid_rows and self.is_full_grid:
            return idx
        pos = np.searchsorted(self.indices, idx)
        pos_c = np.minimum(pos, len(self.indices) - 1)
        ok = (pos < len(self.indices)) & (self.indices[pos_c] == idx) if len(self.indices) else np.zeros(idx.shape, bool)
        if not np.all(ok):
            missing = int(np.size(ok) - np.count_nonzero(ok))
            raise ValueError(f"{missing} of {np.size(ok)} {what} are not present in this data set ({len(self)} rows)")
        return pos_c

    def factors_to_positions(self, factors: np.ndarray) -> np.ndarray:
        """Positions (0..len-1) of the present rows with these factor classes (n, F).

        ValueError if a combination is absent, or (rows given by classes) present in more
        than one row: then a combination does not name one row; draw positions instead.
        """
        keys = classes_to_index(np.asarray(factors, dtype=np.int64), self.factor_sizes, self.factor_names)
        if self._grid_rows:
            return self._indices_to_positions(keys, "factor combinations")
        if self._lookup is None:
            uniq, first, counts = np.unique(classes_to_index(self.classes, self.factor_sizes),
                                            return_index=True, return_counts=True)
            self._lookup = (uniq, first, counts)
        uniq, first, counts = self._lookup
        pos = np.searchsorted(uniq, keys)
        pos_c = np.minimum(pos, max(len(uniq) - 1, 0))
        ok = (pos < len(uniq)) & (uniq[pos_c] == keys) if len(uniq) else np.zeros(keys.shape, bool)
        if not np.all(ok):
            missing = int(np.size(ok) - np.count_nonzero(ok))
            raise ValueError(f"{missing} of {np.size(ok)} factor combinations are not present in this data set ({len(self)} rows)")
        if np.any(counts[pos_c] > 1):
            raise ValueError("some of these factor combinations occur in more than one row; "
                             "address rows by position (sample_positions) instead")
        return first[pos_c]

    def positions_to_factors(self, positions: np.ndarray) -> np.ndarray:
        return self.classes[np.asarray(positions, dtype=np.int64)]

    # ---- sampling (all draws go through self.sampler: dis_eval.data.sampling) ---------------
    def sample_positions(self, n: int, random_state: np.random.RandomState) -> np.ndarray:
        """n uniformly drawn rows (positions). Full grid: dlib's draw (one ``randint(size,
        size=n)`` per factor column); otherwise ``randint(len, size=n)``."""
        return self.sampler.positions(n, random_state)

    def sample_factors(self, n: int, random_state: np.random.RandomState) -> np.ndarray:
        """Factor classes (n, F) of ``sample_positions(n)``: on the full grid exactly
        disentanglement_lib's ``SplitDiscreteStateSpace.sample_latent_factors``."""
        return self.classes[self.sample_positions(n, random_state)]

    def sample_fixed_factor(self, n: int, factor: int, random_state: np.random.RandomState) -> np.ndarray:
        """Factor classes (n, F) of n rows sharing factor ``factor`` (full grid: dlib's draw,
        ``sample_factors`` then column ``factor`` set to row 0's value; otherwise among the
        present rows sharing the value of a uniformly drawn row)."""
        return self.classes[self.sampler.fixed_factor(n, factor, random_state)]

    def sample_batches(self, num_points: int, batch_size: int, random_state: np.random.RandomState) -> np.ndarray:
        """Positions (num_points,) drawn ``batch_size`` at a time (dlib's
        ``generate_batch_factor_code``; the last batch may be short)."""
        return self.sampler.batches(num_points, batch_size, random_state)

    def sample_fixed_factor_batches(self, num_batches: int, batch_size: int,
                                    random_state: np.random.RandomState) -> tuple[np.ndarray, np.ndarray]:
        """FactorVAE votes: (factor k per batch (num_batches,), positions (num_batches,
        batch_size)); each batch shares its factor k."""
        return self.sampler.fixed_factor_batches(num_batches, batch_size, random_state)

    def sample_paired_batches(self, num_points: int, batch_size: int, random_state: np.random.RandomState
                              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """BetaVAE points: (factor k per point (num_points,), first and second batch of
        positions (num_points, batch_size) each); pair i shares factor k."""
        return self.sampler.paired_batches(num_points, batch_size, random_state)

    # ---- observations ----------------------------------------------------------------------
    def _no_images_message(self) -> str:
        if self.factor_sizes != FACTOR_SIZES:
            return "this data object holds factor classes only (no images)"
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
