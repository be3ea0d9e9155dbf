"""Scoring a pack (or several run folders of one architecture): the data set is encoded once by
all models at once (``dis_eval.encode.grouped``), then each model's codes are scored and merged
into its own metrics.json exactly as ``evaluate_run`` does for one run."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

from dis_eval.config.evaluation import EvalConfig
from dis_eval.errors import UserError
from dis_eval.run_dir import RunDir
from pipelines.evaluate.data import load_eval_data
from pipelines.evaluate.run import score_run


def pack_runs(paths: Sequence[str | os.PathLike]) -> tuple[list[RunDir], list[str]]:
    """The trained run folders named by ``paths`` (a pack folder stands for its members), and a
    note for each member of a pack that has no trained model (a retired or unfinished member)."""
    from pipelines.train.pack import PackDir

    runs: list[RunDir] = []
    skipped: list[str] = []
    for p in paths:
        pdir = PackDir(p)
        if pdir.is_pack():
            for run in pdir.members():
                if run.is_trained():
                    runs.append(run)
                else:
                    status = (run.read_summary() or {}).get("status", "not trained")
                    skipped.append(f"{run.path}: {status}, not scored")
        else:
            run = RunDir(p)
            run.require_folder()
            runs.append(run)
    if not runs:
        raise UserError("no trained run to score in " + ", ".join(str(p) for p in paths))
    if len({r.path.resolve() for r in runs}) != len(runs):
        raise UserError("a run folder is named twice")
    return runs, skipped


def evaluate_pack(paths: Sequence[str | os.PathLike], config: EvalConfig | None = None,
                  data: Any = None) -> list[tuple[RunDir, dict[str, Any]]]:
    """Score every trained model in ``paths`` (pack folders and/or run folders of one family and
    architecture, trained on the same data and subset) under every convention of
    ``config.plan()``, as ``evaluate_run`` scores one run; the rows of each protocol are encoded
    once by all members together. Each result is merged into its run's metrics.json. Returns
    (run, result) pairs. ``data``: the training rows when the caller already holds them."""
    from dis_eval.device import resolve_device
    from dis_eval.encode.grouped import encode_pack, stack_models
    from dis_eval.models.spec import ModelSpec

    runs, _ = pack_runs(paths)
    config = config or EvalConfig()
    device = resolve_device(config.device)
    train_cfgs = [r.read_config() for r in runs]
    if len({(c.data, c.subset) for c in train_cfgs}) != 1:
        raise UserError("runs scored together must share their training data and subset; score them separately")
    source, trained_subset = train_cfgs[0].data, train_cfgs[0].subset
    models, configs = zip(*(r.load_model("cpu") for r in runs), strict=True)
    pack = stack_models(list(models), [ModelSpec.from_config(c) for c in configs])
    encoded: dict[str | None, tuple[Any, list[Any]]] = {}  # subset -> (data, codes per member)

    def shared_rows(subset: str | None) -> tuple[Any, list[Any]]:
        if subset not in encoded:
            d = data if data is not None and subset == trained_subset else load_eval_data(source, subset, device)
            encoded[subset] = (d, encode_pack(pack, d, config.batch_size, device))
        return encoded[subset]

    out = []
    for i, (run, model) in enumerate(zip(runs, models, strict=True)):
        t1 = time.perf_counter()
        model = model.to(device)

        def rows_for(subset: str | None, i: int = i) -> tuple[Any, Any]:
            d, codes = shared_rows(subset)
            return d, codes[i]

        result = score_run(run, model, config, device, rows_for)
        # the first member's time includes the grouped encoding (its seconds: encode.*.pack_encoded)
        result["timings"] = {**result.get("timings", {}), "run_total_s": time.perf_counter() - t1}
        run.write_metrics(result)
        out.append((run, result))
    return out
