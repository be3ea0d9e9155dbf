"""Helpers to run the reference package (disentanglement-lib 1.5) on our data and codes.

The reference's metric modules import ``gin.tf`` (TensorFlow); they only use top-level gin,
so an empty stand-in module satisfies the import. Our data object is wrapped in dlib's
``GroundTruthData`` interface; its "observations" carry row positions and the reference's
representation function looks codes up by position, so no images are needed and both sides
see the same codes for the same rows.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

import numpy as np


def import_dlib_metrics() -> dict[str, Any]:
    """The reference's metric modules (skip the test module if the package is missing)."""
    import pytest

    sys.modules.setdefault("gin.tf", types.ModuleType("gin.tf"))
    gin = pytest.importorskip("gin")
    names = ["utils", "factor_vae", "mig", "beta_vae", "dci", "sap_score",
             "modularity_explicitness", "unsupervised_metrics", "irs"]
    mods = {}
    for n in names:
        mods[n] = importlib.import_module(f"disentanglement_lib.evaluation.metrics.{n}")
    gin.clear_config()
    gin.bind_parameter("discretizer.discretizer_fn", mods["utils"]._histogram_discretize)
    gin.bind_parameter("discretizer.num_bins", 20)
    gin.bind_parameter("prune_dims.threshold", 0.05)
    mods["gin"] = gin
    return mods


class DlibData:
    """dlib's GroundTruthData interface over a ``dis_eval`` data object (rows with distinct
    factor combinations: a full grid of any sizes, in any row order, or a subset)."""

    def __init__(self, data: Any) -> None:
        self.data = data

    @property
    def num_factors(self) -> int:
        return self.data.num_factors

    @property
    def factors_num_values(self) -> list[int]:
        return list(self.data.factor_sizes)

    @property
    def observation_shape(self) -> list[int]:
        return [1]

    def sample_factors(self, num: int, random_state: np.random.RandomState) -> np.ndarray:
        return self.data.sample_factors(num, random_state)

    def sample_observations_from_factors(self, factors: np.ndarray,
                                         random_state: np.random.RandomState) -> np.ndarray:
        random_state.randint(1, size=len(factors))  # dsprites' constant colour draw, as dlib
        return np.asarray(self.data.factors_to_positions(factors), dtype=np.int64)[:, None]

    def sample(self, num: int, random_state: np.random.RandomState) -> tuple[np.ndarray, np.ndarray]:
        factors = self.sample_factors(num, random_state)
        return factors, self.sample_observations_from_factors(factors, random_state)

    def sample_observations(self, num: int, random_state: np.random.RandomState) -> np.ndarray:
        return self.sample(num, random_state)[1]


def lookup(codes: np.ndarray):
    """dlib representation function: observations (rows carrying a position) -> codes."""
    def fn(observations: np.ndarray) -> np.ndarray:
        return codes[np.asarray(observations)[:, 0]]
    return fn
