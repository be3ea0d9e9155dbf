"""Scoring a trained run: its model encodes the data its protocol names, the suite scores the
codes, and the result is merged into the run's metrics.json (through ``RunDir``)."""

from __future__ import annotations

import os
import time
from typing import Any

from dis_eval.config.evaluation import EvalConfig
from dis_eval.run_dir import RunDir
from pipelines.evaluate.data import data_record, load_eval_data
from pipelines.evaluate.encoder import evaluate_encoder
from pipelines.evaluate.scoring import finish_record


def evaluate_run(run_dir: str | os.PathLike | RunDir, config: EvalConfig | None = None,
                 data: Any = None) -> dict[str, Any]:
    """Score a trained run and merge the result into ``RUN/metrics.json``; returns this
    evaluation's result.

    The protocol decides the rows: on a run trained on a dependent subset, ``subset`` (the
    default) scores on the rows the model saw, ``full`` on its source's full grid (the authors'
    protocol). ``data``: those rows when the caller already holds them (the main job and sweeps
    pass the data they trained on); loaded when None.
    """
    from dis_eval.device import resolve_device
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    run.require_folder()
    config = (config or EvalConfig()).resolved()
    t0 = time.perf_counter()
    train_cfg = run.read_config()
    device = resolve_device(config.device)
    model, _ = run.load_model(device)
    protocol = config.protocol_for(train_cfg.subset)
    subset = train_cfg.subset if protocol == "subset" else None
    if data is None:
        data = load_eval_data(train_cfg.data, subset, device)
    result, _ = evaluate_encoder(model, data, config)
    result["timings"]["total_s"] = time.perf_counter() - t0
    extra = {"encoder": {"kind": "run", "run_dir": str(run.path), "family": getattr(model, "family", None)},
             "trained_subset": train_cfg.subset}
    result = finish_record(result, data_record(data, train_cfg.data, subset), protocol, config, extra)
    run.write_metrics(result)
    return result
