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
from pipelines.evaluate.data import data_record, load_eval_data
from pipelines.evaluate.scoring import finish_record, score_codes


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
    architecture, trained on the same data and protocol rows); each result is merged into its
    run's metrics.json. Returns (run, result) pairs."""
    from dis_eval.device import resolve_device
    from dis_eval.encode.grouped import encode_pack, stack_models
    from dis_eval.models.spec import ModelSpec

    runs, _ = pack_runs(paths)
    config = (config or EvalConfig()).resolved()
    t0 = time.perf_counter()
    device = resolve_device(config.device)
    train_cfgs = [r.read_config() for r in runs]
    protocols = {config.protocol_for(c.subset) for c in train_cfgs}
    sources = {(c.data, c.subset if config.protocol_for(c.subset) == "subset" else None) for c in train_cfgs}
    if len(protocols) != 1 or len(sources) != 1:
        raise UserError("runs scored together must share their data and evaluation rows (same data and subset); "
                        "score them separately")
    protocol = protocols.pop()
    source, subset = sources.pop()
    models, configs = zip(*(r.load_model("cpu") for r in runs), strict=True)
    pack = stack_models(list(models), [ModelSpec.from_config(c) for c in configs])
    if data is None:
        data = load_eval_data(source, subset, device)
    all_codes = encode_pack(pack, data, config.batch_size, device)
    shared_s = time.perf_counter() - t0
    out = []
    for run, model, codes in zip(runs, models, all_codes, strict=True):
        t1 = time.perf_counter()
        result = score_codes(data, codes, config)
        result["timings"]["encode_s"] = codes.info["encode_seconds"]
        result["encode"] = {k: v for k, v in codes.info.items() if k != "encode_seconds"}
        result["timings"]["total_s"] = shared_s / len(runs) + time.perf_counter() - t1
        extra = {"encoder": {"kind": "run", "run_dir": str(run.path), "family": getattr(model, "family", None)},
                 "trained_subset": run.read_config().subset}
        result = finish_record(result, data_record(data, source, subset), protocol, config, extra)
        run.write_metrics(result)
        out.append((run, result))
    return out
