"""A run's place on the paper's axes: its model, beta, lambda (TC weight) and training data."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dis_eval.results.keys import flatten

if TYPE_CHECKING:
    from dis_eval.results.runs import Run

# Candidate config keys (flattened, dot-separated) for the Table-2 axes, first match wins.
# dis_eval.config.train.TrainConfig writes flat keys: family (echo|vae), beta, tc_weight, subset.
MODEL_KEYS: tuple[str, ...] = ("family", "model.family", "model_family", "model")
BETA_KEYS: tuple[str, ...] = ("beta", "loss.beta", "model.beta")
LAMBDA_KEYS: tuple[str, ...] = ("tc_weight", "lambda_tc", "lambda", "loss.tc_weight", "gamma")
DATA_KEYS: tuple[str, ...] = ("subset", "data.subset", "data_subset")


def first_key(flat: dict[str, Any], candidates: Sequence[str]) -> str | None:
    """The first of ``candidates`` present in the flattened config, or None."""
    for c in candidates:
        if c in flat:
            return c
    return None


def subset_name(subset: Any) -> str | None:
    """None for the full set; a prepared subset file's stem; else the preset name or recipe."""
    # Imported here, not at the top: dis_eval.data.spec imports torch.
    from dis_eval.data.dependent import NO_SUBSET

    if subset in NO_SUBSET:
        return None
    return Path(str(subset)).stem if str(subset).endswith((".h5", ".hdf5")) else str(subset)


def data_label(run: Run) -> str:
    """The training data, as the paper's Table 2 columns mean it: ``full`` or the subset's
    name/recipe; a subset-trained run scored on the full grid (the authors' protocol) is
    labelled ``<subset> (scored on full)`` so it never mixes with subset-scored runs."""
    flat = flatten(run.config)
    key = first_key(flat, DATA_KEYS)
    trained = subset_name(flat.get(key)) if key else None
    if trained is None:
        return "full"
    if (run.metrics or {}).get("protocol") == "full":
        return f"{trained} (scored on full)"
    return trained
