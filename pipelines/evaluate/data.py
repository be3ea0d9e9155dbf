"""The data a score is computed on, and the record of it kept in metrics.json."""

from __future__ import annotations

from typing import Any

from dis_eval.errors import UserError

GRID_SOURCE = "grid"  # `--data grid`: dSprites' factor grid without images (for codes computed elsewhere)


def load_eval_data(source: str, subset: str | None, device: Any = "cpu", need_images: bool = True) -> Any:
    """The data object to score on: a prepared/official file, or (``source="grid"``) factors only."""
    from dis_eval.data import DataSpec, GroundTruthData, load_data

    if source == GRID_SOURCE:
        if need_images:
            raise UserError("--data grid has no images to encode; give a data file (or 'dsprites') to run an encoder")
        sub = DataSpec("dsprites", subset).resolve_subset()
        if sub is None:
            return GroundTruthData.grid()
        return GroundTruthData.grid(sub.indices, {"subset": sub.recipe.describe(),
                                                  "subset_kept_fraction": sub.kept_fraction})
    return load_data(DataSpec(source, subset), device=device)


def data_record(data: Any, source: str, subset: str | None) -> dict[str, Any]:
    """What metrics.json says about the rows scored: source, subset and its recipe, the number
    of rows, and checksums of the rows (indices and factor classes) and of their images."""
    from dis_eval.metrics.utils import to_builtin
    from dis_eval.provenance import data_checksums

    info = dict(getattr(data, "info", {}) or {})
    return to_builtin({
        "source": source, "subset": subset, "subset_recipe": info.get("subset"), "rows": len(data),
        "is_full_grid": bool(data.is_full_grid), **data_checksums(data), "info": info,
    })
