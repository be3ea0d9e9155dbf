"""Which data: ``DataSpec`` (a source file and an optional dependent subset), where prepared
data lives, and ``load_data`` (a spec -> a ``GroundTruthData`` with images on a device)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dis_eval.data.dependent import NO_SUBSET, Subset, resolve_subset
from dis_eval.data.ground_truth import GroundTruthData
from dis_eval.data.official import OFFICIAL_NPZ_NAME, read_any
from dis_eval.errors import UserError

PREPARED_NAME = "dsprites_full.npz"  # what `dis-eval prepare dsprites` writes in the data directory


def default_data_dir() -> Path:
    """``$DIS_EVAL_DATA`` when set, else ``./data``."""
    return Path(os.environ.get("DIS_EVAL_DATA") or "data")


def prepared_path() -> Path:
    """Where ``DataSpec(source="dsprites")`` looks for the prepared full set."""
    return default_data_dir() / PREPARED_NAME


@dataclass(frozen=True)
class DataSpec:
    """Which data: ``source`` = "dsprites" (the prepared file) or a path to an official-format
    .npz/.hdf5 (full or partial); ``subset`` = None, a preset ("authors", "paper-text"), a recipe
    "bins=4,drop=0.15,seed=42", or a prepared subset .h5 path."""

    source: str = "dsprites"
    subset: str | None = None

    def source_path(self) -> Path:
        if self.source == "dsprites":
            path = prepared_path()
            if path.exists():
                return path
            # DeepMind's own file dropped into the data directory is the same data set.
            official = default_data_dir() / OFFICIAL_NPZ_NAME
            if official.exists():
                return official
            raise UserError(
                f"no prepared dSprites at {path}; run `dis-eval prepare dsprites` "
                "(or set DIS_EVAL_DATA to the folder holding it)"
            )
        path = Path(self.source)
        if path.suffix.lower() not in (".npz", ".hdf5", ".h5"):
            raise UserError(
                f"unknown data source {self.source!r}: use 'dsprites' or a path to an official-format .npz/.hdf5"
            )
        if not path.exists():
            raise UserError(f"data source {path} does not exist")
        return path

    def resolve_subset(self) -> Subset | None:
        return None if self.subset in NO_SUBSET else resolve_subset(str(self.subset))


def load_data(spec: DataSpec | str = DataSpec(), device: Any = "cpu", progress: bool = False) -> GroundTruthData:
    """Load the rows of ``spec`` with their images bit-packed on ``device``.

    A subset keeps only its rows; on a partial source (e.g. the real-image test fixture)
    the rows present in both are kept.
    """
    if isinstance(spec, str):
        spec = DataSpec(source=spec)
    import numpy as np

    subset = spec.resolve_subset()
    path = spec.source_path()
    loaded = read_any(path, progress=progress, cache=True)
    info = {"source": str(path), "metadata_source": loaded.metadata.get("source", "official" if loaded.full else "partial")}
    data = GroundTruthData(loaded.indices, loaded.packed, device, info)
    if subset is None:
        return data
    keep = np.intersect1d(subset.indices, data.indices, assume_unique=True)
    if len(keep) == 0:
        raise UserError(f"subset {subset.recipe.describe()} has no rows in {path}")
    sub_info = {
        "subset": subset.recipe.describe(),
        "subset_kept_fraction": subset.kept_fraction,
        "subset_total_correlation_nats": subset.total_correlation,
    }
    return data.restrict(keep, sub_info)
