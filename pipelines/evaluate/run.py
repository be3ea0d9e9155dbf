"""Scoring a trained run: its model encodes the data each convention names, the suite scores the
codes, and the result is merged into the run's metrics.json (through ``RunDir``)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from dis_eval.config.evaluation import EvalConfig
from dis_eval.run_dir import RunDir
from pipelines.evaluate.data import data_record, load_eval_data
from pipelines.evaluate.scoring import (
    ScoreContext,
    add_checks,
    combine,
    finish_record,
    sample_unavailable,
    score_codes,
)


def run_activity(run: RunDir, model: Any) -> tuple[Any, str | None]:
    """(LatentActivity from the run's summary.json ``rate_per_dim``, None) or (None, why)."""
    from dis_eval.metrics.activity import activity_from_rates

    family = getattr(model, "family", None)
    if family not in ("echo", "vae"):
        return None, f"model family {family!r} has no rate per latent"
    rates = (run.read_summary() or {}).get("rate_per_dim")
    if not isinstance(rates, list) or not rates:
        return None, "summary.json has no rate_per_dim"
    return activity_from_rates(rates, family, getattr(model, "clip", None), "summary.json rate_per_dim (training)"), None


RowsFor = Callable[[Any], tuple[Any, Any]]  # subset (None: the full grid) -> (data, codes)


def evaluate_run(run_dir: str | os.PathLike | RunDir, config: EvalConfig | None = None,
                 data: Any = None) -> dict[str, Any]:
    """Score a trained run and merge the result into ``RUN/metrics.json``; returns this
    evaluation's result.

    ``config.plan()`` names the conventions scored (by default disentanglement_lib's and, for
    Echo and VAE models, the authors': see ``EvalConfig.plan``). The protocol decides the rows:
    on a run trained on a dependent subset, ``subset`` (the default) scores on the rows the
    model saw, ``full`` on its source's full grid. ``data``: the rows the model was trained on
    when the caller already holds them (the main job and sweeps pass them); used for every
    convention scored on those rows, the others load theirs.
    """
    from dis_eval.device import resolve_device
    from dis_eval.encode import LazyCodes

    run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    run.require_folder()
    config = config or EvalConfig()
    t0 = time.perf_counter()
    train_cfg = run.read_config()
    device = resolve_device(config.device)
    model, _ = run.load_model(device)

    def rows_for(subset: Any) -> tuple[Any, Any]:
        d = data if data is not None and subset == train_cfg.subset else load_eval_data(train_cfg.data, subset, device)
        return d, LazyCodes(model, d, batch_size=config.batch_size, device=device, compile=config.compile)

    result = score_run(run, model, config, device, rows_for)
    result["timings"] = {**result.get("timings", {}), "run_total_s": time.perf_counter() - t0}
    run.write_metrics(result)
    return result


def score_run(run: RunDir, model: Any, config: EvalConfig, device: Any, rows_for: RowsFor) -> dict[str, Any]:
    """Every convention of ``config.plan()`` for ``run``'s ``model`` (not written): the rows and
    codes of each protocol come from ``rows_for(subset)``, asked once per subset (a single run
    encodes lazily; a pack hands out its members' share of one grouped encoding)."""
    train_cfg = run.read_config()
    summary = run.read_summary() or {}
    family = getattr(model, "family", None)
    activity, why = run_activity(run, model)
    source = {"kind": "run", "run_dir": str(run.path), "family": family, "step": summary.get("step"),
              "model_file": run.model.name if run.is_trained() else run.checkpoint.name}
    context = ScoreContext(source=source, activity=activity, activity_undefined=why)
    plan = config.plan()
    rows: dict[str | None, tuple[Any, Any]] = {}  # subset -> (data, codes), encoded once each
    records, not_scored = [], {}
    for name, cfg in plan:
        protocol = cfg.protocol_for(train_cfg.subset)
        subset = train_cfg.subset if protocol == "subset" else None
        if subset not in rows:
            rows[subset] = rows_for(subset)
        d, codes = rows[subset]
        if cfg.representation == "sample" and len(plan) > 1:
            reason = sample_unavailable(codes)
            if reason:
                not_scored[name] = reason
                continue
        t1 = time.perf_counter()
        result = score_codes(d, codes, cfg)
        result["timings"]["total_s"] = time.perf_counter() - t1
        add_checks(result, d, codes.mean.shape[1], cfg, context)
        extra = {"encoder": source, "trained_subset": train_cfg.subset}
        records.append((name, finish_record(result, data_record(d, train_cfg.data, subset), protocol, cfg, extra, name)))
    result = combine(records, not_scored)
    if train_cfg.subset:
        from pipelines.evaluate.heldout import held_out_record

        for subset in (train_cfg.subset, None):
            if subset not in rows:
                rows[subset] = rows_for(subset)
        result["held_out"] = held_out_record(model, train_cfg, device, config, rows)
    result["encode"] = {("subset rows" if s else "full grid"): dict(c.info) for s, (_, c) in rows.items()}
    return result
